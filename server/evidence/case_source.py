"""A case as bundle input: its items, its record as the cases module reads it, its records as custody."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from server.accounts import Principal
from server.cases.read import case_detail
from server.cases.store import case_target
from server.db import utcnow
from server.errors import NotFound
from server.evidence.collect import CUSTODY_FIELDS, CaseRecord
from server.settings import ServerSettings


def step_fields(fields: dict[str, Any], key: str) -> Any:
    """A value a case step recorded (kept under the step's name: {"refer": {"authority": ...}})."""
    if key in fields:
        return fields[key]
    for value in fields.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None


def load_case(
    conn: Connection, who: Principal, case_id: int, settings: ServerSettings
) -> tuple[list[int], CaseRecord]:
    """The case's review items and record; a case reaching beyond the caller's sites is NotFound."""
    detail = case_detail(conn, settings, who, case_id, utcnow())
    item_ids = [int(i["id"]) for i in detail["items"]]
    if not item_ids:
        raise NotFound(f"case {case_id} has no review items to bundle")
    # The trail is the audit entries, which the bundle carries whole in audit.json.
    summary = {k: v for k, v in detail.items() if k not in ("trail", "next_actions", "required")}
    return item_ids, CaseRecord(
        case_id=str(case_id),
        summary=summary,
        custody=custody_steps(detail),
        audit_target=case_target(case_id),
        images=sorted({sha for d in detail["disposals"] for sha in d["photos"]}),
    )


def _step(
    at: str, step: str, who: str, item: int | None, where: dict[str, Any], source: str, detail: dict[str, Any]
) -> dict[str, Any]:
    return {
        "at": at,
        "step": step,
        "who": who,
        "item": item,
        "where": where,
        "source": source,
        "detail": detail,
    }


def custody_steps(case: dict[str, Any]) -> list[dict[str, Any]]:
    """Who held or handled the goods when: the case's steps, notices and replies, samples, disposals."""
    steps: list[dict[str, Any]] = []
    # The cases module keeps each step's fields under its action, with who took it and when.
    for action, kept in case["fields"].items():
        if isinstance(kept, dict) and kept.get("at"):
            where = {k: kept[k] for k in CUSTODY_FIELDS if kept.get(k)}
            steps.append(
                _step(
                    kept["at"],
                    f"case_{action}",
                    str(kept.get("by", "")),
                    None,
                    where,
                    f"case {case['id']}",
                    {},
                )
            )
    for n in case["notifications"]:
        source = f"notification {n['id']}"
        if n["delivered_at"]:
            steps.append(
                _step(
                    n["delivered_at"],
                    "rights_holder_notified",
                    n["created_by"],
                    None,
                    {"channel": n["channel"], "recipient": n["recipient"]},
                    source,
                    {},
                )
            )
        if n["reply_at"]:
            steps.append(
                _step(
                    n["reply_at"],
                    "rights_holder_replied",
                    n["reply_by"] or "",
                    None,
                    {},
                    source,
                    {"reply": n["reply"], "note": n["reply_note"]},
                )
            )
    for s in case["samples"]:
        steps.append(
            _step(
                s["released_at"],
                "sample_released",
                s["released_by"],
                s["review_id"],
                {"released_to": s["released_to"], "receipt_reference": s["receipt_reference"]},
                f"sample {s['id']}",
                {"description": s["description"], "quantity": s["quantity"]},
            )
        )
    for d in case["disposals"]:
        steps.append(
            _step(
                d["recorded_at"],
                "disposed",
                d["recorded_by"],
                d["review_id"],
                {"place": d["place"], "done_on": d["done_on"]},
                f"disposal {d['id']}",
                {
                    "method": d["method"],
                    "witnesses": d["witnesses"],
                    "photos": d["photos"],
                    "certificate_ref": d["certificate_ref"],
                },
            )
        )
    return steps
