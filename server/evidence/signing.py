"""The server's Ed25519 evidence key: created once by a command, loaded to sign, its public half published."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEYGEN_HINT = "create one with `parcelguard case keygen`"


class SigningKeyError(ValueError):
    """The evidence signing key is not configured, missing, unreadable or not an Ed25519 key."""


def create_signing_key(path: Path) -> Ed25519PublicKey:
    """Write a new private key (PEM, PKCS#8, owner-only) at `path`; an existing file is never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        # O_EXCL: replacing the key would orphan every bundle signed so far.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise SigningKeyError(f"{path}: a key is already there; it is kept (bundles signed with it)") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key.public_key()


def load_signing_key(path: Path | None) -> Ed25519PrivateKey:
    """The configured private key; every way it can be absent or wrong is one clear error."""
    if path is None:
        raise SigningKeyError(
            f"evidence.signing_key_file is not set in the server configuration; {KEYGEN_HINT}"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise SigningKeyError(
            f"{path}: no signing key there (evidence.signing_key_file); {KEYGEN_HINT}"
        ) from exc
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the signing key: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key ({type(key).__name__})")
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM: what `openssl pkeyutl -pubin -inkey` reads."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(data: bytes, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{source}: not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{source}: not an Ed25519 public key ({type(key).__name__})")
    return key


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """sha256 of the 32 raw public key bytes, in hex: short enough to read out over the phone."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()
