"""Every sorter link says what it can carry, and refuses anything beyond it before sending a byte."""

from __future__ import annotations

import socket

import pytest

from scanner_drivers.sorter.link import LinkLimitError, LinkLimits
from scanner_drivers.sorter.modbus_layout import ModbusLimitError
from scanner_drivers.sorter.open import open_sorter
from scanner_drivers.sorter.telegram import TelegramError, TelegramFieldError, telegram_limits
from scanner_drivers.sorter.urls import parse_sorter_url


class _Listener:
    """A port that only counts connections: proves a refused divert never reached the controller."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.server.settimeout(0.05)

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def connections(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                return n
            conn.close()
            n += 1


def test_limits_per_link() -> None:
    tcp = parse_sorter_url("tcp://h:1").limits
    assert (tcp.mode, tcp.id_max_len, tcp.max_in_flight > 30) == ("divert", 64, True)
    mailbox = parse_sorter_url("modbus://h?register=100&slots=4").limits
    assert (mailbox.id_max_len, mailbox.chute_max, mailbox.max_in_flight) == (20, 65535, 4)
    coil = parse_sorter_url("modbus://h?coil=16&chute=R7").limits
    assert coil.check_chute("R7") == "R7" and coil.check_chute(None) is None
    assert parse_sorter_url("serial:///dev/ttyS0?mode=request").limits.mode == "request"


@pytest.mark.parametrize(
    ("limits", "tracking_id", "chute", "why"),
    [
        (telegram_limits("tcp"), "", None, "empty"),
        (telegram_limits("tcp"), "X" * 65, None, "at most 64"),
        (telegram_limits("tcp"), "A|B", None, "printable ASCII"),
        (telegram_limits("tcp"), "运单1", None, "printable ASCII"),
        (telegram_limits("tcp"), "OK", "C" * 17, "at most 16"),
        (telegram_limits("tcp"), "OK", "R\x031", "printable ASCII"),
        (parse_sorter_url("modbus://h").limits, "SZX-HUB1-L3-XR1-b12-4711", None, "at most 20"),
        (parse_sorter_url("modbus://h").limits, "OK", "P1", "chute number"),
        (parse_sorter_url("modbus://h").limits, "OK", "65536", "chute number"),
        (parse_sorter_url("modbus://h").limits, "OK", "-1", "chute number"),
        (parse_sorter_url("modbus://h?coil=3&chute=7").limits, "OK", "8", "coil's own chute"),
        (parse_sorter_url("modbus://h?coil=3").limits, "OK", "7", "one chute"),
    ],
)
def test_what_a_link_cannot_carry(limits: LinkLimits, tracking_id: str, chute: str | None, why: str) -> None:
    with pytest.raises(LinkLimitError, match=why):
        limits.check_tracking_id(tracking_id)
        limits.check_chute(chute)


def test_telegram_link_refuses_before_connecting() -> None:
    listener = _Listener()
    link = open_sorter(f"tcp://127.0.0.1:{listener.port}")
    try:
        with pytest.raises(TelegramFieldError) as caught:
            link.divert("X" * 65, 1.0)
        assert isinstance(caught.value, LinkLimitError) and isinstance(caught.value, TelegramError)
        with pytest.raises(LinkLimitError):
            link.divert("OK", 1.0, chute="A|B")
        assert listener.connections() == 0
    finally:
        link.close()
        listener.server.close()


def test_modbus_link_refuses_before_connecting() -> None:
    listener = _Listener()
    link = open_sorter(f"modbus://127.0.0.1:{listener.port}?register=100")
    try:
        with pytest.raises(ModbusLimitError, match="at most 20"):
            link.divert("SZX-HUB1-L3-XR1-b12-4711", 1.0)
        with pytest.raises(ModbusLimitError, match="chute number"):
            link.divert("EA1", 1.0, chute="P1")
        assert listener.connections() == 0
    finally:
        link.close()
        listener.server.close()
