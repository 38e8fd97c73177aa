"""Destination requests: the controller asks for its carrier's chute, the station answers in time or not."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import pytest

from scanner_drivers.sorter import telegram
from scanner_drivers.sorter.link import DestinationRequest, DivertResult, LinkLimitError
from scanner_drivers.sorter.open import open_destination_link, open_sorter
from scanner_drivers.sorter.request import DestinationLink
from scanner_drivers.sorter.request_sim import CarrierOutcome, SimulatedRequestSorter
from scanner_drivers.types import Code, DeviceUrlError, ScanRead

WAIT_S = 5.0  # upper bound for waits on real sockets; never a measure of speed


class Station:
    """A station end: requests queue up as they arrive (on_request returns at once)."""

    def __init__(self, url: str) -> None:
        self.requests: queue.Queue[DestinationRequest] = queue.Queue()
        self.status: queue.Queue[tuple[bool, str]] = queue.Queue()
        self.link: DestinationLink = open_destination_link(url)
        self.link.start(self.requests.put, lambda _d, up, detail: self.status.put((up, detail)))

    def next(self) -> DestinationRequest:
        return self.requests.get(timeout=WAIT_S)


@pytest.fixture(params=["tcp", "serial"])
def line(request: pytest.FixtureRequest) -> Iterator[tuple[SimulatedRequestSorter, Station]]:
    sim = SimulatedRequestSorter(str(request.param), deadline_s=WAIT_S, chutes={"P1", "H1"})
    station = Station(sim.start())
    assert station.status.get(timeout=WAIT_S) == (True, "connected")
    assert sim.wait_connected(WAIT_S)
    yield sim, station
    station.link.close()
    sim.stop()


def test_request_carries_the_controllers_id_and_codes(line: tuple[SimulatedRequestSorter, Station]) -> None:
    sim, station = line
    carrier = sim.ask(("EA123456785CN", "SF1234567890"), carrier_id="TRAY-0042")
    req = station.next()
    assert req.carrier_id == carrier == "TRAY-0042"
    assert [c.text for c in req.codes] == ["EA123456785CN", "SF1234567890"]
    assert req.deadline_s == WAIT_S
    read = req.as_scan_read("sorter-1")
    assert isinstance(read, ScanRead) and read.carrier_id == "TRAY-0042" and read.codes == req.codes
    assert station.link.answer("TRAY-0042", "P1") == DivertResult(
        "DIVERTED", "P1", "destination accepted by the controller"
    )
    assert sim.wait_settled(1, WAIT_S)
    assert sim.outcomes["TRAY-0042"] == CarrierOutcome("ANSWERED", "P1", "answered in time")


def test_no_read_and_route_normally(line: tuple[SimulatedRequestSorter, Station]) -> None:
    sim, station = line
    sim.ask(())
    req = station.next()
    assert req.codes == () and req.as_scan_read("s").no_read
    res = station.link.answer(req.carrier_id, None)
    assert res == DivertResult("DIVERTED", None, "controller routes the carrier normally")
    assert sim.wait_settled(1, WAIT_S)
    assert sim.outcomes[req.carrier_id].chute is None


def test_forty_open_requests_answered_from_many_threads(line: tuple[SimulatedRequestSorter, Station]) -> None:
    sim, station = line
    n = 40
    sim.ask_at_rate(n, 1000.0, lambda i: (f"EA{i:09d}CN",))
    # Hold every request before answering any: all forty are open on the controller at once.
    held = [station.next() for _ in range(n)]
    assert sim.settled == 0
    results: dict[str, DivertResult] = {}
    lock = threading.Lock()

    def answer(req: DestinationRequest) -> None:
        chute = "P1" if int(req.codes[0].text[2:11]) % 3 == 0 else None
        res = station.link.answer(req.carrier_id, chute)
        with lock:
            results[req.carrier_id] = res

    threads = [threading.Thread(target=answer, args=(r,)) for r in held]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sim.wait_settled(n, WAIT_S)
    assert {r.outcome for r in results.values()} == {"DIVERTED"}
    assert all(o.status == "ANSWERED" for o in sim.outcomes.values())
    assert sum(o.chute == "P1" for o in sim.outcomes.values()) == len(range(0, n, 3))


def test_unknown_chute_is_refused_and_the_default_applies(
    line: tuple[SimulatedRequestSorter, Station],
) -> None:
    sim, station = line
    sim.ask(("EA1",))
    req = station.next()
    res = station.link.answer(req.carrier_id, "Z9")
    assert res.outcome == "MISSED" and "unknown chute Z9" in res.detail
    assert sim.outcomes[req.carrier_id] == CarrierOutcome("DEFAULTED", "NOREAD", "unknown chute Z9")
    # The request is used up: a second answer has nothing to answer.
    assert "no open request" in station.link.answer(req.carrier_id, "P1").detail


def test_silence_lets_the_controller_apply_its_default() -> None:
    sim = SimulatedRequestSorter("tcp", deadline_s=0.2, default_chute="REJECT")
    station = Station(sim.start())
    try:
        assert station.status.get(timeout=WAIT_S)[0]
        assert sim.wait_connected(WAIT_S)
        sim.ask(("EA1",))
        req = station.next()
        assert sim.wait_settled(1, WAIT_S)  # the station said nothing; the controller's deadline passed
        assert sim.outcomes[req.carrier_id] == CarrierOutcome("DEFAULTED", "REJECT", "no answer in time")
        late = station.link.answer(req.carrier_id, "P1")
        # Refused by the link (its deadline passed) or by the controller (NAK late): never diverted.
        assert late.outcome == "MISSED" and ("deadline" in late.detail or "late" in late.detail)
    finally:
        station.link.close()
        sim.stop()


def test_simulator_refuses_late_and_unknown_answers() -> None:
    sim = SimulatedRequestSorter("tcp")
    assert sim.handle(telegram.encode_destination(77, "T1", "P1")[1:-1]) == []
    assert sim.late_answers == 1 and sim.outcomes == {}


def test_reconnects_and_reports_status() -> None:
    sim = SimulatedRequestSorter("tcp", deadline_s=WAIT_S)
    station = Station(sim.start())
    try:
        assert station.status.get(timeout=WAIT_S) == (True, "connected")
        assert sim.wait_connected(WAIT_S)  # the kernel may complete the connect before the accept
        sim.disconnect_clients()
        assert station.status.get(timeout=WAIT_S)[0] is False
        assert station.status.get(timeout=WAIT_S) == (True, "connected")
        assert sim.wait_connected(WAIT_S)
        sim.ask(("EA2",), carrier_id="C2")
        assert station.link.answer(station.next().carrier_id, "H1").outcome == "DIVERTED"
    finally:
        station.link.close()
        sim.stop()


def test_controller_unreachable_is_a_status_not_an_exception() -> None:
    station = Station("tcp://127.0.0.1:9?mode=request&connect_timeout=0.1")
    try:
        up, detail = station.status.get(timeout=WAIT_S)
        assert not up and "unreachable" in detail
        assert "no open request" in station.link.answer("T1", "P1").detail
    finally:
        station.link.close()


def test_answers_beyond_the_link_limits_raise() -> None:
    link = open_destination_link("tcp://127.0.0.1:9?mode=request")
    with pytest.raises(LinkLimitError):
        link.answer("T1", "A|B")
    with pytest.raises(LinkLimitError):
        link.answer("T" * 65, None)


@pytest.mark.parametrize(
    ("opener", "url"),
    [
        (open_sorter, "tcp://127.0.0.1:2112?mode=request"),
        (open_destination_link, "tcp://127.0.0.1:2112"),
        (open_destination_link, "modbus://127.0.0.1?mode=request"),
        (open_destination_link, "tcp://127.0.0.1:2112?mode=request&chute=R1"),
    ],
)
def test_the_mode_decides_which_link_opens(opener: object, url: str) -> None:
    with pytest.raises(DeviceUrlError):
        opener(url)  # type: ignore[operator]


@pytest.mark.parametrize(
    "payload", [b"REQ|1|T1", b"REQ|1|T1|soon", b"REQ|1||500", b"DST|1|T1", b"DST|1||P1", b"REQ|x|T1|500"]
)
def test_bad_request_telegrams_are_rejected(payload: bytes) -> None:
    with pytest.raises(telegram.TelegramError):
        telegram.decode(payload)


def test_request_telegrams_round_trip() -> None:
    req = telegram.decode(telegram.encode_request(12, "TRAY-7", 450, ("EA1", "EA2"))[1:-1])
    assert (req.kind, req.seq, req.fields) == ("REQ", 12, ("TRAY-7", "450", "EA1", "EA2"))
    dst = telegram.decode(telegram.encode_destination(12, "TRAY-7", None)[1:-1])
    assert (dst.kind, dst.seq, dst.fields) == ("DST", 12, ("TRAY-7", ""))


def test_a_request_becomes_a_read_with_the_controllers_id_and_deadline() -> None:
    request = DestinationRequest("TRAY-7", (Code("EA1", "code128", "sorter"),), "t", 100.0, 0.4)
    read = request.as_scan_read("sorter")
    assert (read.carrier_id, read.answer_within_s, read.at_monotonic) == ("TRAY-7", 0.4, 100.0)
    assert [c.text for c in read.codes] == ["EA1"] and isinstance(read, ScanRead)
