"""Open a sorter link by URL: picks the protocol from the scheme."""

from __future__ import annotations

from urllib.parse import urlsplit

from scanner_drivers.sorter.link import SorterLink
from scanner_drivers.types import DeviceUrlError


def open_sorter(url: str) -> SorterLink:
    """Return a link for `tcp://`, `serial://` or `modbus://` URLs; connects lazily on first divert."""
    scheme = urlsplit(url).scheme
    if scheme == "tcp":
        from scanner_drivers.sorter.stream import open_tcp_link

        return open_tcp_link(url)
    if scheme == "serial":
        from scanner_drivers.sorter.stream import open_serial_link

        return open_serial_link(url)
    if scheme == "modbus":
        from scanner_drivers.sorter.modbus import ModbusSorterLink

        return ModbusSorterLink(url)
    raise DeviceUrlError(
        f"unknown sorter URL scheme {scheme!r} in {url} (use tcp://, serial:// or modbus://)"
    )
