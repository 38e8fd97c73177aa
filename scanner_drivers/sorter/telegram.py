"""Sorter telegrams: STX/ETX-framed ASCII fields separated by '|', encoded and parsed (see hardware.md)."""

from __future__ import annotations

from dataclasses import dataclass

from scanner_drivers.sorter.link import LinkLimitError, LinkLimits, SorterMode

STX = b"\x02"
ETX = b"\x03"
SEP = "|"
MAX_TELEGRAM = 256
MAX_SEQ = 99999
MAX_ID = 64
MAX_CHUTE = 16
# Tracking ids and chute names travel as plain fields, so they must be printable ASCII without '|'.
_FIELD_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {SEP}
_FIELD_RE = r"[\x20-\x7b\x7d\x7e]"
FIELD_FORM = "printable ASCII without '|'"
# Telegram kinds and how many fields after the sequence number each needs at least.
_NEED = {"DIV": 3, "ACK": 0, "NAK": 0, "RES": 1, "REQ": 2, "DST": 2}


class TelegramError(ValueError):
    """A telegram could not be built or parsed; the message says which field is wrong."""


class TelegramFieldError(TelegramError, LinkLimitError):
    """A tracking id, carrier id or chute that a telegram field cannot carry."""


def telegram_limits(link: str, mode: SorterMode = "divert") -> LinkLimits:
    """What a telegram link (TCP or serial) carries; ids and chutes are plain telegram fields."""
    return LinkLimits(
        link=link,
        mode=mode,
        id_max_len=MAX_ID,
        id_pattern=f"{_FIELD_RE}{{1,{MAX_ID}}}",
        id_form=FIELD_FORM,
        chute_pattern=f"{_FIELD_RE}{{1,{MAX_CHUTE}}}",
        chute_form=f"{FIELD_FORM}, at most {MAX_CHUTE} characters",
        max_in_flight=MAX_SEQ // 2,
    )


@dataclass(frozen=True)
class Telegram:
    """One parsed telegram: its kind (DIV, ACK, NAK, RES, REQ, DST, HB), sequence number and fields."""

    kind: str
    seq: int
    fields: tuple[str, ...]


def check_field(name: str, value: str, max_len: int = MAX_ID) -> str:
    """Return `value` if it can travel as a telegram field, else raise TelegramFieldError naming it."""
    if not value and name in ("tracking id", "carrier id"):
        raise TelegramFieldError(f"{name} is empty")
    if len(value) > max_len:
        raise TelegramFieldError(f"{name} is longer than {max_len} characters")
    bad = set(value) - _FIELD_CHARS
    if bad:
        raise TelegramFieldError(f"{name} contains characters a telegram cannot carry: {sorted(bad)!r}")
    return value


def encode(kind: str, seq: int | None, *fields: str) -> bytes:
    """Frame one telegram: STX kind|seq|field... ETX."""
    parts = [kind] if seq is None else [kind, str(seq)]
    parts.extend(fields)
    return STX + SEP.join(parts).encode("ascii") + ETX


def encode_divert(seq: int, tracking_id: str, chute: str | None, deadline_ms: int) -> bytes:
    check_field("tracking id", tracking_id)
    check_field("chute", chute or "", MAX_CHUTE)
    return encode("DIV", seq, tracking_id, chute or "", str(max(0, deadline_ms)))


def encode_request(seq: int, carrier_id: str, deadline_ms: int, codes: tuple[str, ...]) -> bytes:
    """Controller to station: where does this carrier go? (Used by the simulated controller.)"""
    check_field("carrier id", carrier_id)
    for text in codes:
        check_field("code", text, MAX_TELEGRAM)
    data = encode("REQ", seq, carrier_id, str(max(0, deadline_ms)), *codes)
    if len(data) > MAX_TELEGRAM:
        raise TelegramFieldError(f"destination request is longer than {MAX_TELEGRAM} bytes")
    return data


def encode_destination(seq: int, carrier_id: str, chute: str | None) -> bytes:
    """Station to controller: the answer to request `seq`; no chute means route normally."""
    check_field("carrier id", carrier_id)
    check_field("chute", chute or "", MAX_CHUTE)
    return encode("DST", seq, carrier_id, chute or "")


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
    if kind not in _NEED:
        raise TelegramError(f"unknown telegram kind {kind[:8]!r}")
    if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) > len(str(MAX_SEQ)):
        raise TelegramError(f"{kind} telegram has no valid sequence number")
    fields = tuple(parts[2:])
    need = _NEED[kind]
    if len(fields) < need:
        raise TelegramError(f"{kind} telegram has {len(fields)} fields, needs {need}")
    if kind == "RES" and fields[0] not in ("DIVERTED", "MISSED"):
        raise TelegramError(f"RES telegram outcome {fields[0][:12]!r} is not DIVERTED or MISSED")
    if kind == "DIV" and not fields[2].isdigit():
        raise TelegramError("DIV telegram deadline is not a number of milliseconds")
    if kind in ("REQ", "DST") and not fields[0]:
        raise TelegramError(f"{kind} telegram has an empty carrier id")
    if kind == "REQ" and (not fields[1].isdigit() or len(fields[1]) > 7):
        raise TelegramError("REQ telegram deadline is not a number of milliseconds")
    return Telegram(kind, int(parts[1]), fields)
