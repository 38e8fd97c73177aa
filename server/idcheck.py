"""Checks of Chinese identifiers: resident ID (GB 11643), unified social credit code (GB 32100), phones."""

from __future__ import annotations

import re
from datetime import date

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_USC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
_PASSPORT = re.compile(r"^[A-Z0-9]{5,17}$")


def resident_id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character over the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def check_resident_id(value: str) -> str | None:
    """None when `value` is a valid 18-digit resident ID number, else the reason it is not."""
    v = value.strip().upper()
    if not re.fullmatch(r"\d{17}[\dX]", v):
        return "resident ID must be 17 digits and a digit or X"
    try:
        date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return "resident ID has an impossible birth date"
    if resident_id_check_char(v[:17]) != v[17]:
        return "resident ID check digit does not match (GB 11643)"
    return None


def usc_check_char(first17: str) -> str:
    """GB 32100 check character over the first 17 characters of a unified social credit code."""
    total = sum(_USC_ALPHABET.index(c) * w for c, w in zip(first17, _USC_WEIGHTS, strict=True))
    return _USC_ALPHABET[(31 - total % 31) % 31]


def check_usc_code(value: str) -> str | None:
    """None when `value` is a valid 18-character unified social credit code, else the reason."""
    v = value.strip().upper()
    if len(v) != 18 or any(c not in _USC_ALPHABET for c in v):
        return "unified social credit code must be 18 characters of 0-9 and A-Y without I, O, S, V, Z"
    if usc_check_char(v[:17]) != v[17]:
        return "unified social credit code check character does not match (GB 32100)"
    return None


def check_phone(value: str) -> str | None:
    """Mainland mobile (optionally +86) or a landline with area code."""
    v = re.sub(r"[\s()]", "", value)
    if v.startswith("+86"):
        v = v[3:]
    elif v.startswith("0086"):
        v = v[4:]
    if _MOBILE.match(v) or _LANDLINE.match(v):
        return None
    return "phone must be a mainland mobile number (1xxxxxxxxxx) or a landline with area code"


def normalise_phone(value: str) -> str:
    v = re.sub(r"[\s()\-]", "", value)
    for prefix in ("+86", "0086"):
        if v.startswith(prefix):
            v = v[len(prefix) :]
    return v


def check_id_number(id_type: str, value: str) -> str | None:
    """Validate an ID number by its type; None when acceptable."""
    if id_type == "resident_id":
        return check_resident_id(value)
    if id_type == "usc_code":
        return check_usc_code(value)
    if id_type == "passport":
        return (
            None
            if _PASSPORT.match(value.strip().upper())
            else "passport number must be 5-17 letters or digits"
        )
    if id_type == "other":
        return None if 4 <= len(value.strip()) <= 64 else "ID number must be 4-64 characters"
    return f"unknown id_type {id_type!r}"
