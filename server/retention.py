"""Retention classes: which rows are past their period, which ones holds keep, and chunked deletes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    Connection,
    ScalarSelect,
    Table,
    any_,
    bindparam,
    delete,
    exists,
    func,
    not_,
    or_,
    select,
)

from server.db import iso
from server.legal_holds import HeldSet
from server.review_rules import FINAL_STATES
from server.schema import events, gallery, image_sites, images, manifests, reviews, senders
from server.settings import RETENTION_FLOORS, RetentionConfig

CLASSES = tuple(RETENTION_FLOORS)
# The rows a chunk deletes: their keys (PostgreSQL) or the query choosing them (SQLite).
Keys = list[Any] | ScalarSelect[Any]
HITS = ("HOLD", "PULL")


@dataclass(frozen=True)
class Cutoff:
    """Rows of a class older than this go: events by their UTC day, other rows by their time."""

    days: int
    at: str  # ISO time: rows stamped before it are past the period
    day: str  # first UTC day kept: an event of an earlier day is past the period

    @classmethod
    def of(cls, days: int, now: datetime) -> Cutoff:
        at = now - timedelta(days=days)
        return cls(days, iso(at), at.date().isoformat())


def cutoffs(policy: RetentionConfig, now: datetime) -> dict[str, Cutoff]:
    return {name: Cutoff.of(days, now) for name, days in policy.days().items()}


def check_classes(names: list[str] | None) -> list[str]:
    """The classes asked for, in deletion order; an unknown name is a clear error."""
    if not names:
        return list(CLASSES)
    unknown = sorted(set(names) - set(CLASSES))
    if unknown:
        raise ValueError(
            f"unknown retention class {', '.join(unknown)}; the classes are: {', '.join(CLASSES)}"
        )
    return [c for c in CLASSES if c in names]


def _open_reviews() -> ColumnElement[bool]:
    return reviews.c.state.not_in(sorted(FINAL_STATES))


@dataclass(frozen=True)
class Step:
    """One table's share of a class: the rows past the period (`age`), those kept anyway (`keep`: held,
    or still needed by open work), and the dependent rows that go with each deleted one."""

    cls: str
    name: str
    table: Table
    key: Column[object]
    age: Callable[[Cutoff], ColumnElement[bool]]
    keep: Callable[[HeldSet, Cutoff], ColumnElement[bool]]
    dependents: Callable[[Connection, Keys], None] | None = None


def _cleared_age(cut: Cutoff) -> ColumnElement[bool]:
    return (events.c.day < cut.day) & (events.c.type == "parcel") & (events.c.decision == "CLEAR")


def _hit_age(cut: Cutoff) -> ColumnElement[bool]:
    return (events.c.day < cut.day) & (events.c.type == "parcel") & events.c.decision.in_(HITS)


def _station_age(cut: Cutoff) -> ColumnElement[bool]:
    return (events.c.day < cut.day) & (events.c.type != "parcel")


def _held_events(held: HeldSet, _cut: Cutoff) -> ColumnElement[bool]:
    return events.c.id.in_(sorted(held.event_ids))


def _hit_keep(held: HeldSet, cut: Cutoff) -> ColumnElement[bool]:
    # A hit goes only with a review item that is decided for good and not held.
    pending = exists().where(
        reviews.c.event_key == events.c.key,
        or_(_open_reviews(), reviews.c.id.in_(sorted(held.review_ids))),
    )
    return or_(_held_events(held, cut), pending)


def _hit_dependents(conn: Connection, ids: Keys) -> None:
    keys = select(events.c.key).where(key_in(conn, events.c.id, ids))
    conn.execute(delete(reviews).where(reviews.c.event_key.in_(keys)))


def _image_keep(held: HeldSet, _cut: Cutoff) -> ColumnElement[bool]:
    in_gallery = exists().where(gallery.c.image_sha256 == images.c.sha256)
    return or_(in_gallery, images.c.sha256.in_(sorted(held.image_shas)))


def _image_dependents(conn: Connection, shas: Keys) -> None:
    conn.execute(delete(image_sites).where(key_in(conn, image_sites.c.sha256, shas)))


def _manifest_keep(held: HeldSet, _cut: Cutoff) -> ColumnElement[bool]:
    # NOT IN over a subquery with a NULL keeps everything: the subqueries exclude NULLs.
    open_waybills = select(reviews.c.waybill).where(_open_reviews(), reviews.c.waybill.is_not(None))
    return or_(manifests.c.waybill.in_(sorted(held.waybills)), manifests.c.waybill.in_(open_waybills))


def _sender_keep(held: HeldSet, cut: Cutoff) -> ColumnElement[bool]:
    # A sender with a manifest that stays (a recent parcel) stays: stations check parcels against it.
    # "Stays" is judged as the manifests step judges it, so a dry run counts what the run will do.
    staying = or_(manifests.c.updated_at >= cut.at, _manifest_keep(held, cut))
    named = select(manifests.c.sender_token).where(manifests.c.sender_token.is_not(None), staying)
    open_items = select(reviews.c.sender_token).where(_open_reviews(), reviews.c.sender_token.is_not(None))
    return or_(
        senders.c.sender_token.in_(sorted(held.sender_tokens)),
        senders.c.sender_token.in_(named),
        senders.c.sender_token.in_(open_items),
    )


STEPS: tuple[Step, ...] = (
    Step("cleared_events", "events", events, events.c.id, _cleared_age, _held_events),
    Step("hit_events", "events", events, events.c.id, _hit_age, _hit_keep, _hit_dependents),
    Step("station_events", "events", events, events.c.id, _station_age, _held_events),
    Step(
        "hit_images",
        "images",
        images,
        images.c.sha256,
        lambda cut: images.c.created_at < cut.at,
        _image_keep,
        _image_dependents,
    ),
    # Manifests first: a sender whose last manifest has just gone may then go too.
    Step(
        "real_name",
        "manifests",
        manifests,
        manifests.c.waybill,
        lambda cut: manifests.c.updated_at < cut.at,
        _manifest_keep,
    ),
    Step(
        "real_name",
        "senders",
        senders,
        senders.c.sender_token,
        lambda cut: senders.c.updated_at < cut.at,
        _sender_keep,
    ),
)


def steps_of(classes: list[str]) -> list[Step]:
    return [s for s in STEPS if s.cls in classes]


def count_older(conn: Connection, step: Step, cut: Cutoff) -> int:
    """Rows of the step past the period, held or not."""
    return int(conn.execute(select(func.count()).select_from(step.table).where(step.age(cut))).scalar_one())


def count_due(conn: Connection, step: Step, cut: Cutoff, held: HeldSet) -> int:
    """Rows that a run would delete now."""
    query = select(func.count()).select_from(step.table).where(step.age(cut), not_(step.keep(held, cut)))
    return int(conn.execute(query).scalar_one())


class RowDeleter:
    """Deletes one step's due rows, up to `limit` (and their dependents) per call, in the caller's
    transaction; each call returns how many went. On PostgreSQL it walks the key in order, so that no
    chunk scans again over the rows earlier chunks deleted (they stay in the indexes until vacuum)."""

    def __init__(self, step: Step, cut: Cutoff, limit: int) -> None:
        self.step, self.cut, self.limit = step, cut, limit
        self.after: Any = None

    def __call__(self, conn: Connection, held: HeldSet) -> int:
        step = self.step
        due = select(step.key).where(step.age(self.cut), not_(step.keep(held, self.cut)))
        if conn.dialect.name != "postgresql":
            # SQLite: the keys never leave the database. The same query inside one write transaction
            # picks the same rows for the dependents and for the rows (deleted dependents are never
            # what keeps a row).
            chosen = due.limit(self.limit).scalar_subquery()
            if step.dependents is not None:
                step.dependents(conn, chosen)
            return int(conn.execute(delete(step.table).where(step.key.in_(chosen))).rowcount)
        if self.after is not None:
            due = due.where(step.key > self.after)
        keys = list(conn.execute(due.order_by(step.key).limit(self.limit)).scalars().all())
        if not keys:
            return 0
        self.after = keys[-1]
        if step.dependents is not None:
            step.dependents(conn, keys)
        conn.execute(delete(step.table).where(key_in(conn, step.key, keys)))
        return len(keys)


def key_in(conn: Connection, column: Column[Any], keys: Keys) -> ColumnElement[bool]:
    """`column IN keys`; a list of keys is one array parameter on PostgreSQL, where thousands of
    separate ones take longer to plan than the delete takes to run."""
    if isinstance(keys, list) and conn.dialect.name == "postgresql":
        return column == any_(bindparam("keys", keys, type_=ARRAY(column.type)))
    return column.in_(keys)
