"""A case as bundle input: its items, its summary, and its records (samples, disposals...) as custody."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from server.accounts import Principal
from server.errors import NotFound
from server.evidence.collect import CaseRecord
from server.schema import case_items, case_notifications, case_samples, cases, disposals, rights_holders


def case_audit_target(case_id: int) -> str:
    return f"case:{case_id}"


def _rows(conn: Connection, table: Any, case_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(table).where(table.c.case_id == case_id).order_by(table.c.id)).mappings()
    return [dict(r) for r in rows]


def step_fields(fields: dict[str, Any], key: str) -> Any:
    """A value a case step recorded: kept flat or under the step's name, whichever the case holds."""
    if key in fields:
        return fields[key]
    for value in fields.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None


def load_case(conn: Connection, who: Principal, case_id: int) -> tuple[list[int], CaseRecord]:
    """The case's review items and its record; a case of a site the caller may not see is NotFound."""
    row = conn.execute(select(cases).where(cases.c.id == case_id)).mappings().first()
    members = conn.execute(
        select(case_items).where(case_items.c.case_id == case_id).order_by(case_items.c.review_id)
    ).mappings()
    items = [dict(m) for m in members]
    sites = {row["site_id"]} | {m["site_id"] for m in items} if row else set()
    if row is None or not all(who.sees_site(s) for s in sites):
        raise NotFound(f"no case {case_id}")
    if not items:
        raise NotFound(f"case {case_id} has no review items to bundle")
    holder = None
    if row["rights_holder_id"] is not None:
        h = conn.execute(
            select(rights_holders).where(rights_holders.c.id == row["rights_holder_id"])
        ).mappings()
        found = h.first()
        if found is not None:
            holder = {k: found[k] for k in ("id", "brand", "contact_name", "language", "trademarks")}
            holder["trademarks"] = json.loads(holder["trademarks"])
    notes = _rows(conn, case_notifications, case_id)
    samples = _rows(conn, case_samples, case_id)
    disposed = _rows(conn, disposals, case_id)
    for d in disposed:
        d["witnesses"], d["photos"] = json.loads(d["witnesses"]), json.loads(d["photos"])
    summary = {
        **{k: v for k, v in row.items() if k != "fields"},
        "fields": json.loads(row["fields"]),
        "rights_holder": holder,
        "items": items,
        "notifications": [{k: v for k, v in n.items() if k != "body"} for n in notes],
        "samples": samples,
        "disposals": disposed,
    }
    return [int(m["review_id"]) for m in items], CaseRecord(
        case_id=str(case_id),
        summary=summary,
        custody=_custody(items, notes, samples, disposed),
        audit_target=case_audit_target(case_id),
        images=sorted({sha for d in disposed for sha in d["photos"]}),
    )


def _custody(
    items: list[dict[str, Any]],
    notes: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    disposed: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for m in items:
        steps.append(
            {
                "at": m["added_at"],
                "step": "added_to_case",
                "who": m["added_by"],
                "item": m["review_id"],
                "where": {"site_id": m["site_id"]},
                "source": "case items",
                "detail": {},
            }
        )
    for n in notes:
        if n["delivered_at"]:
            steps.append(
                {
                    "at": n["delivered_at"],
                    "step": "rights_holder_notified",
                    "who": n["created_by"],
                    "item": None,
                    "where": {"channel": n["channel"]},
                    "source": f"notification {n['id']}",
                    "detail": {},
                }
            )
        if n["reply_at"]:
            steps.append(
                {
                    "at": n["reply_at"],
                    "step": "rights_holder_replied",
                    "who": n["reply_by"] or "",
                    "item": None,
                    "where": {},
                    "source": f"notification {n['id']}",
                    "detail": {"reply": n["reply"]},
                }
            )
    for s in samples:
        steps.append(
            {
                "at": s["released_at"],
                "step": "sample_released",
                "who": s["released_by"],
                "item": s["review_id"],
                "where": {"released_to": s["released_to"], "receipt_reference": s["receipt_reference"]},
                "source": f"sample {s['id']}",
                "detail": {"description": s["description"], "quantity": s["quantity"]},
            }
        )
    for d in disposed:
        steps.append(
            {
                "at": d["recorded_at"],
                "step": "disposed",
                "who": d["recorded_by"],
                "item": d["review_id"],
                "where": {"place": d["place"], "done_on": d["done_on"]},
                "source": f"disposal {d['id']}",
                "detail": {
                    "method": d["method"],
                    "witnesses": d["witnesses"],
                    "photos": d["photos"],
                    "certificate_ref": d["certificate_ref"],
                },
            }
        )
    return steps
