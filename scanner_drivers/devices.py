"""One way into every device: open a scanner, camera, X-ray feed or sorter by URL, or only check the URL.

Imports of the drivers happen inside the functions, so importing the library stays cheap and
checking a URL never loads the code (or touches the device) of another kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload
from urllib.parse import urlsplit

from scanner_drivers.sorter.link import LinkLimits
from scanner_drivers.types import DeviceUrlError

if TYPE_CHECKING:
    from scanner_drivers.camera.driver import CameraDriver
    from scanner_drivers.scanners.scanner import ScannerDriver
    from scanner_drivers.sorter.link import SorterLink
    from scanner_drivers.sorter.request import DestinationLink
    from scanner_drivers.xray.hotfolder import HotFolderDriver

DeviceKind = Literal["scanner", "camera", "xray", "sorter"]
KINDS: tuple[DeviceKind, ...] = ("scanner", "camera", "xray", "sorter")


@dataclass(frozen=True)
class DeviceUrlInfo:
    """What a URL check learnt about a scanner, camera or X-ray URL: where the device is and how read."""

    kind: DeviceKind
    scheme: str
    target: str
    detail: str


def open_scanner(url: str) -> ScannerDriver:
    """A scanner driver (`serial://`, `socket://`, `rfc2217://`, `loop://`, `fake://`), idle until started."""
    from scanner_drivers.scanners.open import open_scanner as _open

    return _open(url)


def open_camera(url: str) -> CameraDriver:
    """A camera driver for `v4l2://`, `rtsp(s)://`, `http(s)://`, `video://` or `images://`."""
    from scanner_drivers.camera.driver import CameraDriver

    check_url("camera", url)
    return CameraDriver(url)


def open_xray(url: str) -> HotFolderDriver:
    """An X-ray feed for `folder:///spool/path?...` (the folder the machine writes its images into)."""
    from scanner_drivers.xray.hotfolder import HotFolderDriver

    return HotFolderDriver(url)


def open_sorter(url: str) -> SorterLink:
    """A divert link (`tcp://`, `serial://`, `modbus://`); connects on the first divert."""
    from scanner_drivers.sorter.open import open_sorter as _open

    return _open(url)


def open_destination_link(url: str) -> DestinationLink:
    """A destination-request link (`tcp://...?mode=request`, `serial://...?mode=request`)."""
    from scanner_drivers.sorter.open import open_destination_link as _open

    return _open(url)


def _check_scanner(url: str) -> DeviceUrlInfo:
    scheme = urlsplit(url).scheme
    if scheme == "fake":
        from scanner_drivers.scanners.fake import FakeScanner

        fake = FakeScanner(url)  # parses only; the scenario file is read on start()
        return DeviceUrlInfo("scanner", scheme, str(fake.path), f"replay at speed {fake.speed:g}")
    from scanner_drivers.scanners.open import SERIAL_SCHEMES

    if scheme not in SERIAL_SCHEMES:
        known = ", ".join(s + "://" for s in ("fake", *SERIAL_SCHEMES))
        raise DeviceUrlError(f"unknown scanner URL scheme {scheme!r} in {url} (use {known})")
    from scanner_drivers.scanners.serial_scanner import parse_scanner_url

    cfg = parse_scanner_url(url)
    return DeviceUrlInfo(
        "scanner", scheme, cfg.port_url, f"preset {cfg.preset_name}, {cfg.framing.baudrate} baud"
    )


def _check_camera(url: str) -> DeviceUrlInfo:
    from scanner_drivers.camera.driver import parse_camera_url

    cfg = parse_camera_url(url)
    try:
        port = urlsplit(url).port
    except ValueError:
        raise DeviceUrlError(f"bad port in {url}") from None
    if port == 0:
        raise DeviceUrlError(f"port 0 is not a device port in {url}")
    size = f"{cfg.width}x{cfg.height}" if cfg.width and cfg.height else "native size"
    return DeviceUrlInfo("camera", cfg.scheme, cfg.source, f"{size}, {cfg.encode}")


def _check_xray(url: str) -> DeviceUrlInfo:
    from scanner_drivers.xray.hotfolder import parse_folder_url

    cfg = parse_folder_url(url)
    return DeviceUrlInfo(
        "xray", "folder", str(cfg.folder), f"{cfg.kind} images, {'dual' if cfg.dual else 'single'} energy"
    )


def check_sorter_url(url: str) -> LinkLimits:
    """The limits of the link `url` names (mode, id length, chute form); DeviceUrlError when malformed."""
    from scanner_drivers.sorter.urls import parse_sorter_url

    return parse_sorter_url(url).limits


@overload
def check_url(kind: Literal["sorter"], url: str) -> LinkLimits: ...


@overload
def check_url(kind: Literal["scanner", "camera", "xray"], url: str) -> DeviceUrlInfo: ...


@overload
def check_url(kind: str, url: str) -> LinkLimits | DeviceUrlInfo: ...


def check_url(kind: str, url: str) -> LinkLimits | DeviceUrlInfo:
    """Parse and validate a device URL without opening the device; DeviceUrlError says what is wrong.

    Checks the scheme, every option (unknown, repeated, out of range), presets of serial
    scanners, folder paths and host:port. Sorters give their LinkLimits, others a DeviceUrlInfo.
    Whether the device is there (the file, the folder, the host) is learnt only on opening.
    """
    if not isinstance(url, str) or not url.strip():
        raise DeviceUrlError(f"{kind} URL is empty")
    if "://" not in url:
        raise DeviceUrlError(f"{kind} URL {url!r} has no scheme (e.g. tcp://, serial://, folder://)")
    if kind == "sorter":
        return check_sorter_url(url)
    if kind == "scanner":
        return _check_scanner(url)
    if kind == "camera":
        return _check_camera(url)
    if kind == "xray":
        return _check_xray(url)
    raise ValueError(f"unknown device kind {kind!r} (use {', '.join(KINDS)})")
