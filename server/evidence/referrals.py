"""Referrals to an authority: the package (letter and signed bundle) built once and kept, and the reply."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from server.accounts import Principal
from server.cases.store import case_target
from server.db import iso, parse_iso
from server.errors import BadInput, Conflict, NotFound
from server.evidence.case_source import load_case, step_fields
from server.evidence.collect import BundleRequest, CaseRecord
from server.evidence.export import export_bundle
from server.evidence.referral_pdf import ReferralLetter, render_referral_pdf
from server.privacy import Privacy
from server.reviews import referrals_naming
from server.schema import referrals
from server.scope import covers, record
from server.settings import ServerSettings

MIN_LEGAL_BASIS = 10
# A case is referred from its `referred` state on; a closed case may still be referred late.
REFERRED_CASE_STATES = frozenset({"referred", "closed"})
# A reply dated a little ahead of the server's clock is a time zone, not a forgery; more is a typo.
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class ReplyRequest:
    """The authority's answer: its receipt (reference and date) and, once known, its own case number."""

    receipt_ref: str = ""
    received_at: str = ""
    authority_case_number: str = ""


def audit_target(referral_id: int, case_id: str | None) -> str:
    """A case's referral is audited in the case's trail; a referral of bare items under its own name."""
    return case_target(int(case_id)) if case_id else f"referral:{referral_id}"


def summary(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "item_ids": json.loads(row.item_ids),
        "case_id": row.case_id,
        "sites": json.loads(row.sites),
        "authority": row.authority,
        "case_reference": row.case_reference,
        "legal_basis": row.legal_basis,
        "fingerprint": row.fingerprint,
        "key_sha256": row.key_sha256,
        "package_sha256": row.package_sha256,
        "package_url": f"/api/v1/referrals/{int(row.id)}/package",
        "created_by": row.created_by,
        "created_at": row.created_at,
        "receipt_ref": row.receipt_ref,
        "received_at": row.received_at,
        "authority_case_number": row.authority_case_number,
        "reply_by": row.reply_by,
        "reply_at": row.reply_at,
    }


def _referred_items(items: list[dict[str, Any]]) -> tuple[str, str]:
    """The one authority the items were referred to, and their case references."""
    not_referred = [str(i["id"]) for i in items if i["outcome"] != "refer"]
    if not_referred:
        raise BadInput(f"review items {', '.join(not_referred)} were not decided 'refer'", "not_referred")
    authorities = {(i["outcome_fields"] or {}).get("authority", "") for i in items}
    if len(authorities) != 1:
        raise BadInput("the items were referred to different authorities: refer them separately", "authority")
    refs = sorted({(i["outcome_fields"] or {}).get("case_reference", "") for i in items} - {""})
    return authorities.pop(), "；".join(refs)[:200]


def _referred_case(case: CaseRecord) -> tuple[str, str]:
    """The authority and reference the case's refer step recorded."""
    fields = case.summary["fields"]
    authority = step_fields(fields, "authority")
    if case.summary["state"] not in REFERRED_CASE_STATES or not authority:
        raise BadInput(
            f"case {case.case_id} was not referred (state {case.summary['state']})", "not_referred"
        )
    return str(authority), str(step_fields(fields, "case_reference") or "")[:200]


def _package(referral_id: int, pdf: bytes, bundle: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"referral-{referral_id}.pdf", pdf)
        zf.writestr(f"evidence-referral-{referral_id}.zip", bundle)
    return buf.getvalue()


def create_referral(
    conn: Connection,
    who: Principal,
    item_ids: list[int],
    case_id: int | None,
    legal_basis: str,
    settings: ServerSettings,
    privacy: Privacy,
    now: datetime,
) -> dict[str, Any]:
    """Bundle the referred case or items, write the letter, keep the package as sent, audit it."""
    basis = legal_basis.strip()
    if len(basis) < MIN_LEGAL_BASIS:
        raise BadInput(
            f"legal_basis must cite the provisions (at least {MIN_LEGAL_BASIS} characters)", "legal_basis"
        )
    case = None
    if case_id is not None:
        item_ids, case = load_case(conn, who, case_id, settings)
    req = BundleRequest(item_ids=item_ids, case=case)
    bundle, collected = export_bundle(conn, who, req, settings, privacy)
    if case is not None:
        authority, case_reference = _referred_case(case)
    else:
        authority, case_reference = _referred_items(collected.items)
    inserted = conn.execute(
        referrals.insert().values(
            item_ids=json.dumps(item_ids),
            case_id=case.case_id if case else None,
            sites=json.dumps(collected.sites),
            authority=authority,
            case_reference=case_reference,
            legal_basis=basis,
            fingerprint=bundle.fingerprint,
            key_sha256=bundle.key_fingerprint,
            package=b"",
            package_sha256="",
            created_by=who.name,
            created_at=iso(now),
        )
    )
    referral_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
    images = [
        (f"{name.split('/')[1]}号件 {name.rsplit('/', 1)[1][:22]}…", data)
        for name, data in sorted(collected.files.items())
        if "/images/" in name
    ]
    letter = ReferralLetter(
        referral_id=referral_id,
        authority=authority,
        case_reference=case_reference or "—",
        sender_unit=settings.evidence.sender_unit,
        created_at=iso(now),
        created_by=who.name,
        legal_basis=basis,
        items=collected.items,
        images=images,
        fingerprint=bundle.fingerprint,
        key_sha256=bundle.key_fingerprint,
        files=bundle.files,
        case_id=case.case_id if case else None,
        case_title=str(case.summary.get("title", "")) if case else "",
    )
    package = _package(referral_id, render_referral_pdf(letter), bundle.data)
    digest = hashlib.sha256(package).hexdigest()
    conn.execute(
        update(referrals).where(referrals.c.id == referral_id).values(package=package, package_sha256=digest)
    )
    detail = {
        "items": item_ids,
        "authority": authority,
        "fingerprint": bundle.fingerprint,
        "package_sha256": digest,
        "referral": referral_id,
    }
    record(
        conn,
        settings.secret_key.get_secret_value(),
        who.name,
        "referral_create",
        audit_target(referral_id, case.case_id if case else None),
        collected.sites,
        detail,
    )
    return get_referral(conn, who, referral_id)


