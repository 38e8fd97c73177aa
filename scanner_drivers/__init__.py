"""Device library: opens scanners, cameras, X-ray feeds and sorter links by URL; knows nothing of parcels.

The face of the library: `open_scanner`, `open_camera`, `open_xray`, `open_sorter`,
`open_destination_link`, `check_url(kind, url)` and the plain types every driver hands out.
Driver code loads only when a device of its kind is opened or checked.
"""

from scanner_drivers.devices import (
    DeviceUrlInfo,
    check_sorter_url,
    check_url,
    open_camera,
    open_destination_link,
    open_scanner,
    open_sorter,
    open_xray,
)
from scanner_drivers.sorter.link import DestinationRequest, DivertResult, LinkLimitError, LinkLimits
from scanner_drivers.types import Code, DeviceError, DeviceUrlError, ImageCapture, ScanRead

__all__ = [
    "Code",
    "DestinationRequest",
    "DeviceError",
    "DeviceUrlError",
    "DeviceUrlInfo",
    "DivertResult",
    "ImageCapture",
    "LinkLimitError",
    "LinkLimits",
    "ScanRead",
    "check_sorter_url",
    "check_url",
    "open_camera",
    "open_destination_link",
    "open_scanner",
    "open_sorter",
    "open_xray",
]
