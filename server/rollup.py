"""Daily counters derived from each stored event (pure), and their upsert into `daily_counts`."""

from __future__ import annotations

from collections import Counter
from datetime import UTC
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from edge.wire import DeviceStatusEvent, DivertOutcomeEvent, OperatorEvent, OrderStatusEvent, ParcelEvent
from server.schema import daily_counts

REALNAME_REASONS = frozenset({"NO_REALNAME", "REALNAME_UNVERIFIED"})
AnyEvent = ParcelEvent | OrderStatusEvent | OperatorEvent | DeviceStatusEvent | DivertOutcomeEvent


def event_day(event: AnyEvent) -> str:
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
    return at.astimezone(UTC).date().isoformat()


def hit_category(event: ParcelEvent) -> str:
    """The category a hit is reported under: the classifier's top guess, else the declared one."""
    best = max(event.classifications, key=lambda c: c.category_prob, default=None)
    if best is not None and not best.uncertain:
        return best.category
    return event.declared_category or "unknown"


def event_counters(event: AnyEvent) -> list[tuple[str, str]]:
    """The (metric, key) pairs one event adds 1 to."""
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
            out.append(("hit_hour", f"{event.at.astimezone(UTC).hour:02d}"))
            out.append(("hit_category", hit_category(event)[:64]))
        # A PENDING divert is counted when its outcome event comes.
        if event.decision == "PULL" and not (event.divert and event.divert.outcome == "PENDING"):
            out.append(("divert", event.divert.outcome if event.divert else "NONE"))
    elif isinstance(event, DivertOutcomeEvent):
        if event.decision == "PULL":
            out.append(("divert", event.outcome))
    elif isinstance(event, OrderStatusEvent):
        out.append(("order_status", event.state))
    elif isinstance(event, OperatorEvent):
        out.append(("operator", event.action))
    return out


def count_batch(events: list[AnyEvent]) -> Counter[tuple[str, str, str, str]]:
    totals: Counter[tuple[str, str, str, str]] = Counter()
    for ev in events:
        day = event_day(ev)
        for metric, key in event_counters(ev):
            totals[(day, ev.station_id, metric, key)] += 1
    return totals


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
