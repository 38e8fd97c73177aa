"""The station's local SQLite database (sqlite-utils, WAL): events, outbox, registry copy, orders."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils
from pydantic import TypeAdapter

from edge.disk_reserve import DiskReserve
from edge.errors import StoreError
from edge.store_checkpoints import Checkpointer
from edge.store_copies import ServerCopies
from edge.wire import Event

log = logging.getLogger(__name__)

T = TypeVar("T")
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    key TEXT PRIMARY KEY, seq INTEGER NOT NULL, type TEXT NOT NULL, at TEXT NOT NULL,
    tracking_id TEXT, waybill TEXT, decision TEXT, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_seq ON events(seq);
CREATE INDEX IF NOT EXISTS events_tracking ON events(tracking_id);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, body TEXT NOT NULL,
    images TEXT NOT NULL DEFAULT '[]', attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE IF NOT EXISTS dead_letter (
    key TEXT PRIMARY KEY, body TEXT NOT NULL, error TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY, kind TEXT NOT NULL, content_type TEXT NOT NULL, data BLOB NOT NULL,
    stored_at TEXT);
CREATE TABLE IF NOT EXISTS senders (
    sender_token TEXT PRIMARY KEY, id_masked TEXT NOT NULL, name_masked TEXT NOT NULL,
    phone_token TEXT, verified INTEGER NOT NULL, agreement_customer INTEGER NOT NULL,
    address_token TEXT);
CREATE TABLE IF NOT EXISTS manifests (
    waybill TEXT PRIMARY KEY, sender_token TEXT NOT NULL, declared_name TEXT NOT NULL,
    declared_category TEXT NOT NULL, quantity INTEGER NOT NULL, inspected_on_receipt INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS watchlist (
    entry_id TEXT PRIMARY KEY, list TEXT NOT NULL, kind TEXT NOT NULL, token TEXT NOT NULL,
    reason TEXT NOT NULL, expires_at TEXT, active INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS watchlist_token ON watchlist(token);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, scope TEXT NOT NULL, waybill TEXT,
    sender_token TEXT, reason TEXT NOT NULL, issuer TEXT NOT NULL, site_id TEXT,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL, state TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_waybill ON orders(waybill);
CREATE INDEX IF NOT EXISTS orders_sender ON orders(sender_token);
CREATE TABLE IF NOT EXISTS divert_intents (
    tracking_id TEXT PRIMARY KEY, event_key TEXT NOT NULL, waybill TEXT, sorter_id TEXT,
    decision TEXT NOT NULL, chute TEXT, order_ids TEXT NOT NULL DEFAULT '[]');
"""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    key: str
    body: str
    images: tuple[str, ...]
    attempts: int


@dataclass(frozen=True)
class ImageBlob:
    sha256: str
    kind: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class DivertIntent:
    """A divert decided and recorded but whose outcome is not recorded yet."""

    tracking_id: str
    event_key: str
    waybill: str | None
    sorter_id: str | None
    decision: str
    chute: str | None
    order_ids: tuple[str, ...] = ()


# Writer priorities: the parcel path goes ahead of sync bookkeeping and registry copies.
URGENT, NORMAL, LAST = 0, 1, 2
Job = tuple[int, int, Callable[[sqlite_utils.Database], Any] | None, Future[Any] | None]


def _wrap(exc: sqlite3.Error) -> StoreError:
    return StoreError(f"local database write failed: {exc}")


def _insert_events(db: sqlite_utils.Database, evs: Sequence[Event], upload: Sequence[str] = ()) -> None:
    """Events and their outbox rows, inside the caller's transaction; `upload` goes with parcel events.

    An event already stored (a retry of a write that did land) is skipped with its outbox row:
    writing a record again is harmless, so a record kept in memory can always be retried.
    """
    for ev in evs:
        body = ev.model_dump_json()
        cur = db.execute(
            "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?)",
            [
                ev.key,
                ev.seq,
                ev.type,
                ev.at.isoformat(),
                getattr(ev, "tracking_id", None),
                getattr(ev, "waybill", None),
                getattr(ev, "decision", None),
                body,
            ],
        )
        if not cur.rowcount:
            row = db.execute("SELECT body FROM events WHERE key = ?", [ev.key]).fetchone()
            if row is None or row[0] != body:
                raise sqlite3.IntegrityError(f"event {ev.key} is already stored with another body")
            continue
        ups = list(upload) if ev.type == "parcel" else []
        db.execute(
            "INSERT INTO outbox (seq, key, body, images) VALUES (?,?,?,?)",
            [ev.seq, ev.key, body, json.dumps(ups)],
        )
    if evs:
        top = max(e.seq for e in evs)
        db.execute(
            "INSERT INTO meta VALUES ('seq', ?) ON CONFLICT(key) DO UPDATE SET value ="
            " MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            [str(top)],
        )


