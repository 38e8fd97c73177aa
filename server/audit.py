"""Append-only audit log: each row's keyed hash covers the previous one, so edits and deletions show."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, update

from server.db import iso, utcnow
from server.schema import audit_base, audit_head, audit_log

GENESIS = "0" * 64


def _chain_key(secret_key: str) -> bytes:
    return hashlib.sha256(b"parcelguard-audit:" + secret_key.encode()).digest()


def row_hash(
    key: bytes, n: int, at: str, actor: str, action: str, target: str, detail: str, prev: str
) -> str:
    msg = json.dumps([n, at, actor, action, target, detail, prev], ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()


def append_audit(
    conn: Connection,
    secret_key: str,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one entry inside the caller's transaction; returns its number in the chain."""
    return append_audits(conn, secret_key, actor, action, [(target, detail)])[0]


def append_audits(
    conn: Connection,
    secret_key: str,
    actor: str,
    action: str,
    entries: list[tuple[str, dict[str, Any] | None]],
) -> list[int]:
    """Append one entry per (target, detail), in order, in four statements whatever their number;
    returns their numbers in the chain."""
    if not entries:
        return []
    # Bumping the head row first serialises concurrent writers on both engines (row lock / write lock).
    k = len(entries)
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(count=audit_head.c.count + k))
    last = int(conn.execute(select(audit_head.c.count).where(audit_head.c.id == 1)).scalar_one())
    first = last - k + 1
    prev = conn.execute(select(audit_log.c.hash).where(audit_log.c.n == first - 1)).scalar() or GENESIS
    at = iso(utcnow())
    actor = actor[:64]  # column widths; ids are shorter in practice
    key = _chain_key(secret_key)
    rows: list[dict[str, Any]] = []
    for n, (target, detail) in enumerate(entries, start=first):
        target = target[:200]
        body = json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, default=str)
        digest = row_hash(key, n, at, actor, action, target, body, prev)
        rows.append(
            {"n": n, "at": at, "actor": actor, "action": action, "target": target, "detail": body,
             "prev_hash": prev, "hash": digest}
        )  # fmt: skip
        prev = digest
    conn.execute(audit_log.insert(), rows)
    return list(range(first, last + 1))


def _base_key(secret_key: str) -> bytes:
    # A key of its own: a base's signature is never a valid chain hash or checkpoint signature.
    return hashlib.sha256(b"parcelguard-audit-base:" + secret_key.encode()).digest()


def base_mac(secret_key: str, first_n: int, prev_hash: str) -> str:
    """Signature of the chain's start after pruning: entry `first_n` follows `prev_hash`."""
    msg = json.dumps(["audit-base/1", first_n, prev_hash], separators=(",", ":"))
    return hmac.new(_base_key(secret_key), msg.encode(), hashlib.sha256).hexdigest()


def chain_base(conn: Connection, secret_key: str) -> tuple[int, str, list[str]]:
    """Where the chain starts (first entry, the hash it follows) and problems with that start.

    Unpruned, the chain starts at entry 1 after GENESIS. A start whose signature does not match is
    ignored (the walk then expects entry 1, so the removed entries show as missing).
    """
    row = conn.execute(select(audit_base).where(audit_base.c.id == 1)).first()
    if row is None:
        return 1, GENESIS, []
    first_n, prev = int(row.first_n), str(row.prev_hash)
    if not hmac.compare_digest(str(row.mac), base_mac(secret_key, first_n, prev)):
        return 1, GENESIS, [f"the chain's recorded start (entry {first_n}) is not signed by this server"]
    return first_n, prev, []


@dataclass(frozen=True)
class AuditReport:
    """Outcome of a chain check: entries checked and every problem found (empty when intact), and
    which checkpoints outside the database the chain was held against."""

    entries: int
    problems: list[str]
    checked_against: str = "no checkpoint"

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_audit(conn: Connection, secret_key: str) -> AuditReport:
    """Walk the chain from its first kept entry; report gaps, reordered, edited or missing rows."""
    key = _chain_key(secret_key)
    # Retention prunes the oldest entries: the walk starts at the signed base they left behind.
    expected_n, prev, problems = chain_base(conn, secret_key)
    rows = conn.execute(select(audit_log).order_by(audit_log.c.n)).mappings()
    for row in rows:
        n = int(row["n"])
        if n != expected_n:
            problems.append(f"entry {expected_n}: missing (next entry is {n})")
        if row["prev_hash"] != prev:
            problems.append(f"entry {n}: does not follow the entry before it")
        digest = row_hash(
            key, n, row["at"], row["actor"], row["action"], row["target"], row["detail"], row["prev_hash"]
        )
        if not hmac.compare_digest(digest, row["hash"]):
            problems.append(f"entry {n}: content was changed")
        prev = row["hash"]
        expected_n = n + 1
    head = conn.execute(select(audit_head.c.count).where(audit_head.c.id == 1)).scalar()
    if head is not None and int(head) != expected_n - 1:
        problems.append(f"chain ends at entry {expected_n - 1} but {head} were written: entries deleted")
    total = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
    return AuditReport(entries=int(total), problems=problems)
