"""Fixtures for the station tests: a registry with one good and one blacklisted sender."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from edge.store import EdgeStore
from edge.wire import ManifestWire, RegistryChanges, SenderWire, WatchWire
from scanner_drivers.sorter.sim import SimulatedSorter

W_GOOD, W_BLACK = "EE123456785CN", "RR473124829GB"


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
                ManifestWire(waybill=W_GOOD, sender_token="good"),
                ManifestWire(waybill=W_BLACK, sender_token="black", declared_category=black_declared),
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