def _row(conn: Connection, who: Principal, referral_id: int) -> Any:
    row = conn.execute(select(referrals).where(referrals.c.id == referral_id)).first()
    if row is None or not covers(who, json.loads(row.sites)):
        raise NotFound(f"no referral {referral_id}")
    return row


def get_referral(conn: Connection, who: Principal, referral_id: int) -> dict[str, Any]:
    return summary(_row(conn, who, referral_id))


def get_package(conn: Connection, who: Principal, referral_id: int) -> bytes:
    return bytes(_row(conn, who, referral_id).package)


def referrals_of_item(conn: Connection, who: Principal, item_id: int) -> list[dict[str, Any]]:
    """Referrals naming this item that the caller may see, newest first."""
    ids = referrals_naming(conn, item_id)
    if not ids:
        return []
    rows = conn.execute(select(referrals).where(referrals.c.id.in_(ids)).order_by(referrals.c.id.desc()))
    return [summary(r) for r in rows if covers(who, json.loads(r.sites))]


def referrals_of_case(conn: Connection, who: Principal, case_id: int) -> list[dict[str, Any]]:
    """Referrals of this case that the caller may see, newest first."""
    rows = conn.execute(
        select(referrals).where(referrals.c.case_id == str(case_id)).order_by(referrals.c.id.desc())
    )
    return [summary(r) for r in rows if covers(who, json.loads(r.sites))]


def _received_at(text: str, created_at: str, now: datetime) -> str:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadInput("received_at must be a date (2026-12-01) or an ISO 8601 time", "received_at") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=now.tzinfo)
    if when > now + FUTURE_SLACK:
        raise BadInput("received_at lies in the future", "received_at")
    if when.date() < parse_iso(created_at).date():
        raise BadInput("received_at is before the referral was made", "received_at")
    return iso(when)


def record_reply(
    conn: Connection, who: Principal, referral_id: int, reply: ReplyRequest, secret: str, now: datetime
) -> dict[str, Any]:
    """Record the receipt and/or the authority's case number; a recorded value is never overwritten."""
    row = _row(conn, who, referral_id)
    values: dict[str, Any] = {}
    receipt_ref, number = reply.receipt_ref.strip(), reply.authority_case_number.strip()
    if bool(receipt_ref) != bool(reply.received_at.strip()):
        raise BadInput("a receipt needs both its reference and the date it was received", "receipt")
    if receipt_ref:
        when = _received_at(reply.received_at, row.created_at, now)
        if row.receipt_ref is not None and (row.receipt_ref, row.received_at) != (receipt_ref, when):
            raise Conflict(f"referral {referral_id} already has receipt {row.receipt_ref!r}", "recorded")
        values.update(receipt_ref=receipt_ref, received_at=when)
    if number:
        if row.authority_case_number is not None and row.authority_case_number != number:
            raise Conflict(
                f"referral {referral_id} already has the authority's case number "
                f"{row.authority_case_number!r}",
                "recorded",
            )
        values["authority_case_number"] = number
    if not values:
        raise BadInput(
            "give the receipt (receipt_ref and received_at) or the authority's case number", "empty"
        )
    changed = {k: v for k, v in values.items() if getattr(row, k) != v}
    if changed:
        conn.execute(
            update(referrals)
            .where(referrals.c.id == referral_id)
            .values(**changed, reply_by=who.name, reply_at=iso(now))
        )
        sites = json.loads(row.sites)
        target = audit_target(referral_id, row.case_id)
        record(conn, secret, who.name, "referral_reply", target, sites, {**changed, "referral": referral_id})
    return get_referral(conn, who, referral_id)
