"""A fake serial scanner on a local TCP port (open it as socket://) replaying recorded vendor messages."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections.abc import Sequence

# Messages as the vendors' scanners put them on the wire, with their framing, heartbeats and replies.
RECORDINGS: dict[str, tuple[bytes, ...]] = {
    "honeywell": (b"EA123456785CN\r", b"NR\r", b"\x06", b"1Z999AA10123456784\r"),
    "honeywell-aim": (b"]E09780201379629\r", b"]Q1EA123456785CN\r", b"]C1\x1d0034012345000000001\r"),
    "zebra": (b"MOTEVTHB:001\r\n", b"EA123456785CN\r\n", b"NR\r\n", b"MOTEVTHB:002\r\n"),
    "datalogic": (b"EA123456785CN,00340123450000000014\r\n", b"NoRead\r\n"),
    "cognex": (b"||0:1[OK]\r\n", b"EA123456785CN\r\n", b"NoRead\r\n"),
    "sick": (b"\x02EA123456785CN\x03", b"\x02NoRead\x03", b"\x02EA123456785CN;00340123450000000014\x03"),
    "newland": (b"EA123456785CN\r\n", b"NG\r\n"),
}


CONNECT_SETTLE_S = 0.2


class FakeSerialScanner:
    """Serves `frames` to the first client of 127.0.0.1:<free port>, in chunks that cut across frames.

    `chunk_seed` splits the byte stream at random points (same seed, same split); `disconnect_after`
    drops the client after that many frames, as an unplugged cable would, and serves the rest to
    the next client; `on_command` sends the next frame only when the station writes something
    (a trigger). Bytes the station sends are kept in `received`.
    """

    def __init__(
        self,
        frames: Sequence[bytes],
        *,
        chunk_seed: int | None = None,
        disconnect_after: int | None = None,
        on_command: bool = False,
        repeat: bool = False,
    ) -> None:
        self.frames = list(frames)
        self.chunk_seed = chunk_seed
        self.disconnect_after = disconnect_after
        self.on_command = on_command
        # Replay the whole recording to every new client (a demo scanner for `devices listen`).
        self.repeat = repeat
        self.received = bytearray()
        self.sent = 0
        self.connections = 0
        self._stop = threading.Event()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(2)
        self._server.settimeout(0.1)
        self._thread = threading.Thread(target=self._run, name="fake-serial-scanner", daemon=True)
        self.done = threading.Event()

    @classmethod
    def vendor(cls, name: str, **kwargs: object) -> FakeSerialScanner:
        if name not in RECORDINGS:
            raise ValueError(f"no recording for {name!r}; known: {', '.join(sorted(RECORDINGS))}")
        return cls(RECORDINGS[name], **kwargs)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self._server.getsockname()[1]}"

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._server.close()

    def _chunks(self, data: bytes, rng: random.Random | None) -> list[bytes]:
        if rng is None:
            return [data]
        out, i = [], 0
        while i < len(data):
            n = rng.randint(1, 7)
            out.append(data[i : i + n])
            i += n
        return out

    def _run(self) -> None:
        rng = random.Random(self.chunk_seed) if self.chunk_seed is not None else None
        while not self._stop.is_set() and (self.repeat or self.sent < len(self.frames)):
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.repeat:
                self.sent = 0
            client.settimeout(0.1)
            # pyserial's socket:// flushes its input right after connecting; a scanner that spoke
            # in that instant would be lost, so the fake (like a real idle line) waits a moment.
            if self._stop.wait(CONNECT_SETTLE_S):
                client.close()
                return
            with client:
                self._serve(client, rng)
        self.done.set()
        # Stay connectable (an idle scanner) until stopped, so the reader does not see an unplug.
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with client:
                self._stop.wait()

    def _serve(self, client: socket.socket, rng: random.Random | None) -> None:
        this_connection = 0
        while not self._stop.is_set() and self.sent < len(self.frames):
            if self.disconnect_after is not None and this_connection >= self.disconnect_after:
                # Half a frame, then the cable is pulled.
                with contextlib.suppress(OSError):
                    client.sendall(self.frames[self.sent][:2])
                return
            if self.on_command and not self._wait_command(client):
                return
            try:
                for part in self._chunks(self.frames[self.sent], rng):
                    client.sendall(part)
            except OSError:
                return
            self.sent += 1
            this_connection += 1
        self.done.set()
        # All sent: keep the line open until stopped or the client goes away.
        while not self._stop.is_set():
            if self._read_command(client) is False:
                return

    def _read_command(self, client: socket.socket) -> bool | None:
        try:
            data = client.recv(256)
        except TimeoutError:
            return None
        except OSError:
            return False
        if not data:
            self._stop.wait(0.1)
            return False
        self.received += data
        return True

    def _wait_command(self, client: socket.socket) -> bool:
        while not self._stop.is_set():
            got = self._read_command(client)
            if got is not None:
                return got
        return False
