"""Cases in the database: open one from review items, add items, owner and rights holder, take steps."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from server.accounts import Principal
from server.cases.examples import learn_from_case
from server.cases.rules import (
    HELD_REVIEW_STATES,
    ITEM_STATES,
    RIGHTS_HOLDER_STATES,
    CaseStep,
    CaseView,
    next_step,
)
from server.db import iso, parse_iso
from server.errors import BadInput, Conflict, NotFound
from server.schema import case_items, cases, disposals, reviews, rights_holders, users
from server.scope import covers, record, site_filter
from server.settings import ServerSettings
from server.sites import due_at

MAX_ITEMS = 500


def case_target(case_id: int) -> str:
    """The audit target of a case: every entry about it names this."""
    return f"case:{case_id}"


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def case_sites(conn: Connection, row: Any) -> list[str]:
    """The sites a case concerns: its own and those of its items."""
    found = {
        str(r.site_id)
        for r in conn.execute(select(case_items.c.site_id).where(case_items.c.case_id == row.id))
    }
    return sorted(found | {str(row.site_id)})


def load_case(conn: Connection, who: Principal, case_id: int) -> Any:
    """The case row, when every one of its sites is the caller's; a case reaching beyond them is not shown."""
    row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
    if row is None or not covers(who, case_sites(conn, row)):
        raise NotFound(f"no case {case_id}")
    return row


def _items(conn: Connection, who: Principal, review_ids: Iterable[int]) -> list[Any]:
    """Review items the caller sees and no case holds yet, in id order."""
    ids = sorted(set(review_ids))
    if not ids:
        raise BadInput("name at least one review item", "no_items")
    if len(ids) > MAX_ITEMS:
        raise BadInput(f"at most {MAX_ITEMS} items at once", "too_many_items")
    rows = conn.execute(
        select(reviews)
        .where(reviews.c.id.in_(ids), site_filter(who, reviews.c.site_id))
        .order_by(reviews.c.id)
    ).fetchall()
    missing = sorted(set(ids) - {int(r.id) for r in rows})
    if missing:
        # An item of a site the caller may not see is reported exactly like one that does not exist.
        raise NotFound(f"no review item {missing[0]}")
    taken = conn.execute(
        select(case_items.c.review_id, case_items.c.case_id).where(case_items.c.review_id.in_(ids))
    ).first()
    if taken is not None:
        raise Conflict(f"review item {taken.review_id} is already in case {taken.case_id}", "in_another_case")
    return list(rows)


def _link(conn: Connection, case_id: int, rows: list[Any], actor: str, now: datetime) -> None:
    try:
        _insert_links(conn, case_id, rows, actor, now)
    except IntegrityError as exc:
        # Another officer put one of these items in a case between our check and this insert.
        raise Conflict("an item was put in another case meanwhile; reload", "in_another_case") from exc


def _insert_links(conn: Connection, case_id: int, rows: list[Any], actor: str, now: datetime) -> None:
    conn.execute(
        case_items.insert(),
        [
            {
                "case_id": case_id,
                "review_id": r.id,
                "site_id": r.site_id,
                "added_by": actor,
                "added_at": iso(now),
            }
            for r in rows
        ],
    )


def open_case(
    conn: Connection, secret: str, who: Principal, title: str, review_ids: Iterable[int], now: datetime
) -> int:
    """A new case of these items, owned by its opener; returns its id."""
    title = title.strip()
    if not title:
        raise BadInput("a case needs a title", "missing_fields")
    rows = _items(conn, who, review_ids)
    case_id = int(
        conn.execute(
            cases.insert()
            .values(
                title=title[:200],
                site_id=rows[0].site_id,
                owner=who.name,
                state="open",
                state_since=iso(now),
                due_key=None,
                due_at=None,
                rights_holder_id=None,
                outcome=None,
                fields="{}",
                version=1,
                created_by=who.name,
                created_at=iso(now),
                closed_at=None,
            )
            .returning(cases.c.id)
        ).scalar_one()
    )
    _link(conn, case_id, rows, who.name, now)
    row = conn.execute(select(cases).where(cases.c.id == case_id)).one()
    detail = {"title": title, "items": [int(r.id) for r in rows]}
    record(conn, secret, who.name, "case_open", case_target(case_id), case_sites(conn, row), detail)
    return case_id


def _bump(conn: Connection, row: Any, **values: Any) -> None:
    """Change the case only if nobody changed it since it was read."""
    done = conn.execute(
        update(cases)
        .where(cases.c.id == row.id, cases.c.version == row.version)
        .values(version=row.version + 1, **values)
    )
    if done.rowcount != 1:
        raise Conflict("the case changed meanwhile; reload it", "changed")


