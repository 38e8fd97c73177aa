"""Serial scanner framing as configuration: delimiters, no-reads, heartbeats, triggers, vendor presets."""

from __future__ import annotations

import codecs
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scanner_drivers.framing import DEFAULT_MAX_FRAME

# Names accepted wherever a delimiter or command is written: `CR`, `CR+LF`, `STX`, `\x02`, `SYN+T+CR`.
CONTROL_NAMES = {
    "NUL": b"\x00", "SOH": b"\x01", "STX": b"\x02", "ETX": b"\x03", "EOT": b"\x04", "ENQ": b"\x05",
    "ACK": b"\x06", "BEL": b"\x07", "TAB": b"\x09", "LF": b"\n", "CR": b"\r", "CRLF": b"\r\n",
    "DC1": b"\x11", "DC3": b"\x13", "NAK": b"\x15", "SYN": b"\x16", "ESC": b"\x1b", "GS": b"\x1d",
    "RS": b"\x1e", "US": b"\x1f", "NONE": b"",
}  # fmt: skip

# AIM symbology identifiers (ISO/IEC 15424) mapped onto the names the image decoders use.
AIM_SYMBOLOGIES = {
    "A": "Code39", "C": "Code128", "E": "EAN13", "F": "Codabar", "G": "Code93", "I": "ITF",
    "L": "PDF417", "Q": "QRCode", "d": "DataMatrix", "e": "DataBar", "z": "Aztec", "U": "MaxiCode",
}  # fmt: skip
_AIM = re.compile(r"\](?P<code>[A-Za-z])(?P<mod>[0-9A-Za-z])")


class PresetError(ValueError):
    """A framing option or preset name is not valid; the message names it."""


def parse_bytes(text: str) -> bytes:
    """`CR+LF`, `STX`, `\\r\\n`, `SYN+T+CR` or plain text into bytes; PresetError when unreadable."""
    if text == "":
        return b""
    out = b""
    for token in text.split("+") if "+" in text and text != "+" else [text]:
        if token.upper() in CONTROL_NAMES:
            out += CONTROL_NAMES[token.upper()]
            continue
        try:
            out += token.encode("latin-1").decode("unicode_escape").encode("latin-1")
        except (UnicodeError, ValueError) as exc:
            raise PresetError(f"cannot read {text!r} as bytes: {exc}") from None
    return out


class FramingConfig(BaseModel):
    """How one scanner model frames what it sends, and what the station may send to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baudrate: int = Field(9600, ge=50, le=4_000_000, description="line speed in bit/s")
    bytesize: Literal[5, 6, 7, 8] = Field(8, description="data bits per character")
    parity: Literal["N", "E", "O", "M", "S"] = Field("N", description="parity: none, even, odd, mark, space")
    stopbits: Literal[1, 2] = Field(1, description="stop bits")
    prefix: str = Field("", description="bytes before each message (e.g. STX), empty for none")
    suffix: str = Field("CR", description="bytes ending each message: CR, LF, CR+LF, ETX ...")
    no_read: tuple[str, ...] = Field((), description="messages that mean the scanner read nothing")
    separator: str = Field("", description="separator between several codes in one message, empty for none")
    heartbeats: tuple[str, ...] = Field((), description="regular expressions of messages to ignore")
    trigger_on: str = Field("", description="command that starts a read (bytes syntax), empty for none")
    trigger_off: str = Field("", description="command that ends a read (bytes syntax), empty for none")
    host_ack: str = Field("", description="bytes the station sends back after each message, empty for none")
    aim_ids: bool = Field(False, description="messages start with an AIM symbology identifier such as ]C1")
    max_frame: int = Field(DEFAULT_MAX_FRAME, ge=16, le=1 << 20, description="longest message in bytes")
    encoding: str = Field("utf-8", description="text encoding of the codes")

    @field_validator("prefix", "suffix", "trigger_on", "trigger_off", "host_ack")
    @classmethod
    def _readable_bytes(cls, value: str) -> str:
        parse_bytes(value)
        return value

    @field_validator("suffix")
    @classmethod
    def _suffix_needed(cls, value: str) -> str:
        if not parse_bytes(value):
            raise ValueError("a suffix is required to find where a message ends")
        return value

    @field_validator("heartbeats")
    @classmethod
    def _regexes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"heartbeat pattern {pattern!r}: {exc}") from None
        return value

    @field_validator("encoding")
    @classmethod
    def _codec(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r}") from None
        return value

    def bytes_of(self, name: str) -> bytes:
        return parse_bytes(str(getattr(self, name)))


_DMCC_REPLY = r"\|\|\d+(:\d+)?\[.*\].*"

PRESETS: dict[str, FramingConfig] = {
    "generic": FramingConfig(no_read=("NoRead", "?????")),
    # Xenon / Granit / Vuquest on RS-232 or USB-CDC: CR suffix, SYN T CR / SYN U CR serial trigger.
    "honeywell": FramingConfig(
        baudrate=115200, suffix="CR", no_read=("NR",), trigger_on="SYN+T+CR", trigger_off="SYN+U+CR"
    ),
    # DS/LI series and fixed-mount readers: CR LF suffix; fixed mounts send MOTEVTHB:nnn heartbeats.
    "zebra": FramingConfig(suffix="CR+LF", no_read=("NR", "NoRead"), heartbeats=(r"MOTEVTHB:\d+",)),
    # Matrix / Gryphon: CR LF suffix, NoRead, codes of one reading phase separated by commas.
    "datalogic": FramingConfig(suffix="CR+LF", no_read=("NoRead", "NOREAD"), separator=","),
    # DataMan: 115200, CR LF, DMCC commands `||>TRIGGER ON`; DMCC replies (`||0:1[OK]`) are not reads.
    "cognex": FramingConfig(
        baudrate=115200,
        suffix="CR+LF",
        no_read=("NoRead", "NOREAD"),
        trigger_on="||>TRIGGER ON+CR+LF",
        trigger_off="||>TRIGGER OFF+CR+LF",
        heartbeats=(_DMCC_REPLY,),
    ),
    # CLV6xx / Lector6xx host port: STX ... ETX, NoRead, reading gate on "21" / off "22".
    "sick": FramingConfig(
        baudrate=57600,
        prefix="STX",
        suffix="ETX",
        no_read=("NoRead",),
        separator=";",
        trigger_on="STX+21+ETX",
        trigger_off="STX+22+ETX",
    ),
    # Newland fixed and hand-held readers: CR LF suffix, same SYN T CR trigger as Honeywell.
    "newland": FramingConfig(
        baudrate=9600, suffix="CR+LF", no_read=("NR", "NG"), trigger_on="SYN+T+CR", trigger_off="SYN+U+CR"
    ),
}


def preset(name: str) -> FramingConfig:
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise PresetError(f"unknown scanner preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None


def split_aim(text: str) -> tuple[str, str]:
    """(symbology, text without the identifier); "unknown" when no known identifier leads."""
    m = _AIM.match(text)
    if not m:
        return "unknown", text
    code, mod = m.group("code"), m.group("mod")
    body = text[m.end() :]
    if code == "C" and mod == "1":
        return "GS1-128", body
    if code == "E" and mod == "4":
        return "EAN8", body
    if code == "X":
        return "unknown", body
    return AIM_SYMBOLOGIES.get(code, "unknown"), body
