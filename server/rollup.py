"""Daily counters derived from each stored event (pure), and their upsert into `daily_counts`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, tzinfo
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from edge.wire import DeviceStatusEvent, DivertOutcomeEvent, OperatorEvent, OrderStatusEvent, ParcelEvent
from server.schema import daily_counts, events

REALNAME_REASONS = frozenset({"NO_REALNAME", "REALNAME_UNVERIFIED"})
AnyEvent = ParcelEvent | OrderStatusEvent | OperatorEvent | DeviceStatusEvent | DivertOutcomeEvent
# Divert keys a pull is counted under; every key but these two is a pull not carried out.
DIVERTED, PENDING = "DIVERTED", "PENDING"
LOOKUP_CHUNK = 500


def _local(event: AnyEvent, zone: tzinfo) -> Any:
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
    return at.astimezone(zone)


def event_day(event: AnyEvent, zone: tzinfo = UTC) -> str:
    """The calendar day the event happened on at its site (`zone`: the site's time zone)."""
    return str(_local(event, zone).date().isoformat())


def hit_category(event: ParcelEvent) -> str:
    """The category a hit is reported under: the live classifier's confident category of a camera photo,
    or of an image a trained head judged; else the declared one.

    The category table was made for photos of goods: on an X-ray or a label its ImageNet guesses are
    noise, and shadow results are a model on trial, not evidence.
    """
    kinds = {img.sha256: img.kind for img in event.images}
    valid = [
        c
        for c in event.classifications
        if not c.shadow
        and not c.uncertain
        and (kinds.get(c.image_sha256) == "camera" or c.counterfeit_score is not None)
    ]
    best = max(valid, key=lambda c: c.category_prob, default=None)
    if best is not None:
        return best.category
    return event.declared_category or "unknown"


def event_counters(event: AnyEvent, zone: tzinfo = UTC) -> list[tuple[str, str]]:
    """The (metric, key) pairs one event adds 1 to (hours in the site's time zone `zone`).

    A divert outcome is counted by `count_batch`, on the day of its parcel.
    """
    out: list[tuple[str, str]] = []
    if isinstance(event, ParcelEvent):
        out.append(("parcels", ""))
        out.append(("decision", event.decision))
        if "NO_READ" in event.reasons:
            out.append(("no_reads", ""))
        if REALNAME_REASONS.intersection(event.reasons):
            out.append(("realname_failures", ""))
        if event.decision != "CLEAR":
            out.extend(("hit_reason", r[:64]) for r in event.reasons)
            out.append(("hit_hour", f"{_local(event, zone).hour:02d}"))
            out.append(("hit_category", hit_category(event)[:64]))
        # Every pull is under exactly one divert key: PENDING until its outcome event moves it.
        if event.decision == "PULL":
            out.append(("divert", event.divert.outcome if event.divert else "NONE"))
    elif isinstance(event, OrderStatusEvent):
        out.append(("order_status", event.state))
    elif isinstance(event, OperatorEvent):
        out.append(("operator", event.action))
    return out


def count_batch(
    batch: list[AnyEvent], zone: tzinfo = UTC, parcel_days: dict[tuple[str, str], str] | None = None
) -> Counter[tuple[str, str, str, str]]:
    """(day, station, metric, key) increments for `batch`, days at the site (`zone`).

    A pull's outcome moves it from PENDING to its outcome on the day its parcel was counted
    (`parcel_days`: (station, tracking id) -> day of the PULL parcel event), so that each day's
    requested = diverted + missed + pending however late the outcome comes.
    """
    totals: Counter[tuple[str, str, str, str]] = Counter()
    for ev in batch:
        day = event_day(ev, zone)
        for metric, key in event_counters(ev, zone):
            totals[(day, ev.station_id, metric, key)] += 1
        if isinstance(ev, DivertOutcomeEvent) and ev.decision == "PULL":
            parcel_day = (parcel_days or {}).get((ev.station_id, ev.tracking_id))
            if parcel_day is None:
                # No PULL parcel on record: counted alone on its own day, nothing left pending.
                totals[(day, ev.station_id, "divert", ev.outcome)] += 1
            elif ev.outcome != PENDING:
                totals[(parcel_day, ev.station_id, "divert", PENDING)] -= 1
                totals[(parcel_day, ev.station_id, "divert", ev.outcome)] += 1
    return totals


def pull_days(conn: Connection, batch: Iterable[AnyEvent]) -> dict[tuple[str, str], str]:
    """The stored day of the PULL parcel event behind each divert outcome of `batch`."""
    wanted: dict[str, set[str]] = {}
    for ev in batch:
        if isinstance(ev, DivertOutcomeEvent) and ev.decision == "PULL":
            wanted.setdefault(ev.station_id, set()).add(ev.tracking_id)
    out: dict[tuple[str, str], str] = {}
    for station_id, ids in wanted.items():
        tracking = sorted(ids)
        for i in range(0, len(tracking), LOOKUP_CHUNK):
            for row in conn.execute(
                select(events.c.tracking_id, events.c.day).where(
                    events.c.station_id == station_id,
                    events.c.tracking_id.in_(tracking[i : i + LOOKUP_CHUNK]),
                    events.c.type == "parcel",
                    events.c.decision == "PULL",
                )
            ):
                out[(station_id, str(row.tracking_id))] = str(row.day)
    return out


def upsert_counts(conn: Connection, totals: Counter[tuple[str, str, str, str]]) -> None:
    if not totals:
        return
    rows: list[dict[str, Any]] = [
        {"day": d, "station_id": s, "metric": m, "key": k, "count": n}
        for (d, s, m, k), n in sorted(totals.items())
    ]
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(daily_counts)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "station_id", "metric", "key"],
        set_={"count": daily_counts.c.count + stmt.excluded["count"]},
    )
    conn.execute(stmt, rows)
