"""Frame assembly for byte streams: prefix/suffix delimited frames out of arbitrary chunks, pure."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_FRAME = 4096


class FramingError(ValueError):
    """A framing configuration cannot work (no suffix, a delimiter inside another, a bad limit)."""


@dataclass
class FrameStats:
    """What the assembler threw away; totals do not depend on how the stream was chunked."""

    frames: int = 0
    overlong: int = 0
    empty: int = 0
    dropped_bytes: int = 0
    aborted: int = 0


class FrameAssembler:
    """Cuts a byte stream into frames `prefix + payload + suffix` and yields the payloads.

    Rules, chosen so the result is the same however the stream is chunked:
    - with a prefix, bytes outside a frame are garbage and dropped;
    - a new prefix inside an open frame aborts the open one (resynchronises on STX);
    - a payload longer than `max_len` is dropped whole and counted as overlong, then the
      assembler skips to the next suffix (or prefix);
    - empty payloads are counted and not returned.
    """

    def __init__(self, suffix: bytes, prefix: bytes = b"", max_len: int = DEFAULT_MAX_FRAME) -> None:
        if not suffix:
            raise FramingError("a frame suffix is required (e.g. CR, LF, CRLF or ETX)")
        if max_len < 1:
            raise FramingError("max frame length must be at least 1 byte")
        if prefix and (prefix in suffix or suffix in prefix):
            raise FramingError("prefix and suffix must differ and not contain each other")
        self.prefix = prefix
        self.suffix = suffix
        self.max_len = max_len
        self.stats = FrameStats()
        self._buf = bytearray()
        # "out": waiting for a prefix; "in": inside a frame; "skip": discarding an overlong frame.
        self._state = "in" if not prefix else "out"
        self._keep = max(len(prefix), len(suffix)) - 1

    @property
    def pending(self) -> int:
        """Bytes held back: a partial frame or a partial delimiter."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes from the wire; return every payload completed by them, in order."""
        self._buf += chunk
        out: list[bytes] = []
        while self._step(out):
            pass
        return out

    def reset(self) -> int:
        """Forget a partial frame (the port vanished mid-frame); returns the bytes discarded."""
        lost = len(self._buf)
        if lost and self._state == "in":
            self.stats.aborted += 1
        self.stats.dropped_bytes += lost
        self._buf.clear()
        self._state = "in" if not self.prefix else "out"
        return lost

    def _find_prefix(self) -> int:
        return self._buf.find(self.prefix) if self.prefix else -1

    def _drop(self, n: int) -> None:
        self.stats.dropped_bytes += n
        del self._buf[:n]

    def _step(self, out: list[bytes]) -> bool:
        """Make one transition; False when more bytes are needed."""
        buf = self._buf
        if self._state == "out":
            i = self._find_prefix()
            if i < 0:
                self._drop(max(0, len(buf) - (len(self.prefix) - 1)))
                return False
            self._drop(i)
            del buf[: len(self.prefix)]
            self._state = "in"
            return True
        s = buf.find(self.suffix)
        p = self._find_prefix()
        if self._state == "skip":
            if s < 0 and p < 0:
                self._drop(max(0, len(buf) - self._keep))
                return False
            if p >= 0 and (s < 0 or p < s):
                self._drop(p)
                self._state = "out"
                return True
            self._drop(s + len(self.suffix))
            self._state = "out" if self.prefix else "in"
            return True
        # Inside a frame.
        if p >= 0 and (s < 0 or p < s):
            # Counted as overlong when it already was too long, so chunking cannot change the tally.
            if p > self.max_len:
                self.stats.overlong += 1
            else:
                self.stats.aborted += 1
            self._drop(p)
            self._state = "out"
            return True
        if s < 0:
            if len(buf) >= self.max_len + self._keep + 1:
                self.stats.overlong += 1
                self._state = "skip"
                return True
            return False
        payload = bytes(buf[:s])
        del buf[: s + len(self.suffix)]
        self._state = "out" if self.prefix else "in"
        if len(payload) > self.max_len:
            self.stats.overlong += 1
            self.stats.dropped_bytes += len(payload) + len(self.suffix)
        elif not payload:
            self.stats.empty += 1
        else:
            self.stats.frames += 1
            out.append(payload)
        return True
