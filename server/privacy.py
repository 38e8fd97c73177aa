"""Keyed HMAC tokens, masked forms and authenticated encryption for personal data in the registry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import unicodedata
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.errors import BadInput

SEALED_VERSION = "v1"


def normalise(value: str) -> str:
    """Canonical form for matching: NFKC, trimmed, inner spaces collapsed, upper case (X in ID numbers)."""
    return " ".join(unicodedata.normalize("NFKC", value).split()).upper()


class Privacy:
    """Token, mask, seal and open values with the server's HMAC and encryption keys."""

    def __init__(self, hmac_key: str, encryption_key: str) -> None:
        self._hmac_key = hashlib.sha256(b"parcelguard-hmac:" + hmac_key.encode()).digest()
        self._aes = AESGCM(hashlib.sha256(b"parcelguard-aes:" + encryption_key.encode()).digest())

    def token(self, kind: str, value: str) -> str:
        """A stable keyed token of `value` within `kind` (e.g. "phone", "resident_id")."""
        msg = f"{kind}\x1f{normalise(value)}".encode()
        return hmac.new(self._hmac_key, msg, hashlib.sha256).hexdigest()

    def sender_token(self, id_type: str, id_number: str) -> str:
        return self.token(f"sender:{id_type}", id_number)

    def seal(self, record: dict[str, Any]) -> str:
        """Encrypt a JSON record; the result is text safe to store."""
        nonce = os.urandom(12)
        data = json.dumps(record, ensure_ascii=False, sort_keys=True).encode()
        blob = nonce + self._aes.encrypt(nonce, data, SEALED_VERSION.encode())
        return SEALED_VERSION + ":" + base64.urlsafe_b64encode(blob).decode()

    def unseal(self, sealed: str) -> dict[str, Any]:
        version, _, body = sealed.partition(":")
        if version != SEALED_VERSION:
            raise BadInput("sealed record has an unknown format", "sealed_format")
        blob = base64.urlsafe_b64decode(body)
        try:
            data = self._aes.decrypt(blob[:12], blob[12:], SEALED_VERSION.encode())
        except InvalidTag as exc:
            raise BadInput("sealed record cannot be opened with this key", "sealed_key") from exc
        out: dict[str, Any] = json.loads(data)
        return out


def mask_id(value: str) -> str:
    """`110101199003071234` -> `110***********1234`: region prefix and last four kept."""
    v = normalise(value).replace(" ", "")
    if len(v) <= 7:
        return "*" * len(v)
    return v[:3] + "*" * (len(v) - 7) + v[-4:]


def mask_phone(value: str) -> str:
    """`13812345678` -> `138****5678`."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) <= 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_name(value: str) -> str:
    """Keep the first character only: `张三丰` -> `张**`, `Li Wei` -> `L*****`."""
    v = value.strip()
    if not v:
        return ""
    return v[0] + "*" * min(len(v) - 1, 15)


def mask_text(value: str, keep: int = 6) -> str:
    """Addresses and organisation names: the first `keep` characters, the rest hidden."""
    v = value.strip()
    return v[:keep] + ("*" * min(len(v) - keep, 12) if len(v) > keep else "")
