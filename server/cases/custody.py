"""What happens to the goods of a case: samples released to the rights holder, and disposal records."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from server.accounts import Principal
from server.cases.rules import DISPOSAL_METHODS, DISPOSAL_STATES, SAMPLE_STATES
from server.cases.store import case_sites, case_target, item_rows, load_case, seized_items
from server.db import iso
from server.errors import BadInput, Conflict
from server.schema import case_samples, disposals, image_sites, images
from server.scope import record


def _case_item(conn: Connection, row: Any, review_id: int) -> Any:
    found = next((i for i in item_rows(conn, int(row.id)) if int(i.id) == review_id), None)
    if found is None:
        raise BadInput(f"review item {review_id} is not in case {row.id}", "not_in_case")
    return found


def release_sample(
    conn: Connection, secret: str, who: Principal, case_id: int, data: dict[str, Any], now: datetime
) -> int:
    """Samples of one item handed to the rights holder's representative, with the receipt's reference."""
    row = load_case(conn, who, case_id)
    if row.state not in SAMPLE_STATES:
        raise Conflict(f"samples are released while the goods are held (the case is {row.state})", "not_held")
    _case_item(conn, row, int(data["review_id"]))
    sample_id = int(
        conn.execute(
            case_samples.insert()
            .values(**data, case_id=case_id, released_by=who.name, released_at=iso(now))
            .returning(case_samples.c.id)
        ).scalar_one()
    )
    detail = {**data, "sample": sample_id}
    record(conn, secret, who.name, "case_sample", case_target(case_id), case_sites(conn, row), detail)
    return sample_id


def check_photos(conn: Connection, shas: list[str], sites: list[str]) -> None:
    """Photos must be images this server holds, uploaded for this case (linked to its sites)."""
    for sha in shas:
        held = conn.execute(select(images.c.sha256).where(images.c.sha256 == sha)).first()
        linked = conn.execute(
            select(image_sites.c.site_id).where(image_sites.c.sha256 == sha, image_sites.c.site_id.in_(sites))
        ).first()
        if held is None or linked is None:
            raise BadInput(f"photo {sha[:12]}… is not an image uploaded for this case", "bad_photo")


def record_disposal(
    conn: Connection,
    secret: str,
    who: Principal,
    case_id: int,
    data: dict[str, Any],
    now: datetime,
    today: date,
) -> int:
    """The disposal of one seized item's goods: method, place, day, witnesses, photos, certificate."""
    row = load_case(conn, who, case_id)
    if row.state not in DISPOSAL_STATES:
        raise Conflict(f"goods are disposed of after the decision (the case is {row.state})", "not_decided")
    review_id = int(data["review_id"])
    _case_item(conn, row, review_id)
    if review_id not in seized_items(row, item_rows(conn, case_id)):
        raise Conflict(f"the goods of item {review_id} are not seized", "not_seized")
    if data["method"] not in DISPOSAL_METHODS:
        raise BadInput(f"method must be one of {', '.join(DISPOSAL_METHODS)}", "bad_method")
    if date.fromisoformat(data["done_on"]) > today:
        raise BadInput("done_on lies in the future", "bad_date")
    sites = case_sites(conn, row)
    check_photos(conn, data["photos"], sites)
    if conn.execute(select(disposals.c.id).where(disposals.c.review_id == review_id)).first():
        raise Conflict(f"the goods of item {review_id} already have a disposal record", "exists")
    values = {
        **data,
        "witnesses": json.dumps(data["witnesses"], ensure_ascii=False),
        "photos": json.dumps(data["photos"]),
    }
    try:
        disposal_id = int(
            conn.execute(
                disposals.insert()
                .values(**values, case_id=case_id, recorded_by=who.name, recorded_at=iso(now))
                .returning(disposals.c.id)
            ).scalar_one()
        )
    except IntegrityError as exc:  # recorded by another officer between the check above and now
        raise Conflict(f"the goods of item {review_id} already have a disposal record", "exists") from exc
    record(
        conn,
        secret,
        who.name,
        "case_disposal",
        case_target(case_id),
        sites,
        {**data, "disposal": disposal_id},
    )
    return disposal_id


def sample_rows(conn: Connection, case_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(case_samples).where(case_samples.c.case_id == case_id).order_by(case_samples.c.id)
    )
    return [dict(r._mapping) for r in rows]


def disposal_rows(conn: Connection, case_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(disposals).where(disposals.c.case_id == case_id).order_by(disposals.c.id))
    out = []
    for r in rows:
        d = dict(r._mapping)
        d["witnesses"], d["photos"] = json.loads(d["witnesses"]), json.loads(d["photos"])
        out.append(d)
    return out
