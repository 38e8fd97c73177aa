"""Many diverts in flight at once: each waits for its own result on TCP, serial and a Modbus mailbox ring."""

from __future__ import annotations

import threading

import pytest

from scanner_drivers.sorter.link import DivertResult, SorterLink
from scanner_drivers.sorter.open import open_sorter
from scanner_drivers.sorter.sim import SimulatedSorter

CONFIRM_S = 0.3  # the controller confirms when the parcel reaches its chute
DEADLINE_S = 5.0


def divert_all(
    link: SorterLink, ids: list[str], chutes: list[str | None], deadlines: list[float]
) -> list[DivertResult]:
    """Call divert() for every id from its own thread, all released at the same moment."""
    results: list[DivertResult | None] = [None] * len(ids)
    gate = threading.Barrier(len(ids))

    def one(i: int) -> None:
        gate.wait()
        results[i] = link.divert(ids[i], deadlines[i], chutes[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


@pytest.mark.parametrize("protocol", ["tcp", "serial"])
def test_thirty_two_diverts_wait_on_a_slow_controller_together(protocol: str) -> None:
    n = 32
    sim = SimulatedSorter(protocol, miss=lambda tid: tid.endswith("7"), result_delay_s=CONFIRM_S)
    link = open_sorter(sim.start())
    ids = [f"P{i:03d}" for i in range(n)]
    chutes: list[str | None] = [f"C{i % 4}" for i in range(n)]
    try:
        results = divert_all(link, ids, chutes, [DEADLINE_S] * n)
    finally:
        link.close()
        sim.stop()
    for tid, chute, res in zip(ids, chutes, results, strict=True):
        if tid.endswith("7"):
            assert res.outcome == "MISSED", tid
        else:
            assert res == DivertResult("DIVERTED", chute, "confirmed by the controller"), tid
    # Every command was with the controller before it confirmed the first: none waited for another.
    assert sim.received_before_first_result == n
    assert sim.peak_in_flight == n
    assert sorted(sim.tracking_ids) == ids


def test_each_divert_keeps_its_own_deadline() -> None:
    sim = SimulatedSorter("tcp", result_delay_s=CONFIRM_S)
    link = open_sorter(sim.start())
    ids = [f"D{i}" for i in range(6)]
    # One impatient divert among patient ones: it alone times out, the others are unaffected.
    deadlines = [0.05, DEADLINE_S, DEADLINE_S, DEADLINE_S, DEADLINE_S, DEADLINE_S]
    try:
        results = divert_all(link, ids, [None] * 6, deadlines)
    finally:
        link.close()
        sim.stop()
    assert results[0].outcome == "TIMEOUT"
    assert [r.outcome for r in results[1:]] == ["DIVERTED"] * 5


def test_modbus_mailbox_ring_holds_one_divert_per_slot() -> None:
    sim = SimulatedSorter("modbus", miss=lambda tid: tid == "M5", result_delay_s=CONFIRM_S, chutes={"7", "8"})
    link = open_sorter(sim.start() + "&slots=8")
    assert link.limits.max_in_flight == 8
    ids = [f"M{i}" for i in range(16)]
    chutes: list[str | None] = ["7" if i % 2 else "8" for i in range(16)]
    try:
        results = divert_all(link, ids, chutes, [DEADLINE_S] * 16)
    finally:
        link.close()
        sim.stop()
    for tid, chute, res in zip(ids, chutes, results, strict=True):
        expected = DivertResult("MISSED", None, "controller reported a miss") if tid == "M5" else None
        assert res == (expected or DivertResult("DIVERTED", chute, "confirmed by the controller")), tid
    # Eight slots: eight commands with the controller at once, never more.
    assert sim.received_before_first_result == 8
    assert sim.peak_in_flight == 8
    assert sorted(sim.tracking_ids) == sorted(ids)


def test_single_modbus_mailbox_is_one_divert_at_a_time() -> None:
    sim = SimulatedSorter("modbus", result_delay_s=0.05)
    link = open_sorter(sim.start())
    try:
        results = divert_all(link, ["A", "B", "C"], [None] * 3, [DEADLINE_S] * 3)
    finally:
        link.close()
        sim.stop()
    assert [r.outcome for r in results] == ["DIVERTED"] * 3
    assert sim.peak_in_flight == 1


def test_a_restarted_station_never_takes_an_old_result_for_a_new_divert() -> None:
    sim = SimulatedSorter("modbus", drop=lambda tid: tid == "SILENT")
    url = sim.start()
    try:
        first = open_sorter(url)
        assert first.divert("BEFORE", DEADLINE_S).outcome == "DIVERTED"  # the slot now reports sequence 1
        first.close()
        again = open_sorter(url)  # a new link starts its sequence afresh
        res = again.divert("SILENT", 0.3)
        again.close()
    finally:
        sim.stop()
    assert res.outcome == "TIMEOUT", res
