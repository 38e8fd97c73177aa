"""What one framed scanner message means: codes, a no-read, a heartbeat or a device reply (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from scanner_drivers.scanners.presets import FramingConfig, split_aim
from scanner_drivers.types import Code

ENGINE = "scanner"
# Line noise at power-up and stray terminators of a mis-set suffix (CR LF against CR) sit at the
# edges of a message; control characters inside it (GS in GS1 codes) belong to the code.
_EDGE_NOISE = b"\x00\r\n\t \xff"
_DEVICE_REPLIES = {b"\x06", b"\x15"}

MessageKind = Literal["read", "noread", "heartbeat", "reply", "empty"]


@dataclass(frozen=True)
class Message:
    """One interpreted message; `bad_text` is set when the bytes were not valid in the encoding."""

    kind: MessageKind
    codes: tuple[Code, ...] = ()
    text: str = ""
    bad_text: bool = False


@dataclass(frozen=True)
class CompiledFraming:
    """The parts of a FramingConfig the reader needs per message, prepared once."""

    config: FramingConfig
    heartbeats: tuple[re.Pattern[str], ...]
    no_read: frozenset[str]

    @classmethod
    def of(cls, config: FramingConfig) -> CompiledFraming:
        return cls(
            config=config,
            heartbeats=tuple(re.compile(p) for p in config.heartbeats),
            no_read=frozenset(config.no_read),
        )


def interpret(payload: bytes, framing: CompiledFraming) -> Message:
    cfg = framing.config
    body = payload.strip(_EDGE_NOISE)
    if not body:
        return Message("empty")
    if body in _DEVICE_REPLIES:
        return Message("reply", text=body.hex())
    # A device's ACK/NAK to a command has no terminator of its own, so it leads the next message.
    body = body.lstrip(b"\x06\x15").lstrip(_EDGE_NOISE)
    bad = False
    try:
        text = body.decode(cfg.encoding)
    except UnicodeDecodeError:
        # Keep going with replacement characters: the raw bytes travel with the read, and a
        # damaged waybill then fails its check digit downstream instead of vanishing here.
        text = body.decode(cfg.encoding, errors="replace")
        bad = True
    if any(p.fullmatch(text) for p in framing.heartbeats):
        return Message("heartbeat", text=text)
    if text in framing.no_read:
        return Message("noread", text=text, bad_text=bad)
    parts = text.split(cfg.separator) if cfg.separator else [text]
    codes: list[Code] = []
    for part in parts:
        part = part.strip("\r\n\t \x00")
        if not part or part in framing.no_read:
            continue
        symbology, code_text = split_aim(part) if cfg.aim_ids else ("unknown", part)
        if code_text:
            codes.append(Code(text=code_text, symbology=symbology, engine=ENGINE))
    if not codes:
        return Message("noread", text=text, bad_text=bad)
    return Message("read", codes=tuple(codes), text=text, bad_text=bad)
