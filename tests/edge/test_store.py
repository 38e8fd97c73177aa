"""The station's SQLite store: event and outbox in one transaction, registry copy, orders, failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.errors import StoreError
from edge.store import EdgeStore, ImageBlob
from edge.wire import (
    ManifestWire,
    OrderStatusEvent,
    ParcelEvent,
    PullOrderWire,
    RegistryChanges,
    SenderWire,
    WatchWire,
)

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def parcel(store: EdgeStore, decision: str = "CLEAR", waybill: str = "EA000000000CN") -> ParcelEvent:
    seq = store.allocate_seq()
    return ParcelEvent(
        key=f"S1:b1:{seq}",
        station_id="S1",
        boot_id="b1",
        seq=seq,
        at=NOW,
        tracking_id=f"t{seq}",
        waybill=waybill,
        decision=decision,
        reasons=[] if decision == "CLEAR" else ["NO_REALNAME"],
        risk=0.0 if decision == "CLEAR" else 0.6,
        classifier="classifier off",
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    s = EdgeStore(tmp_path / "station.db")
    yield s
    s.close()


def test_event_outbox_and_image_together(store: EdgeStore) -> None:
    ev = parcel(store, "HOLD")
    blob = ImageBlob("ab" * 32, "xray", "image/png", b"\x89PNG...")
    store.append_events([ev], [blob], upload=[blob.sha256])
    rows = store.pending_outbox(10)
    assert [r.key for r in rows] == [ev.key]
    assert rows[0].images == (blob.sha256,)
    assert store.image(blob.sha256) == blob
    assert store.events()[0] == ev
    store.ack_outbox([ev.key])
    assert store.outbox_size() == 0
    assert store.decision_counts() == {"HOLD": 1}


def test_failed_transaction_leaves_nothing(store: EdgeStore) -> None:
    ev = parcel(store)
    store.append_events([ev])
    with pytest.raises(StoreError):
        # The second collides (same key, other body): the whole write rolls back.
        store.append_events([parcel(store), ev.model_copy(update={"risk": 0.5})])
    assert store.outbox_size() == 1
    assert len(store.events()) == 1


def test_seq_and_boot_survive_restart(tmp_path: Path) -> None:
    s = EdgeStore(tmp_path / "db.sqlite")
    assert s.start_boot() == 1
    s.append_events([parcel(s), parcel(s)])
    s.close()
    s2 = EdgeStore(tmp_path / "db.sqlite")
    assert s2.start_boot() == 2
    assert s2.allocate_seq() == 3
    s2.close()


def test_registry_and_watchlist(store: EdgeStore) -> None:
    store.apply_registry(
        RegistryChanges(
            cursor=7,
            senders=[
                SenderWire(
                    sender_token="tok1", id_masked="110***********1234", phone_token="ph1", verified=True
                )
            ],
            manifests=[ManifestWire(waybill="EA1", sender_token="tok1", declared_category="food")],
            watchlist=[
                WatchWire(entry_id="w1", list="blacklist", kind="phone", token="ph1", reason="fraud"),
                WatchWire(
                    entry_id="w2",
                    list="watchlist",
                    kind="sender",
                    token="tok1",
                    reason="x",
                    expires_at=NOW - timedelta(days=1),
                ),
            ],
        )
    )
    assert store.registry_cursor() == 7
    assert store.manifest("EA1") is not None and store.manifest("EA2") is None
    assert store.sender("tok1") is not None
    assert store.watch_lists(["tok1", "ph1"], NOW) == {"blacklist"}  # the watch entry has expired
    store.apply_registry(
        RegistryChanges(
            cursor=8,
            watchlist=[
                WatchWire(
                    entry_id="w1", list="blacklist", kind="phone", token="ph1", reason="fraud", active=False
                )
            ],
        )
    )
    assert store.watch_lists(["ph1"], NOW) == set()


def order(n: int, scope: str = "waybill") -> PullOrderWire:
    return PullOrderWire(
        order_id=f"o{n}",
        seq=n,
        scope=scope,
        waybill="EA1" if scope == "waybill" else None,
        sender_token="tok1" if scope == "sender" else None,
        reason="PULL at S0",
        issuer="server",
        created_at=NOW,
        expires_at=NOW + timedelta(days=1),
    )


def test_orders_are_new_once_and_match(store: EdgeStore) -> None:
    assert [o.order_id for o in store.add_orders([order(1), order(2, "sender")])] == ["o1", "o2"]
    assert store.add_orders([order(1)]) == []
    assert store.orders_seq() == 2
    assert store.matching_orders("EA1", None, NOW) == ["o1"]
    assert store.matching_orders("EA9", "tok1", NOW) == ["o2"]
    assert store.matching_orders("EA1", None, NOW + timedelta(days=2)) == []
    ev = parcel(store, "PULL", "EA1")
    st = OrderStatusEvent(
        key=f"S1:b1:{store.allocate_seq()}",
        station_id="S1",
        boot_id="b1",
        seq=99,
        at=NOW,
        order_id="o1",
        state="diverted",
    )
    store.append_events([ev, st], order_states=[("o1", "diverted")])
    assert store.matching_orders("EA1", None, NOW) == []


def test_dead_letter_keeps_the_event(store: EdgeStore) -> None:
    ev = parcel(store)
    store.append_events([ev])
    store.move_to_dead_letter(ev.key, "HTTP 409: conflict")
    assert store.outbox_size() == 0
    assert store.query("SELECT key, error FROM dead_letter") == [(ev.key, "HTTP 409: conflict")]


def test_unwritable_database_is_a_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open local database"):
        EdgeStore(bad)


def test_disk_full_is_reported_not_swallowed(tmp_path: Path) -> None:
    s = EdgeStore(tmp_path / "small.db")
    # A page cap stands in for a full disk: SQLite answers SQLITE_FULL exactly as it would.
    s.write(lambda db: db.execute("PRAGMA max_page_count = 1"))
    page_count = s.query("PRAGMA page_count")[0][0]
    s.write(lambda db: db.execute(f"PRAGMA max_page_count = {page_count}"))
    big = ImageBlob("cd" * 32, "xray", "image/png", b"x" * 200_000)
    with pytest.raises(StoreError, match="full"):
        s.append_events([parcel(s, "HOLD")], [big], upload=[big.sha256])
    assert s.outbox_size() == 0
    s.close()
    assert isinstance(StoreError("x"), OSError)
    assert sqlite3.sqlite_version


def test_database_from_an_earlier_release_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE senders (sender_token TEXT PRIMARY KEY, id_masked TEXT NOT NULL,"
            " name_masked TEXT NOT NULL, phone_token TEXT, verified INTEGER NOT NULL,"
            " agreement_customer INTEGER NOT NULL)"
        )
        conn.execute("INSERT INTO senders VALUES ('t1', '110***1234', '王*', NULL, 1, 0)")
    s = EdgeStore(path)
    old = s.sender("t1")
    assert old is not None and old.address_token is None
    s.apply_registry(
        RegistryChanges(
            cursor=1,
            senders=[SenderWire(sender_token="t2", id_masked="x", address_token="addr", verified=True)],
        )
    )
    new = s.sender("t2")
    assert new is not None and new.address_token == "addr"
    s.close()


def test_old_held_images_go_only_once_uploaded(store: EdgeStore) -> None:
    sent = ImageBlob("aa" * 32, "xray", "image/png", b"sent")
    waiting = ImageBlob("bb" * 32, "xray", "image/png", b"waiting")
    first = parcel(store, "HOLD")
    second = parcel(store, "HOLD")
    store.append_events([first], [sent], upload=[sent.sha256])
    store.append_events([second], [waiting], upload=[waiting.sha256])
    store.ack_outbox([first.key])  # the server has the first hit and its image
    later = datetime.now(UTC) + timedelta(days=1)
    assert store.purge_images(datetime.now(UTC) - timedelta(days=1)) == 0  # nothing old enough yet
    assert store.purge_images(later) == 1
    assert store.image(sent.sha256) is None
    assert store.image(waiting.sha256) == waiting  # still to be uploaded: kept however old


def test_readers_never_use_the_writers_connection(store: EdgeStore) -> None:
    """A reader sees only committed data, from its own connection, while the writer is mid-transaction."""
    import threading

    inside = threading.Event()
    release = threading.Event()

    def slow_tx(db: object) -> None:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('probe', 'uncommitted')")  # type: ignore[attr-defined]
        inside.set()
        release.wait(10)

    writer = threading.Thread(target=store.write, args=(slow_tx,))
    writer.start()
    assert inside.wait(10)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.append(store.get_meta("probe", "absent")))
    reader.start()
    reader.join(10)
    assert seen == ["absent"] and store.get_meta("probe", "absent") == "absent"
    release.set()
    writer.join(10)
    assert store.get_meta("probe", "absent") == "uncommitted"


def test_an_order_and_its_delivered_ack_commit_together(store: EdgeStore) -> None:
    def delivered(o: PullOrderWire) -> OrderStatusEvent:
        return OrderStatusEvent(
            **store.stamp("S1", "b1", NOW), order_id=o.order_id, state="delivered", waybill=o.waybill
        )

    def broken(o: PullOrderWire) -> OrderStatusEvent:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(StoreError):
        store.add_orders([order(1)], broken)
    # Nothing of it stayed: the order comes again with the next poll and is acked then.
    assert store.orders_seq() == 0 and store.open_orders() == 0
    assert [o.order_id for o in store.add_orders([order(1), order(2)], delivered)] == ["o1", "o2"]
    acks = [e for e in store.events(10) if isinstance(e, OrderStatusEvent)]
    assert [(a.order_id, a.state) for a in acks] == [("o1", "delivered"), ("o2", "delivered")]
    assert store.add_orders([order(1)], delivered) == [] and len(store.events(10)) == 2


def test_writing_a_record_again_is_harmless(store: EdgeStore) -> None:
    """A write that landed after its caller gave up waiting is retried from memory: no double, no resend."""
    ev = parcel(store, "HOLD")
    store.append_events([ev])
    store.append_events([ev])
    assert len(store.events(10)) == 1 and store.outbox_size() == 1
    store.ack_outbox([ev.key])
    store.append_events([ev])
    assert len(store.events(10)) == 1 and store.outbox_size() == 0


def test_checkpoints_copy_the_log_into_the_database_beside_the_writer(tmp_path: Path) -> None:
    import time

    from edge.store_checkpoints import Checkpointer

    path = tmp_path / "c.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # as the station's writer runs
    writer.execute("CREATE TABLE t (b BLOB)")
    writer.execute("INSERT INTO t VALUES (?)", [b"x" * 1_000_000])
    assert path.stat().st_size < 100_000  # the megabyte is in the log only
    checkpoints = Checkpointer(path, every_s=0.01)
    end = time.monotonic() + 20
    while path.stat().st_size < 1_000_000 and time.monotonic() < end:
        time.sleep(0.01)
    checkpoints.stop()
    writer.close()
    assert path.stat().st_size >= 1_000_000


def test_old_events_go_only_once_the_server_confirmed_them(store: EdgeStore) -> None:
    confirmed, waiting, refused = parcel(store), parcel(store), parcel(store)
    store.append_events([confirmed, waiting, refused])
    store.ack_outbox([confirmed.key])
    store.move_to_dead_letter(refused.key, "422 refused by the server")
    assert store.purge_events(NOW - timedelta(days=1)) == 0  # nothing old enough yet
    later = NOW + timedelta(days=31)
    assert store.purge_events(later, chunk=1) == 1
    keys = [r[0] for r in store.query("SELECT key FROM events ORDER BY seq")]
    assert keys == [waiting.key, refused.key]  # unsent and refused: kept however old
    store.ack_outbox([waiting.key])
    assert store.purge_events(later) == 1 and store.purge_events(later) == 0
    # The sequence goes on from where it was, not from what is left in the table.
    assert store.allocate_seq() == refused.seq + 1
