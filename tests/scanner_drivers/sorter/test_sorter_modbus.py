"""Sorter link over Modbus TCP (register mailbox and divert coil) against the simulated PLC."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner_drivers.sorter.link import DivertResult, LinkLimitError
from scanner_drivers.sorter.modbus_layout import decode_id, encode_id
from scanner_drivers.sorter.open import open_sorter
from scanner_drivers.sorter.sim import SimulatedSorter
from scanner_drivers.types import DeviceUrlError


@pytest.fixture
def sim() -> Iterator[SimulatedSorter]:
    s = SimulatedSorter(
        "modbus",
        miss=lambda tid: tid.startswith("MISS") or (tid == "coil-16" and s.diverts_received >= 1),
        drop=lambda tid: tid == "SILENT",
        chutes={"7", "8"},
    )
    s.start()
    yield s
    s.stop()


def test_mailbox_divert_missed_and_chute(sim: SimulatedSorter) -> None:
    link = open_sorter(sim.url)
    try:
        ok = link.divert("EA123456785CN", 2.0)
        assert ok == DivertResult("DIVERTED", None, "confirmed by the controller")
        assert link.divert("EA123456785CN", 2.0, chute="7").chute == "7"
        assert link.divert("MISS-1", 2.0).outcome == "MISSED"
        refused = link.divert("EA2", 2.0, chute="9")
        assert refused.outcome == "MISSED" and "refused" in refused.detail
    finally:
        link.close()
    assert sim.tracking_ids == ["EA123456785CN", "EA123456785CN", "MISS-1"]
    assert (sim.diverts_received, sim.missed) == (3, 1)


def test_mailbox_silence_is_a_timeout_and_the_link_recovers(sim: SimulatedSorter) -> None:
    link = open_sorter(sim.url)
    try:
        res = link.divert("SILENT", 0.3)
        assert res.outcome == "TIMEOUT" and "no result" in res.detail
        assert link.divert("LOUD", 2.0).outcome == "DIVERTED"
    finally:
        link.close()


def test_concurrent_diverts_share_the_mailbox(sim: SimulatedSorter) -> None:
    link = open_sorter(sim.url)
    results: list[DivertResult] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        r = link.divert(f"P{i}", 10.0)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    link.close()
    assert [r.outcome for r in results] == ["DIVERTED"] * 8
    assert sorted(sim.tracking_ids) == sorted(f"P{i}" for i in range(8))


def test_coil_divert_then_miss_flag(sim: SimulatedSorter) -> None:
    link = open_sorter(sim.coil_url + "&chute=R1")
    try:
        assert link.divert("EA1", 2.0) == DivertResult("DIVERTED", "R1", "controller cleared the divert coil")
        missed = link.divert("EA2", 2.0)
        assert missed.outcome == "MISSED" and "miss flag" in missed.detail
        with pytest.raises(LinkLimitError):
            link.divert("EA3", 1.0, chute="R2")
    finally:
        link.close()


def test_device_down_is_a_timeout() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    link = open_sorter(f"modbus://127.0.0.1:{port}?ack_timeout=0.2")
    for _ in range(2):
        res = link.divert("EA1", 0.5)
        assert res.outcome == "TIMEOUT" and "unreachable" in res.detail
    link.close()
    assert link.divert("EA1", 0.5).detail == "link is closed"


def test_controller_restart_is_survived() -> None:
    sim = SimulatedSorter("modbus")
    link = open_sorter(sim.start())
    assert link.divert("A", 2.0).outcome == "DIVERTED"
    sim.stop()
    assert link.divert("B", 0.5).outcome == "TIMEOUT"
    link.close()


@pytest.mark.parametrize(
    "url",
    [
        "modbus://",
        "modbus://127.0.0.1:502?coil=1&register=2",
        "modbus://127.0.0.1:502?unit=300",
        "modbus://127.0.0.1:502?register=-1",
        "modbus://127.0.0.1:502?chute=R1",
        "modbus://127.0.0.1:502/x",
        "modbus://127.0.0.1:502?poll_ms=0",
        "modbus://127.0.0.1:502?speed=9",
    ],
)
def test_bad_modbus_urls(url: str) -> None:
    with pytest.raises(DeviceUrlError):
        open_sorter(url)


@pytest.mark.parametrize(("tid", "chute"), [("X" * 21, None), ("运单", None), ("A|B", None), ("OK", "R1")])
def test_what_the_mailbox_cannot_carry_raises(tid: str, chute: str | None) -> None:
    link = open_sorter("modbus://127.0.0.1:9")
    with pytest.raises(LinkLimitError):
        link.divert(tid, 0.1, chute=chute)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="|"),
        min_size=1,
        max_size=20,
    )
)
def test_tracking_id_register_round_trip(tid: str) -> None:
    regs = encode_id(tid)
    assert len(regs) == 10 and all(0 <= r <= 0xFFFF for r in regs)
    assert decode_id(regs) == tid
