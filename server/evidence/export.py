"""Export one bundle: audit the reveal (if any), collect, sign with the server's key, audit the export."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from server.accounts import Principal
from server.db import utcnow
from server.evidence.archive import SignedBundle, write_bundle
from server.evidence.collect import BundleRequest, Collected, check_request, collect_bundle
from server.evidence.signing import key_fingerprint, load_signing_key
from server.privacy import Privacy
from server.reviews import evidence
from server.scope import record
from server.settings import ServerSettings


def export_bundle(
    conn: Connection, who: Principal, req: BundleRequest, settings: ServerSettings, privacy: Privacy
) -> tuple[SignedBundle, Collected]:
    """Build and sign the bundle inside the caller's write transaction; no key, no bundle (and no audit)."""
    key = load_signing_key(settings.evidence.signing_key_file)
    check_request(req)
    secret = settings.secret_key.get_secret_value()
    if req.reveal_reason:
        # The reveal is audited before the entries are read, so the bundle carries its own reveal.
        sites_of: dict[str, set[str]] = {}
        for item_id in req.item_ids:
            item = evidence(conn, item_id, who, settings.regions)
            if item["sender_token"] and item["sender"] is not None:
                sites_of.setdefault(item["sender_token"], set()).add(item["site_id"])
        why = {"reason": req.reveal_reason.strip(), "purpose": "evidence bundle"}
        for token, sites in sorted(sites_of.items()):
            record(conn, secret, who.name, "reveal", f"sender:{token}", sites, why)
    collected = collect_bundle(
        conn,
        who,
        req,
        privacy,
        settings.regions,
        utcnow(),
        key_fingerprint(key.public_key()),
        settings.evidence.max_bundle_mb << 20,
    )
    bundle = write_bundle(collected.files, key)
    target = f"case:{req.case.case_id}" if req.case else f"review:{req.item_ids[0]}"
    detail: dict[str, Any] = {
        "items": req.item_ids,
        "fingerprint": bundle.fingerprint,
        "files": bundle.files,
        "full_sender_records": collected.revealed,
    }
    record(conn, secret, who.name, "evidence_export", target, collected.sites, detail)
    return bundle, collected
