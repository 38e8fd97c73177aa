"""Pruning the audit chain's oldest entries so that what is left still verifies: a signed base moves up."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select, update

from server.audit import base_mac
from server.db import iso, utcnow
from server.schema import audit_base, audit_head, audit_log, audit_scope


def first_kept(conn: Connection) -> int:
    """The lowest entry number still in the chain (1 when nothing was pruned)."""
    return int(conn.execute(select(func.min(audit_log.c.n))).scalar() or 1)


def prune_limit(conn: Connection, before_at: str, keep_targets: set[str]) -> int:
    """The first entry that must stay: the oldest one not past the period, the oldest about a held item,
    and never beyond the head (the newest entry anchors the chain and its checkpoints)."""
    head = int(conn.execute(select(audit_head.c.count).where(audit_head.c.id == 1)).scalar() or 0)
    stops = [head]
    young = conn.execute(select(func.min(audit_log.c.n)).where(audit_log.c.at >= before_at)).scalar()
    if young is not None:
        stops.append(int(young))
    if keep_targets:
        held = conn.execute(
            select(func.min(audit_log.c.n)).where(audit_log.c.target.in_(sorted(keep_targets)))
        ).scalar()
        if held is not None:
            stops.append(int(held))
    return max(1, min(stops))


def count_prunable(conn: Connection, before_at: str, keep_targets: set[str]) -> tuple[int, int]:
    """Entries past the period (held or not), and entries a prune would remove now (a prefix)."""
    older = int(
        conn.execute(
            select(func.count()).select_from(audit_log).where(audit_log.c.at < before_at)
        ).scalar_one()
    )
    return older, max(0, prune_limit(conn, before_at, keep_targets) - first_kept(conn))


def prune_chunk(conn: Connection, secret_key: str, stop: int, limit: int) -> int:
    """Remove up to `limit` of the oldest entries below `stop` in the caller's transaction, moving the
    signed base to the first entry kept; returns how many went."""
    first = first_kept(conn)
    upto = min(first + limit, stop)
    if upto <= first:
        return 0
    prev = conn.execute(select(audit_log.c.hash).where(audit_log.c.n == upto - 1)).scalar()
    if prev is None:
        raise ValueError(f"audit entry {upto - 1} is missing: the chain is broken, not pruned")
    values = {
        "first_n": upto,
        "prev_hash": str(prev),
        "mac": base_mac(secret_key, upto, str(prev)),
        "at": iso(utcnow()),
    }
    if not conn.execute(update(audit_base).where(audit_base.c.id == 1).values(**values)).rowcount:
        conn.execute(audit_base.insert().values(id=1, **values))
    conn.execute(delete(audit_scope).where(audit_scope.c.n < upto))
    gone = conn.execute(delete(audit_log).where(audit_log.c.n < upto)).rowcount
    return int(gone)
