"""Waybill identification: which of the codes read is the waybill, by carrier pattern and check digit."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from edge.config import WaybillRule

S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def s10_check_ok(code: str) -> bool:
    """UPU S10: two letters, eight serial digits, a mod-11 check digit, two letters (ISO 3166 country)."""
    if not re.fullmatch(r"[A-Z]{2}\d{9}[A-Z]{2}", code):
        return False
    digits = code[2:10]
    total = sum(int(d) * w for d, w in zip(digits, S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 10:
        check = 0
    elif check == 11:
        check = 5
    return check == int(code[10])


def gs1_check_ok(code: str) -> bool:
    """GS1 mod-10 check digit (GTIN-8/12/13/14, SSCC-18); an SSCC may carry its (00) AI prefix."""
    digits = code[2:] if len(code) == 20 and code.startswith("00") else code
    if not digits.isdigit() or len(digits) < 8:
        return False
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def luhn_check_ok(code: str) -> bool:
    if not code.isdigit() or len(code) < 2:
        return False
    total = 0
    for i, d in enumerate(reversed(code)):
        n = int(d)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def mod11_weights_ok(code: str) -> bool:
    """Plain mod-11 with weights 2..7 from the right over the digits (several domestic carriers)."""
    digits = re.sub(r"\D", "", code)
    if len(digits) < 2:
        return False
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(body)))
    return (11 - total % 11) % 11 % 10 == check


CHECKS: dict[str, Callable[[str], bool]] = {
    "none": lambda _code: True,
    "s10": s10_check_ok,
    "gs1": gs1_check_ok,
    "luhn": luhn_check_ok,
    "mod11_weights": mod11_weights_ok,
}

IdentifyStatus = Literal["ok", "no_read", "no_valid_waybill", "conflict"]


@dataclass(frozen=True)
class Identification:
    """The outcome of identifying one read: the waybill, or why there is none."""

    status: IdentifyStatus
    waybill: str | None
    carrier: str | None
    candidates: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()


class WaybillMatcher:
    """Compiled waybill rules; a code that matches a pattern but fails its check is rejected."""

    def __init__(self, rules: Sequence[WaybillRule]) -> None:
        self._rules = [(r.carrier, re.compile(r.pattern), CHECKS[r.check]) for r in rules]

    def match(self, text: str) -> str | None:
        """The carrier of a valid waybill, or None."""
        code = text.strip()
        for carrier, pattern, check in self._rules:
            if pattern.fullmatch(code) and check(code):
                return carrier
        return None

    def identify(self, codes: Sequence[str]) -> Identification:
        texts = tuple(dict.fromkeys(c.strip() for c in codes if c.strip()))
        if not texts:
            return Identification("no_read", None, None)
        valid: dict[str, str] = {}
        rejected: list[str] = []
        for text in texts:
            carrier = self.match(text)
            if carrier is None:
                rejected.append(text)
            else:
                valid[text] = carrier
        if not valid:
            return Identification("no_valid_waybill", None, None, (), tuple(rejected))
        if len(valid) > 1:
            # Two different valid waybills on one parcel: say so rather than guess.
            return Identification("conflict", None, None, tuple(valid), tuple(rejected))
        ((waybill, carrier),) = valid.items()
        return Identification("ok", waybill, carrier, (waybill,), tuple(rejected))
