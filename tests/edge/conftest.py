"""Fixtures for the station tests: a registry with a good and a blacklisted sender; a terminal operator."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import httpx
import pytest
from argon2 import PasswordHasher

from edge.config import TerminalOperator
from edge.store import EdgeStore
from edge.wire import ManifestWire, RegistryChanges, SenderWire, WatchWire
from scanner_drivers.sorter.sim import SimulatedSorter

W_GOOD, W_BLACK = "EE123456785CN", "RR473124829GB"
OPERATOR, PIN = "op7", "4821"


def seed_two_senders(store: EdgeStore, black_declared: str = "other") -> None:
    """W_GOOD from a verified sender; W_BLACK from a verified but blacklisted one."""
    store.apply_registry(
        RegistryChanges(
            cursor=1,
            senders=[
                SenderWire(sender_token="good", id_masked="110***********1234", verified=True),
                SenderWire(sender_token="black", id_masked="440***********0001", verified=True),
            ],
            manifests=[
                ManifestWire(waybill=W_GOOD, sender_token="good", inspected_on_receipt=True),
                ManifestWire(
                    waybill=W_BLACK,
                    sender_token="black",
                    declared_category=black_declared,
                    inspected_on_receipt=True,
                ),
            ],
            watchlist=[
                WatchWire(entry_id="b1", list="blacklist", kind="sender", token="black", reason="fraud")
            ],
        )
    )


@pytest.fixture
def seed_registry() -> Callable[..., None]:
    return seed_two_senders


@pytest.fixture
def sim() -> Iterator[SimulatedSorter]:
    """A simulated TCP sorter controller that diverts everything."""
    s = SimulatedSorter()
    s.start()
    yield s
    s.stop()


@functools.cache
def _pin_hash() -> str:
    # Cheap argon2 parameters: the hash carries them, so that checking a PIN stays fast in tests.
    return PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PIN)


@pytest.fixture
def terminal_operators() -> list[TerminalOperator]:
    """One operator, op7, whose PIN is 4821."""
    return [TerminalOperator(id=OPERATOR, name="Li Wei", pin_hash=_pin_hash())]


LogIn = Callable[..., str]


@pytest.fixture
def log_in() -> LogIn:
    """Logs a client in as op7 and makes it send the session's CSRF token from then on."""

    def go(http: httpx.Client, operator: str = OPERATOR, pin: str = PIN) -> str:
        resp = http.post("/api/login", json={"operator": operator, "pin": pin})
        assert resp.status_code == 200, resp.text
        token = str(resp.json()["csrf_token"])
        http.headers["X-CSRF-Token"] = token
        return token

    return go
