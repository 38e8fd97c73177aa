"""Cases as callers read them: the list of a caller's cases, and one case with everything recorded."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from server.accounts import Principal
from server.cases.custody import disposal_rows, sample_rows
from server.cases.holders import get_holder
from server.cases.rules import NEXT_STATE, REQUIRED_FIELDS
from server.cases.store import case_sites, case_target, case_view, item_rows, load_case, seized_items
from server.db import parse_iso
from server.reviews import item_summary
from server.schema import audit_log, case_items, case_notifications, cases
from server.scope import audit_filter, covers
from server.settings import ServerSettings
from server.sites import deadline_rule

MAX_LISTED = 500


def case_summary(row: Any, sites: list[str], now: datetime) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "title": row.title,
        "site_id": row.site_id,
        "sites": sites,
        "owner": row.owner,
        "state": row.state,
        "state_since": row.state_since,
        "due_key": row.due_key,
        "due_at": row.due_at,
        "overdue": bool(row.due_at) and parse_iso(row.due_at) < now,
        "rights_holder_id": int(row.rights_holder_id) if row.rights_holder_id is not None else None,
        "outcome": row.outcome,
        "fields": json.loads(row.fields),
        "version": int(row.version),
        "created_by": row.created_by,
        "created_at": row.created_at,
        "closed_at": row.closed_at,
    }


def list_cases(
    conn: Connection, who: Principal, now: datetime, state: str | None = None
) -> list[dict[str, Any]]:
    """The caller's cases (every site of each theirs), open ones by nearest deadline, then the newest."""
    query = select(cases).order_by(cases.c.id.desc()).limit(MAX_LISTED)
    if state:
        query = query.where(cases.c.state == state)
    rows = conn.execute(query).fetchall()
    sites: dict[int, set[str]] = {}
    if rows:
        ids = [int(r.id) for r in rows]
        for link in conn.execute(
            select(case_items.c.case_id, case_items.c.site_id).where(case_items.c.case_id.in_(ids))
        ):
            sites.setdefault(int(link.case_id), set()).add(str(link.site_id))
    out = []
    for r in rows:
        mine = sorted(sites.get(int(r.id), set()) | {str(r.site_id)})
        if covers(who, mine):
            out.append(case_summary(r, mine, now))
    out.sort(key=lambda c: (c["state"] == "closed", c["due_at"] or "9999", -c["id"]))
    return out


def case_of_item(conn: Connection, review_id: int) -> int | None:
    found = conn.execute(select(case_items.c.case_id).where(case_items.c.review_id == review_id)).scalar()
    return int(found) if found is not None else None


def case_trail(conn: Connection, who: Principal, case_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(audit_log)
        .where(audit_log.c.target == case_target(case_id), audit_filter(who))
        .order_by(audit_log.c.n)
    )
    return [
        {"n": int(r.n), "at": r.at, "actor": r.actor, "action": r.action, "detail": json.loads(r.detail)}
        for r in rows
    ]


def case_detail(
    conn: Connection, settings: ServerSettings, who: Principal, case_id: int, now: datetime
) -> dict[str, Any]:
    """One case: items, rights holder, notifications, samples, disposals, deadline and its source, trail."""
    row = load_case(conn, who, case_id)
    out = case_summary(row, case_sites(conn, row), now)
    items = item_rows(conn, case_id)
    seized = set(seized_items(row, items))
    out["items"] = [dict(item_summary(i), seized=int(i.id) in seized) for i in items]
    out["rights_holder"] = get_holder(conn, int(row.rights_holder_id)) if row.rights_holder_id else None
    notices = conn.execute(
        select(case_notifications)
        .where(case_notifications.c.case_id == case_id)
        .order_by(case_notifications.c.id)
    )
    out["notifications"] = [dict(n._mapping) for n in notices]
    out["samples"] = sample_rows(conn, case_id)
    out["disposals"] = disposal_rows(conn, case_id)
    view = case_view(conn, row)
    out["undisposed"] = view.undisposed
    rule = deadline_rule(settings, row.site_id, row.due_key) if row.due_key else None
    out["deadline"] = {"label": rule.label, "source": rule.source} if rule else None
    out["next_actions"] = [a for (s, a) in NEXT_STATE if s == row.state]
    out["required"] = {a: list(f) for a, f in REQUIRED_FIELDS.items()}
    out["trail"] = case_trail(conn, who, case_id)
    return out
