"""Destination-request mode: the controller's requests are the station's reads, its decisions the answers."""

from __future__ import annotations

import threading

from scanner_drivers.scanners.scanner import ReadCallback, StatusCallback
from scanner_drivers.sorter.link import DivertResult, LinkLimits
from scanner_drivers.sorter.request import DestinationLink


class ControllerRequests:
    """The scanner of a station whose controller asks: every destination request is one read.

    The read carries the controller's carrier id and its deadline, so the parcel's time budget and
    the id quoted in the answer both come from the controller.
    """

    def __init__(self, link: DestinationLink) -> None:
        self.link = link
        self.url = link.url
        self._stopped = threading.Event()

    def start(self, on_read: ReadCallback, on_status: StatusCallback) -> None:
        self.link.start(lambda request: on_read(request.as_scan_read(self.url)), on_status)

    def stop(self) -> None:
        # The connection belongs to the answering side (closed with the sorter link).
        self._stopped.set()

    def join(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)


class AnsweringLink:
    """The divert dispatcher's sorter link in request mode: a divert is the answer to its request."""

    def __init__(self, link: DestinationLink) -> None:
        self.link = link
        self.url = link.url
        self.limits: LinkLimits = link.limits

    def divert(self, tracking_id: str, deadline_s: float, chute: str | None = None) -> DivertResult:
        # `tracking_id` is the carrier id (the parcel's sorter id); the controller's own deadline,
        # not `deadline_s`, bounds the answer (the link refuses to send it late).
        return self.link.answer(tracking_id, chute)

    def probe(self, timeout_s: float) -> tuple[bool, str]:
        # The destination link keeps its own connection (and retries it); this only reads its state.
        if self.link.connected:
            return True, "connected"
        return False, "controller unreachable: not connected"

    def close(self) -> None:
        self.link.close()
