"""The station's copies of what the server sends: the registry (senders, manifests, lists) and pull orders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlite_utils

from edge.wire import Event, ManifestWire, OrderStatusEvent, PullOrderWire, RegistryChanges, SenderWire

T = TypeVar("T")


class ServerCopies:
    """Mixed into EdgeStore: written through its writer thread, read through its read connections."""

    def write(
        self, fn: Callable[[sqlite_utils.Database], T], timeout: float = 30.0, urgent: bool = False
    ) -> T:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def get_meta(self, key: str, default: str) -> str:
        raise NotImplementedError

    def _insert_events(self, db: sqlite_utils.Database, evs: Sequence[Event]) -> None:
        raise NotImplementedError

    # -- registry copy ---------------------------------------------------------------------------

    def apply_registry(self, changes: RegistryChanges) -> None:
        def tx(db: sqlite_utils.Database) -> None:
            db.conn.executemany(
                "INSERT OR REPLACE INTO senders"
                " (sender_token, id_masked, name_masked, phone_token, verified, agreement_customer,"
                " address_token, risk, qualified, customer_token) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        s.sender_token,
                        s.id_masked,
                        s.name_masked,
                        s.phone_token,
                        s.verified,
                        s.agreement_customer,
                        s.address_token,
                        s.risk,
                        s.qualified,
                        s.customer_token,
                    )
                    for s in changes.senders
                ],
            )
            db.conn.executemany(
                "INSERT OR REPLACE INTO manifests VALUES (?,?,?,?,?,?)",
                [
                    (
                        m.waybill,
                        m.sender_token,
                        m.declared_name,
                        m.declared_category,
                        m.quantity,
                        m.inspected_on_receipt,
                    )
                    for m in changes.manifests
                ],
            )
            db.conn.executemany(
                "INSERT OR REPLACE INTO watchlist VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        w.entry_id,
                        w.list,
                        w.kind,
                        w.token,
                        w.reason,
                        w.expires_at.isoformat() if w.expires_at else None,
                        w.active,
                    )
                    for w in changes.watchlist
                ],
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('registry_cursor', ?)", [str(changes.cursor)])

        self.write(tx)

    def registry_cursor(self) -> int:
        return int(self.get_meta("registry_cursor", "0"))

    def manifest(self, waybill: str) -> ManifestWire | None:
        rows = self.query("SELECT * FROM manifests WHERE waybill = ?", (waybill,))
        if not rows:
            return None
        r = rows[0]
        return ManifestWire(
            waybill=r[0],
            sender_token=r[1],
            declared_name=r[2],
            declared_category=r[3],
            quantity=r[4],
            inspected_on_receipt=bool(r[5]),
        )

    def sender(self, token: str) -> SenderWire | None:
        rows = self.query(
            "SELECT sender_token, id_masked, name_masked, phone_token, verified, agreement_customer,"
            " address_token, risk, qualified, customer_token FROM senders WHERE sender_token = ?",
            (token,),
        )
        if not rows:
            return None
        r = rows[0]
        return SenderWire(
            sender_token=r[0],
            id_masked=r[1],
            name_masked=r[2],
            phone_token=r[3],
            verified=bool(r[4]),
            agreement_customer=bool(r[5]),
            address_token=r[6],
            risk=r[7],
            qualified=None if r[8] is None else bool(r[8]),
            customer_token=r[9],
        )

    def watch_lists(self, tokens: Sequence[str], now: datetime) -> set[str]:
        """The lists ('blacklist', 'watchlist') that any of `tokens` is on right now."""
        toks = [t for t in tokens if t]
        if not toks:
            return set()
        marks = ",".join("?" * len(toks))
        rows = self.query(
            f"SELECT list, expires_at FROM watchlist WHERE active = 1 AND token IN ({marks})", toks
        )
        return {r[0] for r in rows if r[1] is None or datetime.fromisoformat(r[1]) > now}

    # -- pull orders -----------------------------------------------------------------------------

    def add_orders(
        self,
        orders: Sequence[PullOrderWire],
        delivered: Callable[[PullOrderWire], OrderStatusEvent] | None = None,
    ) -> list[PullOrderWire]:
        """Store orders not seen before; return the new ones.

        With `delivered`, each new order's "delivered" status event is written in the same
        transaction as the order and the poll cursor, so no stop in between can lose the ack.
        """

        def tx(db: sqlite_utils.Database) -> list[PullOrderWire]:
            new: list[PullOrderWire] = []
            for o in orders:
                cur = db.execute(
                    "INSERT OR IGNORE INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        o.order_id,
                        o.seq,
                        o.scope,
                        o.waybill,
                        o.sender_token,
                        o.reason,
                        o.issuer,
                        o.site_id,
                        o.created_at.isoformat(),
                        o.expires_at.isoformat(),
                        "delivered",
                    ],
                )
                if cur.rowcount:
                    new.append(o)
            top = max((o.seq for o in orders), default=0)
            if top:
                db.execute(
                    "INSERT INTO meta VALUES ('orders_seq', ?) ON CONFLICT(key) DO UPDATE SET value ="
                    " MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                    [str(top)],
                )
            if delivered is not None:
                self._insert_events(db, [delivered(o) for o in new])
            return new

        return self.write(tx)

    def cancel_orders(self, order_ids: Sequence[str]) -> list[str]:
        """Mark held orders cancelled so that no parcel matches them; returns the ones newly cancelled."""
        # The server repeats cancellations in every reply: look first, so that a sync with nothing new
        # costs one read and no write on the station's single writer.
        marks = ",".join("?" * len(order_ids))
        live = (
            [
                r[0]
                for r in self.query(
                    f"SELECT order_id FROM orders WHERE state != 'cancelled' AND order_id IN ({marks})",
                    order_ids,
                )
            ]
            if order_ids
            else []
        )
        if not live:
            return []

        def tx(db: sqlite_utils.Database) -> list[str]:
            done = []
            for order_id in live:
                cur = db.execute(
                    "UPDATE orders SET state = 'cancelled' WHERE order_id = ? AND state != 'cancelled'",
                    [order_id],
                )
                if cur.rowcount:
                    done.append(order_id)
            return done

        return self.write(tx)

    def orders_seq(self) -> int:
        return int(self.get_meta("orders_seq", "0"))

    def matching_orders(self, waybill: str | None, sender_token: str | None, now: datetime) -> list[str]:
        """Open orders for this waybill or sender that have not expired."""
        rows = self.query(
            "SELECT order_id, expires_at FROM orders WHERE state = 'delivered' AND"
            " ((scope = 'waybill' AND waybill = ?) OR (scope = 'sender' AND sender_token = ?))"
            " ORDER BY seq",
            (waybill or "\x00", sender_token or "\x00"),
        )
        return [r[0] for r in rows if datetime.fromisoformat(r[1]) > now]

    def open_orders(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM orders WHERE state = 'delivered'")[0][0])
