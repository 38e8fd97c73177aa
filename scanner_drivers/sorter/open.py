"""Open a sorter link by URL: picks the protocol from the scheme and the exchange from `mode`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scanner_drivers.sorter.link import SorterLink
from scanner_drivers.sorter.urls import parse_sorter_url
from scanner_drivers.types import DeviceUrlError

if TYPE_CHECKING:
    from scanner_drivers.sorter.request import DestinationLink


def open_sorter(url: str) -> SorterLink:
    """Return a divert link for `tcp://`, `serial://` or `modbus://` URLs; connects lazily on first divert."""
    cfg = parse_sorter_url(url)
    if cfg.limits.mode == "request":
        raise DeviceUrlError(f"mode=request: the controller asks, open it with open_destination_link: {url}")
    if url.startswith("modbus:"):
        from scanner_drivers.sorter.modbus import ModbusSorterLink

        return ModbusSorterLink(url)
    from scanner_drivers.sorter.stream import open_serial_link, open_tcp_link

    return open_tcp_link(url) if url.startswith("tcp:") else open_serial_link(url)


def open_destination_link(url: str) -> DestinationLink:
    """Return a destination-request link for `tcp://...?mode=request` or `serial://...?mode=request`."""
    cfg = parse_sorter_url(url)
    if cfg.limits.mode != "request":
        raise DeviceUrlError(f"not a destination-request URL (add mode=request, tcp:// or serial://): {url}")
    from scanner_drivers.sorter.request import DestinationLink

    return DestinationLink(url)
