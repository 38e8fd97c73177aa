"""Retention on PostgreSQL's partitioned events: a day of a class past its period goes as one partition.

A daily partition is dropped whole only when nothing in it must stay: no event under a legal hold and,
for hits, no review item still undecided or held. Otherwise it is left to the row deletes, which then
remove its other rows. DEFAULT partitions are never dropped (rows of days without their own partition).
"""

from __future__ import annotations

from sqlalchemy import ARRAY, BigInteger, Connection, bindparam, text

from server.db import serialise_writers
from server.legal_holds import HeldSet
from server.partitions import PARTITION_LOCK, EventPartition, drop_event_partition, event_partitions
from server.retention import Cutoff
from server.review_rules import FINAL_STATES


def _cut_day(partition: EventPartition, cuts: dict[str, Cutoff], names: list[str]) -> str | None:
    """The first day kept for the partition's rows, or None when this run does not cover all of them."""
    if partition.retention_class == "hit":
        return cuts["hit_events"].day if "hit_events" in names else None
    # 'cleared' holds cleared parcels and every event that is not a parcel (device, order, divert).
    if "cleared_events" in names and "station_events" in names:
        return min(cuts["cleared_events"].day, cuts["station_events"].day)
    return None


def due_partitions(conn: Connection, cuts: dict[str, Cutoff], names: list[str]) -> list[EventPartition]:
    """Daily partitions entirely past the period of the classes they hold, oldest first."""
    out = []
    for p in event_partitions(conn):
        cut = _cut_day(p, cuts, names)
        if p.day is not None and cut is not None and p.day.isoformat() < cut:
            out.append(p)
    return out


def _must_stay(conn: Connection, p: EventPartition, held: HeldSet) -> bool:
    ids = bindparam("ids", sorted(held.event_ids), type_=ARRAY(BigInteger()))
    if conn.execute(text(f"SELECT 1 FROM {p.name} WHERE id = ANY(:ids) LIMIT 1").bindparams(ids)).first():
        return True
    if p.retention_class != "hit":
        return False
    final = ", ".join(f"'{s}'" for s in sorted(FINAL_STATES))
    review_ids = bindparam("rids", sorted(held.review_ids), type_=ARRAY(BigInteger()))
    pending = text(
        f"SELECT 1 FROM {p.name} e JOIN reviews r ON r.event_key = e.key"
        f" WHERE r.state NOT IN ({final}) OR r.id = ANY(:rids) LIMIT 1"
    ).bindparams(review_ids)
    return conn.execute(pending).first() is not None


def drop_partition(conn: Connection, p: EventPartition, held: HeldSet) -> dict[str, int] | None:
    """In the caller's transaction: drop `p` with the review items of its hits, and return the rows it
    held per retention class; None (nothing done) when something in it must stay."""
    # Partition creators (ingest) take this lock before they lock `events`: the same order here.
    serialise_writers(conn, PARTITION_LOCK)
    if _must_stay(conn, p, held):
        return None
    if p.retention_class == "hit":
        n = int(conn.execute(text(f"SELECT count(*) FROM {p.name}")).scalar_one())
        conn.execute(text(f"DELETE FROM reviews WHERE event_key IN (SELECT key FROM {p.name})"))
        counts = {"hit_events": n}
    else:
        row = conn.execute(
            text(
                f"SELECT count(*) FILTER (WHERE type = 'parcel'), count(*) FILTER (WHERE type <> 'parcel')"
                f" FROM {p.name}"
            )
        ).one()
        counts = {"cleared_events": int(row[0]), "station_events": int(row[1])}
    drop_event_partition(conn, p.name)
    return counts
