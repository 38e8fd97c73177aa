"""X-ray hot folder: takes each complete image once, quarantines bad ones, pairs dual-energy shots."""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scanner_drivers.image_gate import ImageRefused
from scanner_drivers.scanners.scanner import StatusCallback
from scanner_drivers.types import DeviceUrlError, ImageCapture, ImageKind
from scanner_drivers.urlopts import UrlOptions
from scanner_drivers.xray.hotfolder_state import TakenFiles
from scanner_drivers.xray.image_files import load_image_file

log = logging.getLogger(__name__)

DEFAULT_PATTERN = "*.jpg,*.jpeg,*.png,*.bmp,*.tif,*.tiff,*.dcm,*.dcs"
DONE_DIR = "done"
QUARANTINE_DIR = "quarantine"

# One call per shot: a single image, or the high- and low-energy images of a dual-energy pair.
ShotCallback = Callable[[tuple[ImageCapture, ...]], None]
RejectCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class HotFolderConfig:
    folder: Path
    patterns: tuple[str, ...]
    settle_s: float
    poll_s: float
    after: str
    kind: ImageKind
    max_bytes: int
    dual: bool
    high: str
    low: str
    pair_wait_s: float


def parse_folder_url(url: str) -> HotFolderConfig:
    """`folder:///var/spool/xray?pattern=*.png,*.tif&settle_ms=500&after=move&dual=1&high=_H&low=_L`."""
    opts = UrlOptions(url)
    if opts.parts.scheme != "folder":
        raise DeviceUrlError(f"not a folder:// URL: {url}")
    if opts.parts.netloc not in ("", "localhost") or not opts.parts.path.startswith("/"):
        raise DeviceUrlError(f"folder:// URL needs an absolute path (folder:///var/spool/xray): {url}")
    patterns = tuple(p.strip() for p in opts.text("pattern", DEFAULT_PATTERN).split(",") if p.strip())
    if not patterns:
        raise DeviceUrlError(f"option 'pattern' is empty in {url}")
    kind = opts.choice("kind", "xray", ("xray", "camera"))
    cfg = HotFolderConfig(
        folder=Path(opts.parts.path),
        patterns=patterns,
        settle_s=opts.integer("settle_ms", 500, 0, 600_000) / 1000,
        poll_s=opts.integer("poll_ms", 200, 10, 60_000) / 1000,
        after=opts.choice("after", "move", ("move", "delete", "keep")),
        kind="camera" if kind == "camera" else "xray",
        max_bytes=opts.integer("max_mb", 64, 1, 4096) * 1024 * 1024,
        dual=opts.flag("dual", False),
        high=opts.text("high", "_H"),
        low=opts.text("low", "_L"),
        pair_wait_s=opts.integer("pair_wait_ms", 2000, 0, 600_000) / 1000,
    )
    opts.finish()
    if cfg.dual and (not cfg.high or not cfg.low or cfg.high.lower() == cfg.low.lower()):
        raise DeviceUrlError(f"options 'high' and 'low' must be two different name endings in {url}")
    return cfg


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    stable_since: float


