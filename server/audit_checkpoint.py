"""Signed checkpoints of the audit chain's head, kept outside the database.

The chain's keyed hashes show an edited or removed entry in the middle, but someone who can write
the database can delete the newest entries and lower `audit_head` to match: what is left is a
valid, shorter chain. A checkpoint records, at some moment, how many entries there were and the
hash of the last one, signed with a key derived from the server's secret key and written to a
folder the database cannot reach. Verification then checks the chain still holds that entry with
that hash: a cut tail, or a tail cut and written again, shows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError

from server.audit import GENESIS, AuditReport, verify_audit
from server.db import Database, iso, utcnow
from server.periodic import Periodic
from server.schema import audit_base, audit_head, audit_log

log = logging.getLogger(__name__)

FILE_PATTERN = re.compile(r"audit-checkpoint-(\d{12})\.json")
FORMAT = "parcelguard-audit-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint cannot be read, is not signed by this server, or would anchor a broken chain."""


@dataclass(frozen=True)
class Checkpoint:
    """The chain's length and the hash of its last entry at one moment."""

    count: int
    head_hash: str
    at: str

    def describe(self) -> str:
        return f"checkpoint of {self.at} ({self.count} entries)"


def _key(secret_key: str) -> bytes:
    # A key of its own: a checkpoint signature is never a valid chain hash, nor the reverse.
    return hashlib.sha256(b"parcelguard-audit-checkpoint:" + secret_key.encode()).digest()


def _mac(secret_key: str, cp: Checkpoint) -> str:
    msg = json.dumps([FORMAT, cp.count, cp.head_hash, cp.at], separators=(",", ":"))
    return hmac.new(_key(secret_key), msg.encode(), hashlib.sha256).hexdigest()


def dump_checkpoint(secret_key: str, cp: Checkpoint) -> str:
    data = {"format": FORMAT, "count": cp.count, "head_hash": cp.head_hash, "at": cp.at}
    return json.dumps({**data, "mac": _mac(secret_key, cp)}, indent=1) + "\n"


def parse_checkpoint(secret_key: str, text: str, source: str) -> Checkpoint:
    """Read and check one checkpoint; raises CheckpointError naming `source` when it is not ours."""
    try:
        data: Any = json.loads(text)
        cp = Checkpoint(int(data["count"]), str(data["head_hash"]), str(data["at"]))
        mac = str(data["mac"])
        fmt = data.get("format")
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{source}: not an audit checkpoint ({exc})") from exc
    if fmt != FORMAT or cp.count < 0 or not hmac.compare_digest(mac, _mac(secret_key, cp)):
        raise CheckpointError(f"{source}: signature does not match this server's key")
    return cp


def read_checkpoint_file(secret_key: str, path: Path) -> Checkpoint:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path}: not an audit checkpoint (not UTF-8)") from exc
    return parse_checkpoint(secret_key, text, str(path))


def write_checkpoint_file(secret_key: str, cp: Checkpoint, path: Path) -> Path:
    """Write atomically: a reader sees the old checkpoint or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    with partial.open("w", encoding="utf-8") as fh:
        fh.write(dump_checkpoint(secret_key, cp))
        fh.flush()
        os.fsync(fh.fileno())
    partial.replace(path)
    return path


def latest_checkpoint(secret_key: str, directory: Path) -> tuple[Checkpoint | None, list[str]]:
    """The checkpoint with the most entries in `directory`, and a problem for every file there that
    looks like a checkpoint but is not a valid one of this server (a forgery, or damage)."""
    best: Checkpoint | None = None
    problems: list[str] = []
    if not directory.is_dir():
        return None, problems
    for path in sorted(directory.iterdir()):
        if not FILE_PATTERN.fullmatch(path.name):
            continue
        try:
            cp = read_checkpoint_file(secret_key, path)
        except (CheckpointError, OSError) as exc:
            problems.append(f"audit checkpoint {exc}")
            continue
        if best is None or cp.count > best.count:
            best = cp
    return best, problems


def current_head(conn: Connection) -> Checkpoint:
    """The chain's length and last hash now, as recorded by `audit_head`."""
    count = int(conn.execute(select(audit_head.c.count).where(audit_head.c.id == 1)).scalar() or 0)
    if count == 0:
        return Checkpoint(0, GENESIS, iso(utcnow()))
    head = conn.execute(select(audit_log.c.hash).where(audit_log.c.n == count)).scalar()
    if head is None:
        raise CheckpointError(f"audit head says {count} entries but entry {count} is missing")
    return Checkpoint(count, str(head), iso(utcnow()))


