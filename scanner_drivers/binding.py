"""Image binding: pairs each read with the image shot that belongs to it; reports reads left without one."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from scanner_drivers.types import ImageCapture, ScanRead

BindMode = Literal["sequence", "window", "token"]
Shot = tuple[ImageCapture, ...]


class BindingConfigError(ValueError):
    """The binder's settings cannot work (negative window, token pattern without a group ...)."""


@dataclass(frozen=True)
class Bound:
    """A read with its image shot, or with none: `status` "missing image" means it never came."""

    read: ScanRead
    images: Shot
    status: Literal["bound", "missing image"]
    detail: str


@dataclass(frozen=True)
class Orphan:
    """An image shot that no read claimed."""

    images: Shot
    reason: str


@dataclass
class BindResult:
    bound: list[Bound] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)


@dataclass
class _PendingShot:
    shot: Shot
    at: float
    token: str | None


class ImageBinder:
    """One binder per image source (the X-ray folder, the camera).

    - "sequence": the n-th shot belongs to the n-th read (a shot that arrives more than `before_s`
      before the oldest waiting read is an orphan, so a lost shot does not shift every later one);
    - "window": a shot belongs to the read whose time is nearest, within [-before_s, +after_s];
    - "token": a shot belongs to the read one of whose codes appears in its file name, as the
      `token` group of `token_pattern` (default: the longest run of letters and digits).
    A read waits `wait_s` for its shot and is then released as "missing image", never dropped.
    """

    def __init__(
        self,
        mode: BindMode,
        *,
        wait_s: float = 3.0,
        before_s: float = 0.5,
        after_s: float = 3.0,
        token_pattern: str = r"(?P<token>[A-Za-z0-9]{8,40})",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in ("sequence", "window", "token"):
            raise BindingConfigError(f"binding mode must be sequence, window or token, not {mode!r}")
        if min(wait_s, before_s, after_s) < 0:
            raise BindingConfigError("binding times must not be negative")
        try:
            self._token = re.compile(token_pattern)
        except re.error as exc:
            raise BindingConfigError(f"token pattern: {exc}") from None
        if "token" not in self._token.groupindex:
            raise BindingConfigError("token pattern needs a (?P<token>...) group")
        self.mode = mode
        self.wait_s, self.before_s, self.after_s = wait_s, before_s, after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._reads: list[ScanRead] = []
        self._shots: list[_PendingShot] = []

    def add_read(self, read: ScanRead) -> None:
        with self._lock:
            self._reads.append(read)

    def add_shot(self, shot: Shot | ImageCapture, at_monotonic: float | None = None) -> None:
        """Register a shot; its time is when it arrived unless the caller knows better."""
        images = (shot,) if isinstance(shot, ImageCapture) else tuple(shot)
        if not images:
            return
        token = None
        if self.mode == "token":
            tokens = [m.group("token") for c in images for m in self._token.finditer(c.name)]
            token = max(tokens, key=len) if tokens else None
        at = self._clock() if at_monotonic is None else at_monotonic
        with self._lock:
            self._shots.append(_PendingShot(images, at, token))

    def pending(self) -> tuple[int, int]:
        """(reads waiting, shots waiting)."""
        with self._lock:
            return len(self._reads), len(self._shots)

    def poll(self, now: float | None = None) -> BindResult:
        """Match what can be matched; release reads and shots that have waited long enough."""
        now = self._clock() if now is None else now
        out = BindResult()
        with self._lock:
            if self.mode == "sequence":
                self._match_sequence(out)
            elif self.mode == "window":
                self._match_window(out, now)
            else:
                self._match_token(out)
            self._expire(out, now)
        return out

    def flush(self) -> BindResult:
        """Release everything still waiting (shutdown): reads as missing, shots as orphans."""
        return self.poll(float("inf"))

    def _bind(self, out: BindResult, read: ScanRead, shot: _PendingShot, how: str) -> None:
        self._reads.remove(read)
        self._shots.remove(shot)
        out.bound.append(Bound(read, shot.shot, "bound", how))

    def _match_sequence(self, out: BindResult) -> None:
        while self._reads and self._shots:
            read, shot = self._reads[0], self._shots[0]
            if shot.at < read.at_monotonic - self.before_s:
                self._shots.pop(0)
                out.orphans.append(Orphan(shot.shot, "arrived before any waiting read"))
                continue
            self._bind(out, read, shot, "by sequence")

    def _match_window(self, out: BindResult, now: float) -> None:
        for shot in list(self._shots):
            fits = [
                r
                for r in self._reads
                if r.at_monotonic - self.before_s <= shot.at <= r.at_monotonic + self.after_s
            ]
            if not fits:
                continue
            best = min(fits, key=lambda r: abs(shot.at - r.at_monotonic))
            gap = abs(shot.at - best.at_monotonic)
            # A read still to come (later than now) could be nearer to a shot taken after `best`.
            if shot.at > best.at_monotonic and now - shot.at < gap:
                continue
            self._bind(out, best, shot, f"by time window ({shot.at - best.at_monotonic:+.3f} s)")

    def _match_token(self, out: BindResult) -> None:
        for shot in list(self._shots):
            if shot.token is None:
                self._shots.remove(shot)
                out.orphans.append(Orphan(shot.shot, "no token in the file name"))
                continue
            for read in self._reads:
                if any(shot.token == c.text or shot.token in c.text for c in read.codes):
                    self._bind(out, read, shot, f"by token {shot.token}")
                    break

    def _expire(self, out: BindResult, now: float) -> None:
        for read in list(self._reads):
            if now - read.at_monotonic >= self.wait_s:
                self._reads.remove(read)
                out.bound.append(Bound(read, (), "missing image", f"no image within {self.wait_s:g} s"))
        for shot in list(self._shots):
            if now - shot.at >= self.wait_s + self.before_s:
                self._shots.remove(shot)
                out.orphans.append(Orphan(shot.shot, "no read claimed it"))
