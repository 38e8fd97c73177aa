"""The bundle archive: a zip of evidence files, a sha256sum-style manifest of them, its Ed25519 signature.

Layout, so that a reviewer needs only standard tools: `manifest.sha256` lists every other file as
`<sha256>  <path>` (what `sha256sum -c` reads), `manifest.sig` is the raw 64-byte Ed25519 signature
of the manifest's exact bytes, and `public-key.pem` is the signer's key. Checking is offline: no
database and no server key, only the archive and, for trust, the public key known beforehand.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.evidence.signing import SigningKeyError, key_fingerprint, load_public_key, public_pem

MANIFEST = "manifest.sha256"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public-key.pem"
# The signature's own files; everything else in the archive must be listed in the manifest.
ENVELOPE = (MANIFEST, SIGNATURE, PUBLIC_KEY)
_LINE = re.compile(r"^([0-9a-f]{64})  (\S(?:.*\S)?)$")
_CHUNK = 1 << 20
# Images are already compressed: deflating them again costs time and saves nothing.
_STORED_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".zip", ".pdf")


class BundleError(ValueError):
    """The file is not a bundle at all (not a zip, no manifest): nothing to check file by file."""


def safe_path(name: str) -> bool:
    """A relative POSIX path without `..`, backslashes or control characters: safe to unpack anywhere."""
    if not name or name.startswith("/") or "\\" in name or name != name.strip():
        return False
    if any(ord(ch) < 32 for ch in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def render_manifest(files: dict[str, bytes]) -> bytes:
    for name in files:
        if not safe_path(name) or name in ENVELOPE:
            raise ValueError(f"bundle file name {name!r} is not allowed")
    lines = [f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())]
    return "".join(lines).encode()


def parse_manifest(data: bytes) -> dict[str, str]:
    """Path -> sha256 from the manifest; a malformed or repeated line is a BundleError naming it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{MANIFEST} is not UTF-8 text") from exc
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        m = _LINE.match(line)
        if m is None or not safe_path(m.group(2)) or m.group(2) in ENVELOPE:
            raise BundleError(f"{MANIFEST} line {number} is not '<sha256>  <path>': {line[:80]!r}")
        if m.group(2) in out:
            raise BundleError(f"{MANIFEST} line {number} lists {m.group(2)} a second time")
        out[m.group(2)] = m.group(1)
    return out


def manifest_fingerprint(manifest: bytes) -> str:
    """The bundle's fingerprint: sha256 of the signed manifest, which pins every file's content."""
    return hashlib.sha256(manifest).hexdigest()


@dataclass(frozen=True)
class SignedBundle:
    """A written archive and what identifies it."""

    data: bytes
    fingerprint: str
    key_fingerprint: str
    files: int


def write_bundle(files: dict[str, bytes], key: Ed25519PrivateKey) -> SignedBundle:
    """Zip `files` with their manifest, its signature and the public key, in a fixed order."""
    manifest = render_manifest(files)
    envelope = {MANIFEST: manifest, SIGNATURE: key.sign(manifest), PUBLIC_KEY: public_pem(key.public_key())}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in [*envelope.items(), *sorted(files.items())]:
            stored = name.lower().endswith(_STORED_SUFFIXES)
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    return SignedBundle(
        buf.getvalue(), manifest_fingerprint(manifest), key_fingerprint(key.public_key()), len(files)
    )


@dataclass
class VerifyReport:
    """What a check found: the signature's state and every file changed, added or missing."""

    fingerprint: str = ""
    key_fingerprint: str = ""
    key_source: str = ""
    signature_ok: bool = False
    checked: int = 0
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.signature_ok and not (self.changed or self.added or self.missing or self.problems)

    def lines(self) -> list[str]:
        out = list(self.problems)
        out += [f"changed: {name} (its sha256 differs from the manifest)" for name in self.changed]
        out += [f"added: {name} (not in the manifest)" for name in self.added]
        out += [f"missing: {name} (in the manifest, not in the archive)" for name in self.missing]
        return out


def _digest(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    h = hashlib.sha256()
    with zf.open(info) as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _read_small(zf: zipfile.ZipFile, name: str, limit: int) -> bytes | None:
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.file_size > limit:
        raise BundleError(f"{name} is {info.file_size} bytes; a real one is far smaller")
    return zf.read(info)


def verify_bundle(source: Path | bytes, public_key: Ed25519PublicKey | None = None) -> VerifyReport:
    """Check the signature (with `public_key`, else the archive's own key) and every file's sha256."""
    report = VerifyReport()
    try:
        zf = zipfile.ZipFile(source if isinstance(source, Path) else io.BytesIO(source))
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"not a zip archive ({exc})") from exc
    with zf:
        manifest = _read_small(zf, MANIFEST, 64 << 20)
        if manifest is None:
            raise BundleError(f"no {MANIFEST} in the archive: not an evidence bundle")
        report.fingerprint = manifest_fingerprint(manifest)
        signature = _read_small(zf, SIGNATURE, 1024)
        if public_key is not None:
            report.key_source = "the given public key"
        else:
            pem = _read_small(zf, PUBLIC_KEY, 64 << 10)
            if pem is None:
                report.problems.append(f"missing: {PUBLIC_KEY} (and no --public-key given)")
            else:
                try:
                    public_key = load_public_key(pem, PUBLIC_KEY)
                    report.key_source = f"the archive's own {PUBLIC_KEY} (compare its fingerprint)"
                except SigningKeyError as exc:
                    report.problems.append(str(exc))
        if public_key is not None:
            report.key_fingerprint = key_fingerprint(public_key)
            if signature is None:
                report.problems.append(f"missing: {SIGNATURE}: the manifest is not signed")
            else:
                try:
                    public_key.verify(signature, manifest)
                    report.signature_ok = True
                except InvalidSignature:
                    report.problems.append(
                        f"bad signature: {SIGNATURE} does not sign {MANIFEST} with this key"
                    )
        listed = parse_manifest(manifest)
        seen: set[str] = set()
        for info in zf.infolist():
            name = info.filename
            if info.is_dir():
                continue
            if name in seen:
                report.added.append(f"{name} (a second copy)")
                continue
            seen.add(name)
            if name in ENVELOPE:
                continue
            if not safe_path(name):
                report.problems.append(f"unsafe path in the archive: {name!r}")
                continue
            if name not in listed:
                report.added.append(name)
                continue
            report.checked += 1
            try:
                digest = _digest(zf, info)
            except (zipfile.BadZipFile, zlib.error, EOFError):
                # Bytes edited in place inside the zip: its CRC or compression no longer holds.
                report.changed.append(name)
                continue
            if digest != listed[name]:
                report.changed.append(name)
        report.missing = sorted(set(listed) - seen)
    return report
