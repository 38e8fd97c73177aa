"""Open live streams of the terminal, capped per login, per client address and in all."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field


@dataclass(eq=False)
class StreamTicket:
    """One open stream; `closed` is set when it must end, `reason` says why (displaced, logged_out)."""

    session: str
    address: str
    seq: int
    closed: threading.Event = field(default_factory=threading.Event)
    reason: str = "displaced"


class StreamLimits:
    """Admits live streams: over a per-login or per-address cap the client's oldest stream is closed.

    Closing the oldest rather than refusing the newest keeps a reloaded or reconnected page working
    (its previous stream may linger until TCP notices), and keeps one client from holding slots
    another needs. Only the overall cap refuses, and only once every slot is taken.
    """

    def __init__(self, per_session: int, per_address: int, limit: int) -> None:
        self.per_session, self.per_address, self.limit = per_session, per_address, limit
        self._lock = threading.Lock()
        self._open: list[StreamTicket] = []
        self._seq = itertools.count()

    def admit(self, session: str, address: str) -> StreamTicket | None:
        with self._lock:
            caps = (("session", session, self.per_session), ("address", address, self.per_address))
            for attr, value, cap in caps:
                mine = [t for t in self._open if getattr(t, attr) == value]
                for ticket in mine[: max(0, len(mine) - cap + 1)]:
                    self._drop(ticket)
            if len(self._open) >= self.limit:
                return None
            ticket = StreamTicket(session, address, next(self._seq))
            self._open.append(ticket)
            return ticket

    def leave(self, ticket: StreamTicket) -> None:
        with self._lock:
            self._drop(ticket)

    def close_session(self, session: str) -> None:
        """Ends every stream of a login (at logout)."""
        with self._lock:
            for ticket in [t for t in self._open if t.session == session]:
                self._drop(ticket, "logged_out")

    def _drop(self, ticket: StreamTicket, reason: str = "displaced") -> None:
        if not ticket.closed.is_set():
            ticket.reason = reason
        ticket.closed.set()
        if ticket in self._open:
            self._open.remove(ticket)

    @property
    def open(self) -> int:
        with self._lock:
            return len(self._open)

    def open_for(self, session: str) -> int:
        with self._lock:
            return sum(t.session == session for t in self._open)