def is_disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc).lower()


class EdgeStore(ServerCopies):
    """One writer thread owns all writes; readers use their own connection (WAL lets both run)."""

    def __init__(
        self, path: Path, reserve_bytes: int = 0, on_disk: Callable[[bool, str], None] | None = None
    ) -> None:
        self.path = path
        # Space held back for the records of a full disk (see DiskReserve).
        self.reserve = DiskReserve(path.with_name(path.name + ".reserve"), reserve_bytes, on_disk)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._wconn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db = sqlite_utils.Database(self._wconn)
            self._db.enable_wal()
            self._wconn.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints run on their own thread (below), never inside a parcel's commit: copying
            # the log back into the database can take longer than a parcel may wait.
            self._wconn.execute("PRAGMA wal_autocheckpoint=0")
            self._wconn.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            self._upgrade()
            row = self._wconn.execute(
                "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0),"
                " COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'seq'), 0))"
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open local database {path}: {exc}") from exc
        # Readers (parcel worker, sync, order poll, terminal) each get their own connection:
        # the writer's connection is the writer thread's alone.
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._order = itertools.count()
        self._jobs: queue.PriorityQueue[Job] = queue.PriorityQueue()
        self._seq_lock = threading.Lock()
        self._seq = int(row[0])
        self.reserve.restore()
        self._writer = threading.Thread(target=self._write_loop, name="edge-store-writer", daemon=True)
        self._writer.start()
        self._checkpoints = Checkpointer(path)

    def _upgrade(self) -> None:
        """Bring a database made by an earlier release up to this schema (columns only ever added)."""
        added = [
            ("senders", "address_token", "TEXT"),
            ("images", "stored_at", "TEXT"),
            # Sender risk, qualification and credit code token from the server (feature sender-risk).
            ("senders", "risk", "REAL"),
            ("senders", "qualified", "INTEGER"),
            ("senders", "customer_token", "TEXT"),
        ]
        for table, column, kind in added:
            cols = {r[1] for r in self._wconn.execute(f"PRAGMA table_info({table})")}
            if column not in cols:
                self._wconn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    # -- writer thread -------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            _prio, _n, fn, fut = self._jobs.get()
            if fn is None or fut is None:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = self._run_job(fn)
            except sqlite3.Error as exc:
                fut.set_exception(_wrap(exc))
            except BaseException as exc:  # handed to the caller, who decides
                fut.set_exception(exc)
            else:
                fut.set_result(result)
                self.reserve.restore_when_due()

    def _run_job(self, fn: Callable[[sqlite_utils.Database], Any]) -> Any:
        try:
            with self._db.atomic():
                return fn(self._db)
        except sqlite3.OperationalError as exc:
            # The disk is full: give the reserve back to the file system and write once more, so
            # that what is being recorded now reaches the disk (and survives a kill) at once.
            if not is_disk_full(exc) or not self.reserve.release(str(exc)):
                raise
        with self._db.atomic():
            return fn(self._db)

    def write(
        self, fn: Callable[[sqlite_utils.Database], T], timeout: float = 30.0, urgent: bool = False
    ) -> T:
        """Run `fn` in one transaction on the writer thread and wait for it (urgent jobs go first)."""
        fut: Future[T] = Future()
        self._jobs.put((URGENT if urgent else NORMAL, next(self._order), fn, fut))
        try:
            return fut.result(timeout)
        except TimeoutError as exc:
            raise StoreError(f"local database write did not finish within {timeout} s") from exc

    @property
    def writable(self) -> bool:
        """The writer thread runs and the disk reserve is held (a released one means the disk is full)."""
        return self._writer.is_alive() and (self.reserve.size <= 0 or self.reserve.held)

    def close(self) -> None:
        self._checkpoints.stop()
        # Queued last: every write already asked for is done first.
        self._jobs.put((LAST, next(self._order), None, None))
        self._writer.join(10)
        with contextlib.suppress(sqlite3.Error):
            # The log goes back into the database at a clean stop (a kill leaves it for the next start).
            self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._wconn.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()

    # -- reads ---------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # check_same_thread off only so that close() may close it; one thread uses it.
                conn = sqlite3.connect(str(self.path), check_same_thread=False)
                conn.execute("PRAGMA busy_timeout=5000")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open local database {self.path} for reading: {exc}") from exc
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._reader().execute(sql, params).fetchall())

    def get_meta(self, key: str, default: str) -> str:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else default

    # -- sequence and boots ----------------------------------------------------------------------

    def allocate_seq(self) -> int:
        with self._seq_lock:
            self._seq += 1
            return self._seq

    def stamp(self, station_id: str, boot_id: str, at: datetime) -> dict[str, Any]:
        """The envelope of a new event: idempotency key `station:boot:seq`, sequence and time."""
        seq = self.allocate_seq()
        return {
            "key": f"{station_id}:{boot_id}:{seq}",
            "station_id": station_id,
            "boot_id": boot_id,
            "seq": seq,
            "at": at,
        }

    def start_boot(self) -> int:
        """Count one more boot of the station; the boot id is part of every idempotency key."""

        def bump(db: sqlite_utils.Database) -> int:
            row = db.execute("SELECT value FROM meta WHERE key = 'boot'").fetchone()
            boot = int(row[0] if row else 0) + 1
            db.execute("INSERT OR REPLACE INTO meta VALUES ('boot', ?)", [str(boot)])
            return boot

        return self.write(bump)

    # -- events and outbox -----------------------------------------------------------------------

    def append_events(
        self,
        events: Iterable[Event],
        images: Iterable[ImageBlob] = (),
        order_states: Iterable[tuple[str, str]] = (),
        upload: Sequence[str] = (),
        intents: Iterable[DivertIntent] = (),
        settled: Iterable[str] = (),
        urgent: bool = False,
    ) -> None:
        """Events, their outbox rows, held images, order states and divert intents in one transaction.

        `intents` are diverts about to be sent (recorded before they are); `settled` are the
        tracking ids whose divert outcome these events record.
        """
        evs = list(events)
        imgs = list(images)
        states = list(order_states)
        new_intents = list(intents)
        done = list(settled)

        def tx(db: sqlite_utils.Database) -> None:
            _insert_events(db, evs, upload)
            for img in imgs:
                db.execute(
                    "INSERT OR IGNORE INTO images (sha256, kind, content_type, data, stored_at)"
                    " VALUES (?,?,?,?,?)",
                    [img.sha256, img.kind, img.content_type, img.data, utc_now().isoformat()],
                )
            for order_id, state in states:
                db.execute("UPDATE orders SET state = ? WHERE order_id = ?", [state, order_id])
            for it in new_intents:
                db.execute(
                    "INSERT OR REPLACE INTO divert_intents VALUES (?,?,?,?,?,?,?)",
                    [
                        it.tracking_id,
                        it.event_key,
                        it.waybill,
                        it.sorter_id,
                        it.decision,
                        it.chute,
                        json.dumps(list(it.order_ids)),
                    ],
                )
            db.conn.executemany("DELETE FROM divert_intents WHERE tracking_id = ?", [(t,) for t in done])

        self.write(tx, urgent=urgent)

    def open_intents(self) -> list[DivertIntent]:
        """Diverts recorded as intended whose outcome never was (the station stopped in between)."""
        rows = self.query(
            "SELECT tracking_id, event_key, waybill, sorter_id, decision, chute, order_ids"
            " FROM divert_intents ORDER BY rowid"
        )
        return [DivertIntent(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6]))) for r in rows]

    def pending_outbox(self, limit: int) -> list[OutboxRow]:
        rows = self.query(
            "SELECT seq, key, body, images, attempts FROM outbox ORDER BY seq LIMIT ?", (limit,)
        )
        return [OutboxRow(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4]) for r in rows]

    def outbox_size(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM outbox")[0][0])

    def ack_outbox(self, keys: Sequence[str]) -> None:
        def tx(db: sqlite_utils.Database) -> None:
            db.conn.executemany("DELETE FROM outbox WHERE key = ?", [(k,) for k in keys])

        self.write(tx)

    def note_failure(self, keys: Sequence[str], error: str) -> None:
        def tx(db: sqlite_utils.Database) -> None:
            db.conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE key = ?",
                [(error[:500], k) for k in keys],
            )

        self.write(tx)

    def move_to_dead_letter(self, key: str, error: str) -> None:
        """Park an event the server refuses for good, so the queue behind it keeps moving."""

        def tx(db: sqlite_utils.Database) -> None:
            row = db.execute("SELECT body FROM outbox WHERE key = ?", [key]).fetchone()
            if row is None:
                return
            db.execute(
                "INSERT OR REPLACE INTO dead_letter VALUES (?,?,?,?)",
                [key, row[0], error[:2000], utc_now().isoformat()],
            )
            db.execute("DELETE FROM outbox WHERE key = ?", [key])

        self.write(tx)

    def purge_images(self, before: datetime) -> int:
        """Drop held images stored before `before` whose events have left the outbox; returns the count.

        An image still waiting to be uploaded is never dropped, however old.
        """

        def tx(db: sqlite_utils.Database) -> int:
            cur = db.execute(
                "DELETE FROM images WHERE stored_at < ? AND sha256 NOT IN"
                " (SELECT j.value FROM outbox, json_each(outbox.images) AS j)",
                [before.isoformat()],
            )
            return int(cur.rowcount)

        return self.write(tx)

    def purge_events(self, before: datetime, chunk: int = 2000) -> int:
        """Drop events from before `before` that the server confirmed; returns the count.

        Confirmed means gone from the outbox: an event still waiting there, parked in the dead letter
        (the server refused it) or behind a divert whose outcome is not recorded yet is never dropped.
        Chunks keep each write short: the parcel path waits for no purge.
        """

        def tx(db: sqlite_utils.Database) -> int:
            cur = db.execute(
                "DELETE FROM events WHERE rowid IN (SELECT e.rowid FROM events e WHERE"
                " julianday(e.at) < julianday(?)"
                " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = e.key)"
                " AND NOT EXISTS (SELECT 1 FROM dead_letter d WHERE d.key = e.key)"
                " AND NOT EXISTS (SELECT 1 FROM divert_intents i WHERE i.event_key = e.key) LIMIT ?)",
                [before.isoformat(), chunk],
            )
            return int(cur.rowcount)

        total = 0
        while (n := self.write(tx)) > 0:
            total += n
        return total

    def image(self, sha256: str) -> ImageBlob | None:
        rows = self.query("SELECT sha256, kind, content_type, data FROM images WHERE sha256 = ?", (sha256,))
        if not rows:
            return None
        r = rows[0]
        return ImageBlob(r[0], r[1], r[2], bytes(r[3]))

    def events(self, limit: int = 100, after_seq: int = 0) -> list[Event]:
        rows = self.query("SELECT body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        return [EVENT_ADAPTER.validate_json(r[0]) for r in rows]

    def divert_outcomes(self) -> dict[str, str]:
        """Each parcel's last divert outcome by tracking id: its follow-up's, else the parcel's own."""
        out: dict[str, str] = {}
        for tracking_id, body in self.query(
            "SELECT tracking_id, body FROM events WHERE type IN ('parcel', 'divert_outcome') ORDER BY seq"
        ):
            data = json.loads(body)
            outcome = data.get("outcome") or (data.get("divert") or {}).get("outcome")
            if outcome is not None:
                out[tracking_id] = outcome
        return out

    def _insert_events(self, db: sqlite_utils.Database, evs: Sequence[Event]) -> None:
        _insert_events(db, evs)

    def decision_counts(self) -> dict[str, int]:
        rows = self.query("SELECT decision, COUNT(*) FROM events WHERE type = 'parcel' GROUP BY decision")
        return {str(r[0]): int(r[1]) for r in rows}
