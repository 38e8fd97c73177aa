"""`parcelguard case keygen|public-key|export|verify`: signing key, bundle export, offline checks."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from server.errors import ApiError

_ITEMS = re.compile(r"^items?:(\d{1,18}(?:,\d{1,18})*)$")
_CASE = re.compile(r"^\d{1,18}$")


def parse_target(text: str) -> tuple[int | None, list[int]]:
    """A case id (`17`), or review items without a case (`item:12`, `items:12,13`)."""
    text = text.strip()
    if _CASE.match(text) and int(text) > 0:
        return int(text), []
    m = _ITEMS.match(text)
    if m is None:
        raise ValueError(f"{text!r}: give a case id, or review items as item:ID or items:ID,ID,...")
    return None, [int(x) for x in m.group(1).split(",")]


def _keygen(args: argparse.Namespace) -> int:
    from server.cli import _settings
    from server.evidence.signing import SigningKeyError, create_signing_key, key_fingerprint

    path = _settings(args).evidence.signing_key_file
    if path is None:
        raise SigningKeyError(
            f"{args.config}: set [server.evidence] signing_key_file to where the key should live,"
            " then run this again"
        )
    public = create_signing_key(path)
    print(f"signing key written to {path} (owner-only); public key sha256 {key_fingerprint(public)}")
    print("give reviewers the public key: parcelguard case public-key --config ...")
    return 0


def _public_key(args: argparse.Namespace) -> int:
    from server.cli import _settings
    from server.evidence.signing import load_signing_key, public_pem

    key = load_signing_key(_settings(args).evidence.signing_key_file)
    sys.stdout.write(public_pem(key.public_key()).decode())
    return 0


def _export(args: argparse.Namespace) -> int:
    from server.accounts import Principal, Role
    from server.admin import ADMIN_ACTOR
    from server.app import build_services
    from server.cli import _settings
    from server.evidence.case_source import load_case
    from server.evidence.collect import BundleRequest
    from server.evidence.export import export_bundle
    from server.preflight import check_writable

    case_id, item_ids = parse_target(args.case)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_writable(out.parent, "--out")
        if out.exists():
            raise FileExistsError(f"{out}: already exists; a bundle is never written over another")
    settings = _settings(args)
    svc = build_services(settings)
    who = Principal(kind="user", name=ADMIN_ACTOR, role=Role.ADMIN, sites=("*",))
    try:
        with svc.db.write() as conn:
            case = None
            if case_id is not None:
                item_ids, case = load_case(conn, who, case_id, settings)
            req = BundleRequest(item_ids=item_ids, case=case, reveal_reason=args.reveal_reason or "")
            bundle, _ = export_bundle(conn, who, req, settings, svc.privacy)
    except ApiError as exc:
        raise ValueError(exc.message) from exc
    finally:
        svc.db.dispose()
    named = f"case-{case_id}" if case_id is not None else "items-" + "-".join(map(str, item_ids[:5]))
    path = out or Path(f"evidence-{named}-{bundle.fingerprint[:12]}.zip")
    with path.open("xb") as fh:
        fh.write(bundle.data)
    print(f"{path}: {bundle.files} files, fingerprint {bundle.fingerprint}")
    print(f"signed by key sha256 {bundle.key_fingerprint}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from server.evidence.archive import verify_bundle
    from server.evidence.signing import load_public_key

    archive = Path(args.archive)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such file")
    key = None
    if args.public_key:
        key = load_public_key(Path(args.public_key).read_bytes(), args.public_key)
    report = verify_bundle(archive, key)
    for line in report.lines():
        print(line, file=sys.stderr)
    print(
        f"fingerprint {report.fingerprint}; key sha256 {report.key_fingerprint or '-'}"
        f" ({report.key_source or 'none'})"
    )
    if report.ok:
        print(f"bundle intact: signature good, {report.checked} files match the manifest")
        return 0
    print(f"bundle NOT intact: {len(report.lines())} problem(s)")
    return 1


def register_case(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from server.cli import _add_config, _guarded

    case = commands.add_parser("case", help="evidence bundles of cases and review items: export and check")
    sub = case.add_subparsers(dest="case_command", metavar="ACTION", required=True)

    p = sub.add_parser("keygen", help="create the Ed25519 key that signs bundles (evidence.signing_key_file)")
    _add_config(p)
    p.set_defaults(func=_keygen)

    p = sub.add_parser("public-key", help="print the signing key's public half (PEM) for reviewers")
    _add_config(p)
    p.set_defaults(func=_public_key)

    p = sub.add_parser("export", help="write a signed evidence bundle (zip) of a case or of review items")
    _add_config(p)
    p.add_argument("case", metavar="CASE", help="a case id, or review items as item:ID or items:ID,ID,...")
    p.add_argument(
        "--out", metavar="FILE", help="where to write the zip (default: evidence-IDS-FINGERPRINT.zip)"
    )
    p.add_argument(
        "--reveal-reason",
        metavar="TEXT",
        help="include the senders' full records; the reason (at least 10 characters) is audited",
    )
    p.set_defaults(func=_guarded(_export))

    p = sub.add_parser(
        "verify", help="check a bundle offline; exit 1 naming every file changed, added or missing"
    )
    p.add_argument("archive", metavar="ARCHIVE")
    p.add_argument("--public-key", metavar="FILE", help="the signer's public key (PEM) known beforehand")
    p.set_defaults(func=_verify)
