"""One retention run: a dry run's counts, or chunked deletes recorded in a run ledger and the audit log."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from server.audit_checkpoint import take_checkpoint, verify_with_checkpoints
from server.audit_prune import count_prunable, prune_chunk, prune_limit
from server.db import Database, iso, serialise_writers, utcnow
from server.errors import RetentionBusy
from server.legal_holds import HOLD_LOCK, HeldSet, held_set
from server.retention import (
    Cutoff,
    RowDeleter,
    Step,
    check_classes,
    count_due,
    count_older,
    cutoffs,
    steps_of,
)
from server.retention_partitions import drop_partition, due_partitions
from server.schema import retention_runs
from server.scope import record
from server.settings import ServerSettings

log = logging.getLogger(__name__)

# Taken while a run is claimed or finished (PostgreSQL), so two processes never both start one.
RUN_LOCK = 7_482_021
LEASE = timedelta(minutes=15)
AUDIT = "audit_log"


@dataclass
class RetentionReport:
    """Per class: its period, cut-off, rows past it, rows deleted (or that would be), rows kept anyway."""

    dry_run: bool
    at: str
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_id: int | None = None
    finished_interrupted: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "at": self.at,
            "run_id": self.run_id,
            "classes": self.classes,
            "finished_interrupted_runs": self.finished_interrupted,
            "problems": self.problems,
        }

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        lines = [f"retention {'dry run' if self.dry_run else f'run {self.run_id}'} at {self.at}"]
        for name, c in self.classes.items():
            parts = ", ".join(f"{k} {v}" for k, v in c.get("parts", {}).items())
            lines.append(
                f"  {name:<15} keep {c['days']:>5} days: {c['older']} older, {verb} {c['deleted']},"
                f" kept {c['kept']} (held or still needed)" + (f" [{parts}]" if parts else "")
            )
        lines += [f"  finished interrupted run {r}" for r in self.finished_interrupted]
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


def _entry(days: int, cut: Cutoff) -> dict[str, Any]:
    return {"days": days, "cutoff": cut.at, "older": 0, "deleted": 0, "kept": 0}


def _count(conn: Connection, steps: list[Step], cuts: dict[str, Cutoff], report: RetentionReport) -> None:
    """Fill `older` and `kept` for every class in the report (and `deleted` for a dry run)."""
    held = held_set(conn)
    for step in steps:
        entry = report.classes[step.cls]
        older = count_older(conn, step, cuts[step.cls])
        due = count_due(conn, step, cuts[step.cls], held) if report.dry_run else 0
        entry["older"] += older
        entry["kept"] += older - due
        if report.dry_run:
            entry["deleted"] += due
            entry.setdefault("parts", {})[step.name] = due
    if AUDIT in report.classes:
        older, due = count_prunable(conn, cuts[AUDIT].at, held.audit_targets)
        entry = report.classes[AUDIT]
        entry["older"] = older
        entry["kept"] = older - due if report.dry_run else older
        if report.dry_run:
            entry["deleted"] = due


def plan_retention(
    db: Database, settings: ServerSettings, now: datetime, classes: list[str] | None = None
) -> RetentionReport:
    """What a run would delete now, per class; reads only (a dry run changes nothing)."""
    names = check_classes(classes)
    cuts = cutoffs(settings.retention, now)
    report = RetentionReport(True, iso(now), {n: _entry(cuts[n].days, cuts[n]) for n in names})
    with db.read() as conn:
        _count(conn, steps_of(names), cuts, report)
    return report


def _audit_run(
    conn: Connection, secret: str, actor: str, run_id: int, counts: dict[str, Any], **extra: Any
) -> None:
    """One audit entry per class with what the run deleted."""
    for name, entry in counts.items():
        detail = {"run": run_id, **entry, **extra}
        record(conn, secret, actor, "retention_delete", f"retention:{name}", ["*"], detail)


def _claim_run(
    conn: Connection,
    secret: str,
    actor: str,
    cuts: dict[str, Cutoff],
    names: list[str],
    clock: Callable[[], datetime],
) -> tuple[int, list[int]]:
    """Finish runs whose lease ran out (audited as interrupted), refuse while one is live, start ours."""
    serialise_writers(conn, RUN_LOCK)
    now = iso(clock())
    finished: list[int] = []
    for run in conn.execute(select(retention_runs).where(retention_runs.c.state == "running")).fetchall():
        if run.lease_until > now:
            raise RetentionBusy(
                f"retention run {run.id} ({run.actor}) is in progress until {run.lease_until}"
            )
        _audit_run(conn, secret, actor, int(run.id), json.loads(run.counts), interrupted=True)
        conn.execute(
            update(retention_runs)
            .where(retention_runs.c.id == run.id)
            .values(state="interrupted", finished_at=now)
        )
        finished.append(int(run.id))
    counts = {n: {"days": cuts[n].days, "cutoff": cuts[n].at, "deleted": 0} for n in names}
    run_id_key = conn.execute(
        retention_runs.insert().values(
            actor=actor[:64],
            state="running",
            started_at=now,
            lease_until=iso(clock() + LEASE),
            cutoffs=json.dumps({n: cuts[n].at for n in names}),
            counts=json.dumps(counts),
        )
    ).inserted_primary_key
    assert run_id_key is not None
    run_id = run_id_key[0]
    return int(run_id), finished


def _note(conn: Connection, run_id: int, name: str, part: str, n: int, clock: Callable[[], datetime]) -> None:
    """Add a chunk's deletions to the ledger in the chunk's own transaction and renew the lease."""
    counts = json.loads(
        conn.execute(select(retention_runs.c.counts).where(retention_runs.c.id == run_id)).scalar_one()
    )
    counts[name]["deleted"] += n
    parts = counts[name].setdefault("parts", {})
    parts[part] = parts.get(part, 0) + n
    conn.execute(
        update(retention_runs)
        .where(retention_runs.c.id == run_id)
        .values(counts=json.dumps(counts), lease_until=iso(clock() + LEASE))
    )


def _chunked(
    db: Database,
    run_id: int,
    name: str,
    part: str,
    clock: Callable[[], datetime],
    work: Callable[[Connection, HeldSet], int],
) -> None:
    while True:
        with db.write() as conn:
            # The hold lock first: holds placed meanwhile are either seen here or wait for this commit.
            serialise_writers(conn, HOLD_LOCK)
            n = work(conn, held_set(conn))
            if n:
                _note(conn, run_id, name, part, n, clock)
        if not n:
            return


def _prune_audit(
    db: Database,
    settings: ServerSettings,
    run_id: int,
    cut: Cutoff,
    clock: Callable[[], datetime],
    report: RetentionReport,
) -> None:
    secret = settings.secret_key.get_secret_value()
    with db.read() as conn:
        _, due = count_prunable(conn, cut.at, held_set(conn).audit_targets)
    if not due:
        return
    # Never prune a chain that does not verify: the entries to go may be the evidence of tampering.
    folder = settings.audit.checkpoint_dir
    check = verify_with_checkpoints(db, secret, folder)
    if not check.ok:
        report.problems.append(
            "audit log not pruned, its chain does not verify: " + "; ".join(check.problems)
        )
        return
    if folder is not None:
        take_checkpoint(db, secret, folder)  # the head as it stands before pruning, outside the database
    chunk = settings.retention.chunk_rows
    _chunked(
        db, run_id, AUDIT, "entries", clock,
        lambda conn, held: prune_chunk(conn, secret, prune_limit(conn, cut.at, held.audit_targets), chunk),
    )  # fmt: skip


def _drop_partitions(
    db: Database, run_id: int, cuts: dict[str, Cutoff], names: list[str], clock: Callable[[], datetime]
) -> None:
    """PostgreSQL with partitioned events: whole days go first, one partition per transaction; what
    must stay keeps its partition, whose other rows the row deletes then remove."""
    if not db.is_postgres:
        return
    with db.read() as conn:
        due = due_partitions(conn, cuts, names)
    for partition in due:
        with db.write() as conn:
            serialise_writers(conn, HOLD_LOCK)
            for name, n in (drop_partition(conn, partition, held_set(conn)) or {}).items():
                _note(conn, run_id, name, "partitions", n, clock)


def apply_retention(
    db: Database,
    settings: ServerSettings,
    actor: str,
    classes: list[str] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> RetentionReport:
    """Delete what is past its period, class by class, in chunks; each chunk commits with its count in
    the run ledger, so an interrupted run loses nothing and the next run audits what it did."""
    names = check_classes(classes)
    now = clock()
    cuts = cutoffs(settings.retention, now)
    secret = settings.secret_key.get_secret_value()
    with db.write() as conn:
        run_id, finished = _claim_run(conn, secret, actor, cuts, names, clock)
    report = RetentionReport(
        False, iso(now), {n: _entry(cuts[n].days, cuts[n]) for n in names}, run_id, finished
    )
    chunk = settings.retention.chunk_rows
    _drop_partitions(db, run_id, cuts, names, clock)
    for step in steps_of(names):
        cut = cuts[step.cls]
        _chunked(db, run_id, step.cls, step.name, clock, RowDeleter(step, cut, chunk))
    if AUDIT in names:
        _prune_audit(db, settings, run_id, cuts[AUDIT], clock, report)
    with db.write() as conn:
        serialise_writers(conn, RUN_LOCK)
        counts = json.loads(
            conn.execute(select(retention_runs.c.counts).where(retention_runs.c.id == run_id)).scalar_one()
        )
        _count(conn, steps_of(names), cuts, report)
        for name, entry in counts.items():
            report.classes[name]["deleted"] = entry["deleted"]
            report.classes[name]["parts"] = entry.get("parts", {})
            entry["kept"] = report.classes[name]["kept"]
        _audit_run(
            conn, secret, actor, run_id, counts, **({"problems": report.problems} if report.problems else {})
        )
        conn.execute(
            update(retention_runs)
            .where(retention_runs.c.id == run_id)
            .values(state="done", finished_at=iso(clock()), counts=json.dumps(counts))
        )
    log.info("retention run %d: %s", run_id, {n: c["deleted"] for n, c in report.classes.items()})
    return report
