"""Serial barcode scanner driver: opens a port by URL, assembles frames on a thread, reconnects on unplug."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import serial
from pydantic import ValidationError

from scanner_drivers.framing import FrameAssembler
from scanner_drivers.scanners.presets import FramingConfig, PresetError, parse_bytes, preset
from scanner_drivers.scanners.scanner import ReadCallback, StatusCallback
from scanner_drivers.scanners.serial_messages import CompiledFraming, Message, interpret
from scanner_drivers.types import DeviceError, DeviceUrlError, ScanRead
from scanner_drivers.urlopts import UrlOptions, host_port

log = logging.getLogger(__name__)

SCHEMES = ("serial", "socket", "rfc2217", "loop")
POLL_S = 0.1
FIRST_BACKOFF_S = 0.1
# Options pyserial's own URL handlers understand; they are passed through to it untouched.
_PASSTHROUGH = {
    "socket": ("logging",),
    "loop": ("logging",),
    "rfc2217": ("logging", "ign_set_control", "poll_modem", "timeout"),
}
_FRAMING_TEXT = ("prefix", "suffix", "separator", "trigger_on", "trigger_off", "host_ack", "encoding")


@dataclass
class SerialStats:
    """Counters a site engineer reads when a scanner misbehaves (see `parcelguard devices listen`)."""

    reads: int = 0
    no_reads: int = 0
    heartbeats: int = 0
    replies: int = 0
    bad_text: int = 0
    disconnects: int = 0
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SerialScannerConfig:
    """Everything parsed from a scanner URL: the pyserial URL and port settings, and the framing."""

    url: str
    port_url: str
    framing: FramingConfig
    preset_name: str
    rtscts: bool
    xonxoff: bool
    exclusive: bool
    reconnect_max_s: float


def parse_scanner_url(url: str) -> SerialScannerConfig:
    """`serial:///dev/serial/by-id/...?preset=honeywell&suffix=CRLF`, `socket://h:p`, `rfc2217://`, `loop://`."""
    opts = UrlOptions(url)
    scheme = opts.parts.scheme
    if scheme not in SCHEMES:
        raise DeviceUrlError(f"not a serial scanner URL (use {', '.join(s + '://' for s in SCHEMES)}): {url}")
    if scheme == "serial":
        if opts.parts.netloc or not opts.parts.path.startswith("/"):
            raise DeviceUrlError(f"serial:// URL needs an absolute device path (serial:///dev/...): {url}")
        port_url = opts.parts.path
    elif scheme == "loop":
        port_url = "loop://"
    else:
        host, port = host_port(url)
        port_url = f"{scheme}://{host}:{port}"
    passthrough = [f"{k}={opts.text(k, '')}" for k in _PASSTHROUGH.get(scheme, ()) if opts.has(k)]
    if passthrough:
        port_url += "?" + "&".join(passthrough)
    name = opts.text("preset", "generic")
    try:
        base = preset(name)
    except PresetError as exc:
        raise DeviceUrlError(f"{exc} in {url}") from None
    overrides: dict[str, Any] = {}
    for key in _FRAMING_TEXT:
        if opts.has(key):
            overrides[key] = opts.text(key, "")
    for key in ("baudrate", "bytesize", "stopbits", "max_frame"):
        if opts.has(key):
            overrides[key] = opts.integer(key, 0, 0, 1 << 30)
    if opts.has("parity"):
        overrides["parity"] = opts.text("parity", "N").upper()
    if opts.has("no_read"):
        overrides["no_read"] = tuple(s for s in opts.text("no_read", "").split(",") if s)
    if opts.has("heartbeat"):
        overrides["heartbeats"] = (*base.heartbeats, opts.text("heartbeat", ""))
    if opts.has("aim"):
        overrides["aim_ids"] = opts.flag("aim", False)
    rtscts = opts.flag("rtscts", False)
    xonxoff = opts.flag("xonxoff", False)
    exclusive = opts.flag("exclusive", True)
    reconnect_max = opts.number("reconnect_max", 5.0, 0.1, 600.0)
    opts.finish()
    try:
        framing = FramingConfig.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DeviceUrlError(f"option {where!r}: {first['msg']} in {url}") from None
    return SerialScannerConfig(
        url, port_url, framing, name.lower(), rtscts, xonxoff, exclusive, reconnect_max
    )


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SerialScanner:
    """A ScannerDriver for one serial (or serial-over-network) barcode scanner."""

    def __init__(self, url: str) -> None:
        self.config = parse_scanner_url(url)
        self.url = url
        self.stats = SerialStats()
        self._framing = CompiledFraming.of(self.config.framing)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: serial.SerialBase | None = None
        self._write_lock = threading.Lock()
        self._trigger_id: int | None = None
        # Site diagnostics (`parcelguard devices listen`): sees every frame, heartbeats included.
        self.on_frame: Callable[[bytes, Message], None] | None = None

    def start(self, on_read: ReadCallback, on_status: StatusCallback) -> None:
        if self._thread is not None:
            raise DeviceError(f"scanner {self.url} already started")
        self._thread = threading.Thread(
            target=self._run, args=(on_read, on_status), name="serial-scanner", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return self._port is not None

    def write(self, data: bytes) -> None:
        """Send bytes to the scanner (commands, host ACK); DeviceError when it is not connected."""
        with self._write_lock:
            port = self._port
            if port is None:
                raise DeviceError(f"scanner {self.url} is not connected")
            try:
                port.write(data)
                port.flush()
            except (serial.SerialException, OSError) as exc:
                raise DeviceError(f"scanner {self.url}: write failed: {exc}") from exc

    def trigger(self, on: bool = True) -> int | None:
        """Send the preset's trigger command; reads after `on` carry the returned trigger id."""
        command = self.config.framing.bytes_of("trigger_on" if on else "trigger_off")
        if not command:
            raise DeviceError(f"scanner preset {self.config.preset_name!r} has no trigger command")
        if on:
            self._trigger_id = (self._trigger_id or 0) + 1
        self.write(command)
        return self._trigger_id

    def _open(self) -> serial.SerialBase:
        cfg = self.config
        port = serial.serial_for_url(
            cfg.port_url,
            do_not_open=True,
            baudrate=cfg.framing.baudrate,
            bytesize=cfg.framing.bytesize,
            parity=cfg.framing.parity,
            stopbits=cfg.framing.stopbits,
            rtscts=cfg.rtscts,
            xonxoff=cfg.xonxoff,
            timeout=POLL_S,
            # pyserial's RFC 2217 client refuses a write timeout.
            write_timeout=None if cfg.port_url.startswith("rfc2217:") else 1.0,
            exclusive=cfg.exclusive,
        )
        port.open()
        return port

    def _run(self, on_read: ReadCallback, on_status: StatusCallback) -> None:
        cfg = self.config.framing
        frames = FrameAssembler(parse_bytes(cfg.suffix), parse_bytes(cfg.prefix), cfg.max_frame)
        host_ack = parse_bytes(cfg.host_ack)
        backoff = FIRST_BACKOFF_S
        up: bool | None = None
        failures = 0
        while not self._stop.is_set():
            if self._port is None:
                try:
                    port = self._open()
                except (serial.SerialException, OSError, ValueError, NotImplementedError) as exc:
                    failures += 1
                    if failures == 1:
                        log.warning("scanner %s: cannot open: %s (retrying quietly)", self.url, exc)
                    else:
                        log.debug("scanner %s: still cannot open: %s", self.url, exc)
                    if up is not False:
                        up = False
                        on_status(self.url, False, f"cannot open: {exc}")
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.config.reconnect_max_s)
                    continue
                with self._write_lock:
                    self._port = port
                if failures:
                    log.info("scanner %s: open again after %d failed attempts", self.url, failures)
                failures, backoff, up = 0, FIRST_BACKOFF_S, True
                on_status(self.url, True, "connected")
            try:
                data = self._port.read(max(1, self._port.in_waiting))  # type: ignore[attr-defined]
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial's own state after the device node vanished.
                self._lost(frames, f"lost: {exc}")
                up = False
                failures = 1
                log.warning("scanner %s: %s (reconnecting quietly)", self.url, exc)
                on_status(self.url, False, f"lost: {exc}")
                continue
            if not data:
                continue
            for payload in frames.feed(data):
                try:
                    self._deliver(payload, on_read)
                except Exception:
                    # The consumer's bug must not stop the scanner: the next parcel still needs reading.
                    log.exception("scanner %s: read handler failed on %r", self.url, payload[:64])
                if host_ack:
                    try:
                        self.write(host_ack)
                    except DeviceError as exc:
                        log.debug("scanner %s: host ACK not sent: %s", self.url, exc)
        with self._write_lock:
            last, self._port = self._port, None
        if last is not None:
            last.close()
        if up:
            on_status(self.url, False, "stopped")

    def _lost(self, frames: FrameAssembler, why: str) -> None:
        lost = frames.reset()
        if lost:
            log.warning("scanner %s: %d bytes of an unfinished message lost with the port", self.url, lost)
        self.stats.disconnects += 1
        with self._write_lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                log.debug("scanner %s: close after %s failed", self.url, why)

    def _deliver(self, payload: bytes, on_read: ReadCallback) -> None:
        msg = interpret(payload, self._framing)
        if self.on_frame is not None:
            self.on_frame(payload, msg)
        if msg.bad_text:
            self.stats.bad_text += 1
            log.warning(
                "scanner %s: message is not valid %s; kept with replacement characters",
                self.url,
                self.config.framing.encoding,
            )
        if msg.kind == "heartbeat":
            self.stats.heartbeats += 1
            return
        if msg.kind in ("reply", "empty"):
            self.stats.replies += msg.kind == "reply"
            return
        if msg.kind == "noread":
            self.stats.no_reads += 1
        else:
            self.stats.reads += 1
        on_read(
            ScanRead(
                device=self.url,
                codes=msg.codes,
                at_utc=_now_utc(),
                at_monotonic=time.monotonic(),
                raw=payload,
                trigger_id=self._trigger_id,
            )
        )