class HotFolderDriver:
    """Polls a folder; `poll(now)` does one pass and can be driven by a fake clock in tests."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.config = parse_folder_url(url)
        self._seen: dict[str, _Seen] = {}
        self._half_pairs: dict[str, tuple[float, ImageCapture]] = {}
        self._taken = TakenFiles(self.config.folder / ".parcelguard-taken.json")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._up: bool | None = None
        self.on_shot: ShotCallback = lambda _shot: None
        self.on_status: StatusCallback = lambda _d, _u, _t: None
        self.on_reject: RejectCallback = lambda _n, _r: None

    def start(
        self, on_shot: ShotCallback, on_status: StatusCallback, on_reject: RejectCallback | None = None
    ) -> None:
        self.bind(on_shot, on_status, on_reject)
        self._thread = threading.Thread(target=self._run, name="xray-hotfolder", daemon=True)
        self._thread.start()

    def bind(
        self, on_shot: ShotCallback, on_status: StatusCallback, on_reject: RejectCallback | None = None
    ) -> None:
        """Set the callbacks without starting the thread (for driving `poll` directly)."""
        self.on_shot, self.on_status = on_shot, on_status
        if on_reject is not None:
            self.on_reject = on_reject
        if self.config.after == "keep":
            self._taken.load()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll(time.monotonic())
            except Exception:
                # A failing consumer must not stop the folder; the image itself is already in done/.
                log.exception("hot folder %s: pass failed", self.config.folder)
            self._stop.wait(self.config.poll_s)
        if self._up:
            self.on_status(self.url, False, "stopped")

    def _status(self, up: bool, detail: str) -> None:
        if up != self._up:
            self._up = up
            (log.info if up else log.warning)("hot folder %s: %s", self.config.folder, detail)
            self.on_status(self.url, up, detail)

    def _matches(self, name: str) -> bool:
        low = name.lower()
        return not name.startswith(".") and any(fnmatch.fnmatch(low, p.lower()) for p in self.config.patterns)

    def poll(self, now: float) -> None:
        """One pass: note sizes, take files that have been stable for settle_ms, flush stale half pairs."""
        try:
            entries = [e for e in os.scandir(self.config.folder) if e.is_file(follow_symlinks=False)]
        except OSError as exc:
            self._status(False, f"folder unreadable: {exc.strerror or exc}")
            return
        self._status(True, "watching")
        present: set[str] = set()
        ready: list[os.DirEntry[str]] = []
        for entry in sorted(entries, key=lambda e: e.name):
            if not self._matches(entry.name):
                continue
            present.add(entry.name)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            seen = self._seen.get(entry.name)
            if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self._seen[entry.name] = _Seen(st.st_size, st.st_mtime_ns, now)
                if self.config.settle_s > 0:
                    continue
            elif now - seen.stable_since < self.config.settle_s:
                continue
            if self._taken.contains(entry.name, st.st_size, st.st_mtime_ns):
                continue
            ready.append(entry)
        for name in set(self._seen) - present:
            del self._seen[name]
        for entry in ready:
            self._take(Path(entry.path), now)
        self._flush_half_pairs(now)

    def _take(self, path: Path, now: float) -> None:
        try:
            st = path.stat()
            data, content_type = load_image_file(path, max_bytes=self.config.max_bytes)
        except FileNotFoundError:
            # Taken away by someone else between the listing and now: nothing to do.
            self._seen.pop(path.name, None)
            return
        except ImageRefused as exc:
            self._quarantine(path, f"{exc.reason}: {exc}")
            return
        except OSError as exc:
            self._quarantine(path, f"unreadable: {exc}")
            return
        except Exception as exc:
            # Whatever else reading one file raises, that file must leave the folder: left in place it
            # would raise again on every pass and hold up every later shot behind it.
            log.exception("hot folder %s: reading %s failed", self.config.folder, path.name)
            self._quarantine(path, f"cannot be read: {type(exc).__name__}: {exc}")
            return
        at_utc = datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="milliseconds")
        energy, key = self._energy(path.name)
        kind: ImageKind = "xray_low" if energy == "low" else self.config.kind
        capture = ImageCapture(kind=kind, data=data, name=path.name, at_utc=at_utc, content_type=content_type)
        if not self._finish(path, st.st_size, st.st_mtime_ns):
            return
        if energy is None:
            self.on_shot((capture,))
            return
        other = self._half_pairs.pop(key, None)
        if other is None:
            self._half_pairs[key] = (now, capture)
            return
        pair = (capture, other[1]) if energy == "high" else (other[1], capture)
        self.on_shot(pair)

    def _energy(self, name: str) -> tuple[str | None, str]:
        if not self.config.dual:
            return None, name
        stem = name.rsplit(".", 1)[0]
        for tag, energy in ((self.config.high, "high"), (self.config.low, "low")):
            if stem.lower().endswith(tag.lower()):
                return energy, stem[: -len(tag)]
        return None, stem

    def _flush_half_pairs(self, now: float) -> None:
        for key, (since, capture) in list(self._half_pairs.items()):
            if now - since >= self.config.pair_wait_s:
                del self._half_pairs[key]
                self.on_reject(capture.name, "dual-energy partner never arrived; image passed on alone")
                self.on_shot((capture,))

    def _finish(self, path: Path, size: int, mtime_ns: int) -> bool:
        """Make sure the file is never taken again; False when that could not be done (not emitted)."""
        try:
            if self.config.after == "move":
                _move_into(path, self.config.folder / DONE_DIR)
            elif self.config.after == "delete":
                path.unlink()
            else:
                self._taken.add(path.name, size, mtime_ns)
        except OSError as exc:
            # Emitting a file we cannot mark as taken would emit it again on every pass; remember
            # it in memory so it is neither emitted nor retried, and say so once.
            log.error("hot folder %s: cannot mark %s as taken: %s", self.config.folder, path.name, exc)
            self._taken.remember(path.name, size, mtime_ns)
            self.on_reject(path.name, f"not taken: cannot move or record it ({exc.strerror or exc})")
            return False
        self._seen.pop(path.name, None)
        return True

    def _quarantine(self, path: Path, reason: str) -> None:
        log.warning("hot folder %s: quarantining %s: %s", self.config.folder, path.name, reason)
        try:
            target = _move_into(path, self.config.folder / QUARANTINE_DIR)
            target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
        except OSError as exc:
            log.error("hot folder %s: cannot quarantine %s: %s", self.config.folder, path.name, exc)
            # Remember it anyway (in memory at least) so one bad file is not retried every pass.
            with contextlib.suppress(OSError):
                st = path.stat()
                self._taken.remember(path.name, st.st_size, st.st_mtime_ns)
        self._seen.pop(path.name, None)
        self.on_reject(path.name, reason)


def _move_into(path: Path, folder: Path) -> Path:
    """Move `path` into `folder`, never overwriting: a repeated name gets a numeric suffix."""
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(str(path), str(target))
    return target
