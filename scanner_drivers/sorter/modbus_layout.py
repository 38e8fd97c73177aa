"""The Modbus sorter register layout: mailbox slots, how ids and chutes are packed, and the limits."""

from __future__ import annotations

import re

from scanner_drivers.sorter.link import LinkLimitError, LinkLimits
from scanner_drivers.sorter.telegram import FIELD_FORM, MAX_ID

DEFAULT_PORT = 502
ID_REGISTERS = 10  # 20 ASCII characters, two per register, high byte first
MAILBOX_WRITE = 2 + ID_REGISTERS  # seq, chute, id...
RESULT_OFFSET = MAILBOX_WRITE  # result seq, status, chute used
RESULT_COUNT = 3
# Slot k of a ring of mailboxes starts at register + k * SLOT_STRIDE (15 registers used, 1 spare).
SLOT_STRIDE = 16
MAX_SLOTS = 32
MAX_CHUTE_NUMBER = 65535
STATUS = {1: "DIVERTED", 2: "MISSED", 3: "REFUSED"}
_ID_RE = r"[\x20-\x7b\x7d\x7e]"


class ModbusLimitError(LinkLimitError):
    """A tracking id or chute that the Modbus mailbox or coil cannot carry."""


def mailbox_limits(slots: int = 1) -> LinkLimits:
    return LinkLimits(
        link="Modbus mailbox",
        mode="divert",
        id_max_len=ID_REGISTERS * 2,
        id_pattern=f"{_ID_RE}{{1,{ID_REGISTERS * 2}}}",
        id_form=FIELD_FORM,
        chute_pattern=r"\d{1,5}",
        chute_form=f"a chute number 0 … {MAX_CHUTE_NUMBER} (0: the controller's default chute)",
        chute_max=MAX_CHUTE_NUMBER,
        max_in_flight=slots,
    )


def coil_limits(chute: str | None) -> LinkLimits:
    """The coil carries no id and no chute: only the URL's own chute label (or none) is allowed."""
    return LinkLimits(
        link="Modbus coil",
        mode="divert",
        id_max_len=MAX_ID,
        id_pattern=f"{_ID_RE}{{1,{MAX_ID}}}",
        id_form=FIELD_FORM,
        chute_pattern=re.escape(chute) if chute else "(?!)",
        chute_form=f"the coil's own chute {chute!r}" if chute else "left out (the coil has one chute)",
        max_in_flight=1,
    )


def encode_id(tracking_id: str) -> list[int]:
    """Pack a tracking id into registers; ModbusLimitError when it does not fit or is not plain ASCII."""
    try:
        mailbox_limits().check_tracking_id(tracking_id)
    except LinkLimitError as exc:
        raise ModbusLimitError(str(exc)) from None
    raw = tracking_id.encode("ascii").ljust(ID_REGISTERS * 2, b"\0")
    return [raw[i] << 8 | raw[i + 1] for i in range(0, len(raw), 2)]


def decode_id(registers: list[int]) -> str:
    raw = b"".join(r.to_bytes(2, "big") for r in registers)
    return raw.rstrip(b"\0").decode("ascii", errors="replace")


def chute_number(chute: str | None) -> int:
    """Chutes travel as register values: 0 is the controller's default reject chute."""
    try:
        mailbox_limits().check_chute(chute)
    except LinkLimitError as exc:
        raise ModbusLimitError(str(exc)) from None
    return int(chute) if chute else 0
