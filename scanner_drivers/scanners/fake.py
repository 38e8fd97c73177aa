"""fake:// scanner: replays a JSON-lines file of reads, with images, through the real driver interface."""

from __future__ import annotations

import json
import logging
import mimetypes
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from scanner_drivers.scanners.scanner import ReadCallback, StatusCallback
from scanner_drivers.types import Code, DeviceUrlError, ImageCapture, ImageKind, ScanRead

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 64 * 1024 * 1024
IMAGE_KINDS: tuple[ImageKind, ...] = ("xray", "xray_low", "camera", "label")


class ReplayLineError(ValueError):
    """One line of a replay file could not be understood; the message names the line."""


@dataclass(frozen=True)
class ReplayLine:
    """One parsed line: the read it produces and the delay before it (seconds)."""

    read: ScanRead
    delay: float
    extra: dict[str, Any]


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_line(text: str, lineno: int, base: Path, device: str) -> ReplayLine:
    """Turn one JSON line into a ScanRead; unknown keys are kept in `extra` for the caller."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayLineError(f"line {lineno}: not JSON ({exc.msg})") from exc
    if not isinstance(obj, dict):
        raise ReplayLineError(f"line {lineno}: expected a JSON object")
    codes_raw = obj.pop("codes", [])
    if not isinstance(codes_raw, list):
        raise ReplayLineError(f"line {lineno}: 'codes' must be a list")
    codes: list[Code] = []
    for c in codes_raw:
        if isinstance(c, str):
            codes.append(Code(text=c, symbology="unknown", engine="fake"))
        elif isinstance(c, dict) and isinstance(c.get("text"), str):
            codes.append(Code(text=c["text"], symbology=str(c.get("symbology", "unknown")), engine="fake"))
        else:
            raise ReplayLineError(f"line {lineno}: each code must be a string or {{'text': ...}}")
    images_raw = obj.pop("images", [])
    if not isinstance(images_raw, list):
        raise ReplayLineError(f"line {lineno}: 'images' must be a list")
    images: list[ImageCapture] = []
    for item in images_raw:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise ReplayLineError(f"line {lineno}: each image must be {{'path': ..., 'kind': ...}}")
        kind = item.get("kind", "camera")
        if kind not in IMAGE_KINDS:
            raise ReplayLineError(f"line {lineno}: image kind {kind!r} not one of {IMAGE_KINDS}")
        path = (base / item["path"]).resolve()
        try:
            size = path.stat().st_size
            if size > MAX_IMAGE_BYTES:
                raise ReplayLineError(f"line {lineno}: image {item['path']} is over the size limit")
            data = path.read_bytes()
        except OSError as exc:
            raise ReplayLineError(f"line {lineno}: image {item['path']}: {exc.strerror}") from exc
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        images.append(
            ImageCapture(kind=kind, data=data, name=path.name, at_utc=_now_utc(), content_type=ctype)
        )
    delay = obj.pop("delay", 0.0)
    if not isinstance(delay, (int, float)) or delay < 0:
        raise ReplayLineError(f"line {lineno}: 'delay' must be a non-negative number")
    read = ScanRead(
        device=device,
        codes=tuple(codes),
        at_utc=_now_utc(),
        at_monotonic=time.monotonic(),
        raw=text.encode(),
        trigger_id=lineno,
        images=tuple(images),
    )
    return ReplayLine(read=read, delay=float(delay), extra=obj)


class FakeScanner:
    """Replays `fake:///path/scenario.jsonl?speed=1.0`; garbage lines are reported and skipped.

    `speed` scales the per-line `delay` (0 replays as fast as the consumer takes reads).
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "fake":
            raise DeviceUrlError(f"not a fake:// URL: {url}")
        path = parts.netloc + parts.path if parts.netloc not in ("", "localhost") else parts.path
        if not path:
            raise DeviceUrlError(f"fake:// URL names no file: {url}")
        self.url = url
        self.path = Path(path)
        query = parse_qs(parts.query)
        try:
            self.speed = float(query.get("speed", ["1.0"])[0])
        except ValueError as exc:
            raise DeviceUrlError(f"fake:// speed must be a number: {url}") from exc
        unknown = set(query) - {"speed"}
        if unknown:
            raise DeviceUrlError(f"fake:// unknown options {sorted(unknown)}: {url}")
        self.bad_lines: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_read: ReadCallback, on_status: StatusCallback) -> None:
        if not self.path.is_file():
            raise DeviceUrlError(f"fake:// scenario file not found: {self.path}")
        self._thread = threading.Thread(
            target=self._run, args=(on_read, on_status), name="fake-scanner", daemon=True
        )
        self._thread.start()

    def _run(self, on_read: ReadCallback, on_status: StatusCallback) -> None:
        on_status(self.url, True, "replay started")
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for lineno, text in enumerate(fh, start=1):
                if self._stop.is_set():
                    break
                text = text.strip()
                if not text or text.startswith("#"):
                    continue
                try:
                    line = parse_line(text, lineno, self.path.parent, self.url)
                except ReplayLineError as exc:
                    self.bad_lines.append(str(exc))
                    log.warning("fake scanner %s: %s", self.path.name, exc)
                    continue
                if line.delay and self.speed > 0 and self._stop.wait(line.delay / self.speed):
                    break
                on_read(line.read)
        on_status(self.url, False, "replay finished")

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
