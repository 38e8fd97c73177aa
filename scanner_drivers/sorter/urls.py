"""Sorter URLs parsed and checked without opening anything: scheme, mode, options and link limits."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from scanner_drivers.sorter import modbus_layout as layout
from scanner_drivers.sorter.link import LinkLimitError, LinkLimits, SorterMode
from scanner_drivers.sorter.telegram import telegram_limits
from scanner_drivers.types import DeviceUrlError
from scanner_drivers.urlopts import UrlOptions, host_port

SCHEMES = ("tcp", "serial", "modbus")


@dataclass(frozen=True)
class TelegramUrl:
    """`tcp://host:port?...` or `serial:///dev/...?...`; `mode` says who starts the exchange."""

    url: str
    scheme: str
    mode: SorterMode
    host: str
    port: int
    device: str
    baudrate: int
    ack_timeout: float
    connect_timeout: float
    chute: str | None
    limits: LinkLimits


@dataclass(frozen=True)
class ModbusUrl:
    """`modbus://host:502?unit=1&register=100&slots=8` (mailbox ring) or `...?coil=16` (one coil)."""

    url: str
    host: str
    port: int
    unit: int
    register: int
    slots: int
    coil: int | None
    ack_timeout: float
    poll_s: float
    chute: str | None
    limits: LinkLimits


def _check_default_chute(limits: LinkLimits, chute: str | None, url: str) -> None:
    try:
        limits.check_chute(chute)
    except LinkLimitError as exc:
        raise DeviceUrlError(f"option 'chute': {exc} in {url}") from None


def parse_telegram_url(url: str) -> TelegramUrl:
    opts = UrlOptions(url)
    scheme = opts.parts.scheme
    host, port, device, baud = "", 0, "", 0
    if scheme == "tcp":
        host, port = host_port(url)
        if opts.parts.path not in ("", "/"):
            raise DeviceUrlError(f"tcp:// sorter URL takes no path: {url}")
    elif scheme == "serial":
        device = opts.parts.path
        if not device.startswith("/") or opts.parts.netloc:
            raise DeviceUrlError(f"serial:// URL needs an absolute device path (serial:///dev/...): {url}")
        baud = opts.integer("baudrate", 9600, 50, 4_000_000)
    else:
        raise DeviceUrlError(f"not a telegram sorter URL (tcp:// or serial://): {url}")
    mode = opts.choice("mode", "divert", ("divert", "request"))
    ack = opts.number("ack_timeout", 0.5, 0.001, 60.0)
    connect = opts.number("connect_timeout", 1.0, 0.001, 60.0)
    chute = opts.optional_text("chute")
    opts.finish()
    limits = telegram_limits(f"{scheme} telegram link", "request" if mode == "request" else "divert")
    if chute is not None and mode == "request":
        raise DeviceUrlError(f"option 'chute' applies to mode=divert only (answers name chutes): {url}")
    _check_default_chute(limits, chute, url)
    return TelegramUrl(url, scheme, limits.mode, host, port, device, baud, ack, connect, chute, limits)


def parse_modbus_url(url: str) -> ModbusUrl:
    host, port = host_port(url, layout.DEFAULT_PORT)
    opts = UrlOptions(url)
    if opts.parts.scheme != "modbus":
        raise DeviceUrlError(f"not a modbus:// URL: {url}")
    if opts.parts.path not in ("", "/"):
        raise DeviceUrlError(f"modbus:// URL takes no path: {url}")
    if opts.has("mode") and opts.text("mode", "") != "divert":
        raise DeviceUrlError(f"option 'mode': destination requests need tcp:// or serial://: {url}")
    unit = opts.integer("unit", 1, 0, 247)
    if opts.has("coil") and (opts.has("register") or opts.has("slots")):
        raise DeviceUrlError(f"give either coil= or register=/slots=, not both: {url}")
    coil = opts.integer("coil", -1, 0, 65534) if opts.has("coil") else None
    slots = opts.integer("slots", 1, 1, layout.MAX_SLOTS)
    register = opts.integer("register", 0, 0, 65535 - slots * layout.SLOT_STRIDE)
    ack = opts.number("ack_timeout", 0.5, 0.001, 60.0)
    poll_s = opts.integer("poll_ms", 20, 1, 1000) / 1000
    chute = opts.optional_text("chute")
    opts.finish()
    if coil is None:
        limits = layout.mailbox_limits(slots)
        _check_default_chute(limits, chute, url)
    else:
        limits = layout.coil_limits(chute)
    return ModbusUrl(url, host, port, unit, register, slots, coil, ack, poll_s, chute, limits)


def parse_sorter_url(url: str) -> TelegramUrl | ModbusUrl:
    """Parse and check a sorter URL of any scheme; DeviceUrlError names what is wrong."""
    scheme = urlsplit(url).scheme
    if scheme in ("tcp", "serial"):
        return parse_telegram_url(url)
    if scheme == "modbus":
        return parse_modbus_url(url)
    raise DeviceUrlError(
        f"unknown sorter URL scheme {scheme!r} in {url} (use tcp://, serial:// or modbus://)"
    )
