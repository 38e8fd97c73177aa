"""Open a scanner by URL: picks the driver from the URL's scheme."""

from __future__ import annotations

from urllib.parse import urlsplit

from scanner_drivers.scanners.fake import FakeScanner
from scanner_drivers.scanners.scanner import ScannerDriver
from scanner_drivers.types import DeviceUrlError

SERIAL_SCHEMES = ("serial", "socket", "rfc2217", "loop")


def open_scanner(url: str) -> ScannerDriver:
    """Return a driver for `url`; it does not touch the device until `start()`."""
    scheme = urlsplit(url).scheme
    if scheme == "fake":
        return FakeScanner(url)
    if scheme in SERIAL_SCHEMES:
        from scanner_drivers.scanners.serial_scanner import SerialScanner

        return SerialScanner(url)
    raise DeviceUrlError(
        f"unknown scanner URL scheme {scheme!r} in {url} (use fake://, serial://, socket://, rfc2217://, loop://)"
    )