def compare_with_checkpoint(conn: Connection, cp: Checkpoint) -> list[str]:
    """Problems when the chain no longer holds the checkpointed entry with the checkpointed hash."""
    if cp.count == 0:
        return []
    stored = conn.execute(select(audit_log.c.hash).where(audit_log.c.n == cp.count)).scalar()
    if stored is None:
        first = conn.execute(select(audit_base.c.first_n).where(audit_base.c.id == 1)).scalar()
        if first is not None and cp.count < int(first):
            return []  # pruned by retention; verify_audit checks the signed start it left
        have = conn.execute(select(audit_log.c.n).order_by(audit_log.c.n.desc()).limit(1)).scalar() or 0
        return [f"chain ends at entry {have} but the {cp.describe()} recorded more: the tail was cut"]
    if not hmac.compare_digest(str(stored), cp.head_hash):
        return [f"entry {cp.count} differs from the {cp.describe()}: the tail was cut and written again"]
    return []


def checkpoint_path(directory: Path, cp: Checkpoint) -> Path:
    return directory / f"audit-checkpoint-{cp.count:012d}.json"


def take_checkpoint(db: Database, secret_key: str, directory: Path) -> Checkpoint:
    """Checkpoint the head as it is now into `directory`; refused (CheckpointError) when the chain
    contradicts the latest checkpoint there, so that a cut chain is never anchored."""
    # Checkpoints are read before the database: each was taken from entries committed before it
    # was written, so the read below sees them all (no false "cut" from an older snapshot).
    latest, problems = latest_checkpoint(secret_key, directory)
    with db.read() as conn:
        if latest is not None:
            problems += compare_with_checkpoint(conn, latest)
        cp = current_head(conn)
    if problems:
        raise CheckpointError("; ".join(problems))
    if latest is None or (latest.count, latest.head_hash) != (cp.count, cp.head_hash):
        write_checkpoint_file(secret_key, cp, checkpoint_path(directory, cp))
    return cp


def verify_with_checkpoints(
    db: Database, secret_key: str, directory: Path | None, files: Sequence[Path] = ()
) -> AuditReport:
    """Walk the chain and hold it against the latest checkpoint in `directory` and any exported
    checkpoint `files`: fewer entries, or another hash at a checkpointed entry, is a problem."""
    anchors: list[Checkpoint] = []
    problems: list[str] = []
    if directory is not None:
        latest, problems = latest_checkpoint(secret_key, directory)
        if latest is not None:
            anchors.append(latest)
    for path in files:
        anchors.append(read_checkpoint_file(secret_key, path))  # a bad file given by hand: an error
    with db.read() as conn:
        report = verify_audit(conn, secret_key)
        for anchor in anchors:
            problems += compare_with_checkpoint(conn, anchor)
    checked = ", ".join(a.describe() for a in anchors) or "no checkpoint"
    return AuditReport(report.entries, report.problems + problems, checked)


class CheckpointWorker:
    """A thread that checkpoints the chain's head every `interval_s`, and once more when stopped."""

    def __init__(self, db: Database, secret_key: str, directory: Path, interval_s: float) -> None:
        self.db = db
        self.secret_key = secret_key
        self.directory = directory
        self.interval_s = interval_s
        self._timer = Periodic("audit-checkpoint", self.run_once, interval_s, interval_s)
        self._refused = ""

    def run_once(self) -> Checkpoint | None:
        """One checkpoint; a refusal or a failure is logged (once while it lasts) and returns None."""
        try:
            cp = take_checkpoint(self.db, self.secret_key, self.directory)
        except CheckpointError as exc:
            if str(exc) != self._refused:
                log.error("audit checkpoint refused: %s", exc)
            self._refused = str(exc)
            return None
        except (OSError, SQLAlchemyError) as exc:
            log.warning("audit checkpoint failed, will retry: %s", exc)
            return None
        self._refused = ""
        return cp

    def start(self) -> None:
        self.run_once()  # at once, so a server that runs only briefly still leaves one
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop(timeout_s=10)
        self.run_once()
