"""Registry changes since a station's cursor, paged, in the wire form edges store."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from edge.wire import ManifestWire, RegistryChanges, SenderWire, WatchWire
from server.db import iso
from server.schema import manifests, registry_log, sender_risks, senders, watchlist
from server.watchlist import applies_at


def registry_changes(
    conn: Connection,
    cursor: int,
    limit: int,
    now: datetime,
    site_id: str,
    regions: dict[str, list[str]],
    valid_qualifications: list[str] | None = None,
) -> RegistryChanges:
    """Rows changed after `cursor` (at most `limit` log entries); `more` says another page is waiting.

    Watchlist entries go only to stations of a site they apply at; other sites' entries are skipped
    (the cursor still moves past them), so the wire form needs no scope. A sender's risk and whether
    its qualification is one of `valid_qualifications` go with it (see feature sender-risk).
    """
    log_rows = conn.execute(
        select(registry_log.c.cursor, registry_log.c.kind, registry_log.c.ref)
        .where(registry_log.c.cursor > cursor)
        .order_by(registry_log.c.cursor)
        .limit(limit + 1)
    ).fetchall()
    more = len(log_rows) > limit
    log_rows = log_rows[:limit]
    if not log_rows:
        return RegistryChanges(cursor=cursor)
    refs: dict[str, set[str]] = {"sender": set(), "manifest": set(), "watch": set()}
    for row in log_rows:
        refs.setdefault(row.kind, set()).add(row.ref)
    out_senders = []
    valid = {q.casefold() for q in valid_qualifications or []}
    if refs["sender"]:
        for r in conn.execute(
            select(senders, sender_risks.c.score.label("risk"))
            .outerjoin(sender_risks, sender_risks.c.sender_token == senders.c.sender_token)
            .where(senders.c.sender_token.in_(refs["sender"]))
            .order_by(senders.c.sender_token)
        ):
            out_senders.append(
                SenderWire(
                    sender_token=r.sender_token,
                    id_masked=r.id_masked,
                    name_masked=r.name_masked,
                    phone_token=r.phone_token,
                    address_token=r.address_token,
                    verified=bool(r.verified),
                    agreement_customer=bool(r.agreement_customer),
                    risk=round(float(r.risk), 4) if r.risk is not None else 0.0,
                    qualified=r.qualification.strip().casefold() in valid if r.agreement_customer else None,
                    customer_token=r.customer_token,
                )
            )
    out_manifests = []
    if refs["manifest"]:
        for r in conn.execute(
            select(manifests).where(manifests.c.waybill.in_(refs["manifest"])).order_by(manifests.c.waybill)
        ):
            out_manifests.append(
                ManifestWire(
                    waybill=r.waybill,
                    sender_token=r.sender_token,
                    declared_name=r.declared_name,
                    declared_category=r.declared_category,
                    quantity=r.quantity,
                    inspected_on_receipt=bool(r.inspected_on_receipt),
                )
            )
    out_watch = []
    now_s = iso(now)
    if refs["watch"]:
        for r in conn.execute(
            select(watchlist)
            .where(watchlist.c.entry_id.in_(refs["watch"]), applies_at([site_id], regions))
            .order_by(watchlist.c.entry_id)
        ):
            expired = r.expires_at is not None and r.expires_at <= now_s
            withdrawn = r.appeal_status == "overturned"
            out_watch.append(
                WatchWire(
                    entry_id=r.entry_id,
                    list=r.list,
                    kind=r.kind,
                    token=r.token,
                    reason=r.reason,
                    expires_at=datetime.fromisoformat(r.expires_at) if r.expires_at else None,
                    active=bool(r.active) and not expired and not withdrawn,
                )
            )
    return RegistryChanges(
        cursor=int(log_rows[-1].cursor),
        senders=out_senders,
        manifests=out_manifests,
        watchlist=out_watch,
        more=more,
    )
