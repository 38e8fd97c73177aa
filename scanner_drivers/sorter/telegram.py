"""Sorter telegrams: STX/ETX-framed ASCII fields separated by '|', encoded and parsed (see hardware.md)."""

from __future__ import annotations

from dataclasses import dataclass

STX = b"\x02"
ETX = b"\x03"
SEP = "|"
MAX_TELEGRAM = 256
MAX_SEQ = 99999
# Tracking ids and chute names travel as plain fields, so they must be printable ASCII without '|'.
_FIELD_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {SEP}


class TelegramError(ValueError):
    """A telegram could not be built or parsed; the message says which field is wrong."""


@dataclass(frozen=True)
class Telegram:
    """One parsed telegram: its kind (DIV, ACK, NAK, RES, HB), sequence number and remaining fields."""

    kind: str
    seq: int
    fields: tuple[str, ...]


def check_field(name: str, value: str, max_len: int = 64) -> str:
    """Return `value` if it can travel as a telegram field, else raise TelegramError naming it."""
    if not value and name == "tracking id":
        raise TelegramError("tracking id is empty")
    if len(value) > max_len:
        raise TelegramError(f"{name} is longer than {max_len} characters")
    bad = set(value) - _FIELD_CHARS
    if bad:
        raise TelegramError(f"{name} contains characters a telegram cannot carry: {sorted(bad)!r}")
    return value


def encode(kind: str, seq: int | None, *fields: str) -> bytes:
    """Frame one telegram: STX kind|seq|field... ETX."""
    parts = [kind] if seq is None else [kind, str(seq)]
    parts.extend(fields)
    return STX + SEP.join(parts).encode("ascii") + ETX


def encode_divert(seq: int, tracking_id: str, chute: str | None, deadline_ms: int) -> bytes:
    check_field("tracking id", tracking_id)
    check_field("chute", chute or "", 16)
    return encode("DIV", seq, tracking_id, chute or "", str(max(0, deadline_ms)))


def decode(payload: bytes) -> Telegram:
    """Parse a payload (without STX/ETX); raises TelegramError for anything malformed."""
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise TelegramError("telegram is not ASCII") from exc
    if set(text) - _FIELD_CHARS - {SEP}:
        raise TelegramError("telegram contains control characters")
    parts = text.split(SEP)
    kind = parts[0]
    if kind == "HB":
        return Telegram("HB", 0, tuple(parts[1:]))
    if kind not in ("DIV", "ACK", "NAK", "RES"):
        raise TelegramError(f"unknown telegram kind {kind[:8]!r}")
    if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) > len(str(MAX_SEQ)):
        raise TelegramError(f"{kind} telegram has no valid sequence number")
    fields = tuple(parts[2:])
    need = {"DIV": 3, "ACK": 0, "NAK": 0, "RES": 1}[kind]
    if len(fields) < need:
        raise TelegramError(f"{kind} telegram has {len(fields)} fields, needs {need}")
    if kind == "RES" and fields[0] not in ("DIVERTED", "MISSED"):
        raise TelegramError(f"RES telegram outcome {fields[0][:12]!r} is not DIVERTED or MISSED")
    if kind == "DIV" and not fields[2].isdigit():
        raise TelegramError("DIV telegram deadline is not a number of milliseconds")
    return Telegram(kind, int(parts[1]), fields)