def add_items(
    conn: Connection, secret: str, who: Principal, case_id: int, review_ids: Iterable[int], now: datetime
) -> None:
    row = load_case(conn, who, case_id)
    if row.state not in ITEM_STATES:
        raise Conflict(
            f"items join a case only while it is open or detained (it is {row.state})", "items_frozen"
        )
    rows = _items(conn, who, review_ids)
    if row.state == "detained" and any(r.state not in HELD_REVIEW_STATES for r in rows):
        raise Conflict("a detained case takes only items detained or seized at review", "items_not_held")
    _link(conn, case_id, rows, who.name, now)
    _bump(conn, row)
    detail = {"items": [int(r.id) for r in rows]}
    record(conn, secret, who.name, "case_add_items", case_target(case_id), case_sites(conn, row), detail)


def set_owner(conn: Connection, secret: str, who: Principal, case_id: int, owner: str) -> None:
    """Hand the case to another officer, who must see every one of its sites."""
    row = load_case(conn, who, case_id)
    if row.state == "closed":
        raise Conflict("the case is closed", "closed")
    user = conn.execute(select(users).where(users.c.username == owner)).first()
    sites = case_sites(conn, row)
    if user is None or not user.active or user.role != "officer":
        raise BadInput(f"{owner!r} is not an active officer", "bad_owner")
    held = json.loads(user.sites)
    if "*" not in held and not set(sites) <= set(held):
        raise BadInput(f"{owner!r} does not hold every site of the case ({', '.join(sites)})", "bad_owner")
    _bump(conn, row, owner=owner)
    record(
        conn, secret, who.name, "case_owner", case_target(case_id), sites, {"from": row.owner, "to": owner}
    )


def set_rights_holder(conn: Connection, secret: str, who: Principal, case_id: int, holder_id: int) -> None:
    row = load_case(conn, who, case_id)
    if row.state not in RIGHTS_HOLDER_STATES:
        raise Conflict("the rights holder is fixed once notified", "notified")
    holder = conn.execute(select(rights_holders).where(rights_holders.c.id == holder_id)).first()
    if holder is None or not holder.active:
        raise NotFound(f"no rights holder {holder_id}")
    _bump(conn, row, rights_holder_id=holder_id)
    detail = {"rights_holder": holder_id, "brand": holder.brand}
    record(conn, secret, who.name, "case_rights_holder", case_target(case_id), case_sites(conn, row), detail)


def item_rows(conn: Connection, case_id: int) -> list[Any]:
    query = (
        select(reviews)
        .join(case_items, case_items.c.review_id == reviews.c.id)
        .where(case_items.c.case_id == case_id)
        .order_by(reviews.c.id)
    )
    return list(conn.execute(query).fetchall())


def seized_items(row: Any, items: list[Any]) -> list[int]:
    """Items whose goods are seized: all of a case confirmed counterfeit, and any seized at review."""
    return [int(i.id) for i in items if row.outcome == "counterfeit" or i.state == "seized"]


def case_view(conn: Connection, row: Any) -> CaseView:
    items = item_rows(conn, int(row.id))
    seized = seized_items(row, items)
    done = {
        int(r.review_id)
        for r in conn.execute(select(disposals.c.review_id).where(disposals.c.case_id == row.id))
    }
    return CaseView(
        state=row.state,
        items=len(items),
        items_held=bool(items) and all(i.state in HELD_REVIEW_STATES for i in items),
        rights_holder=row.rights_holder_id is not None,
        outcome=row.outcome,
        due_at=parse_iso(row.due_at) if row.due_at else None,
        seized=len(seized),
        undisposed=len([i for i in seized if i not in done]),
    )


def take_step(
    conn: Connection,
    settings: ServerSettings,
    who: Principal,
    case_id: int,
    action: str,
    fields: dict[str, str],
    now: datetime,
    start: datetime | None = None,
) -> CaseStep:
    """Apply one step of the state machine; the new state's deadline runs from `start` (default now)."""
    row = load_case(conn, who, case_id)
    step = next_step(case_view(conn, row), action, now, fields, tuple(settings.review.legal_bases))
    due = due_at(settings, row.site_id, step.due_key, start or now) if step.due_key else None
    kept = json.loads(row.fields)
    kept[action] = {**fields, "by": who.name, "at": iso(now)}
    _bump(
        conn,
        row,
        state=step.state,
        state_since=iso(now),
        due_key=step.due_key,
        due_at=iso(due) if due else None,
        outcome=step.outcome,
        fields=_dump(kept),
        closed_at=iso(now) if step.state == "closed" else None,
    )
    detail = {"from": row.state, "to": step.state, "fields": fields, "due_at": iso(due) if due else None}
    secret = settings.secret_key.get_secret_value()
    record(conn, secret, who.name, f"case_{action}", case_target(case_id), case_sites(conn, row), detail)
    if step.state == "closed":
        learn_from_case(conn, case_id, now)
    return step
