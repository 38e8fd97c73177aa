"""The library's face: one way to open every device, and URL checks that never open anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import scanner_drivers
from scanner_drivers import (
    DeviceUrlError,
    DeviceUrlInfo,
    LinkLimits,
    check_url,
    open_camera,
    open_scanner,
    open_sorter,
    open_xray,
)
from scanner_drivers.camera.driver import CameraDriver
from scanner_drivers.scanners.fake import FakeScanner
from scanner_drivers.sorter.stream import TelegramSorterLink
from scanner_drivers.xray.hotfolder import HotFolderDriver


def test_face_exports_the_shared_types() -> None:
    for name in (
        "Code",
        "ScanRead",
        "ImageCapture",
        "DeviceError",
        "DeviceUrlError",
        "DivertResult",
        "DestinationRequest",
        "LinkLimits",
        "open_scanner",
        "open_camera",
        "open_xray",
        "open_sorter",
        "check_url",
    ):
        assert name in scanner_drivers.__all__ and hasattr(scanner_drivers, name), name


def test_importing_the_face_loads_no_driver(repo_root: Path) -> None:
    code = (
        "import sys, scanner_drivers\n"
        "heavy = {'cv2', 'serial', 'pymodbus', 'numpy', 'pydantic'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_open_functions_return_each_kinds_driver(tmp_path: Path) -> None:
    assert isinstance(open_scanner(f"fake://{tmp_path / 'r.jsonl'}"), FakeScanner)
    assert isinstance(open_camera(f"images://{tmp_path}"), CameraDriver)
    assert isinstance(open_xray(f"folder://{tmp_path}?settle_ms=0"), HotFolderDriver)
    link = open_sorter("tcp://127.0.0.1:9")
    assert isinstance(link, TelegramSorterLink)
    link.close()


def test_check_url_says_what_it_learnt() -> None:
    limits = check_url("sorter", "modbus://plc:502?register=100&slots=4")
    assert isinstance(limits, LinkLimits) and (limits.id_max_len, limits.max_in_flight) == (20, 4)
    assert check_url("sorter", "tcp://10.0.0.1:2112?mode=request").mode == "request"
    scanner = check_url("scanner", "serial:///dev/ttyUSB0?preset=sick")
    assert (
        isinstance(scanner, DeviceUrlInfo) and scanner.target == "/dev/ttyUSB0" and "sick" in scanner.detail
    )
    assert check_url("camera", "rtsp://cam:554/main#width=1280&height=720").detail.startswith("1280x720")
    assert check_url("xray", "folder:///var/spool/xray?dual=1").target == "/var/spool/xray"


def test_check_url_does_not_touch_the_device(tmp_path: Path) -> None:
    # Nothing there: a missing scenario file, folder or serial port is learnt only on opening.
    check_url("scanner", f"fake://{tmp_path / 'absent.jsonl'}")
    check_url("xray", f"folder://{tmp_path / 'absent'}")
    check_url("scanner", "serial:///dev/does-not-exist")
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize(
    ("kind", "url", "why"),
    [
        ("scanner", "", "empty"),
        ("scanner", "COM3", "no scheme"),
        ("scanner", "serial:///dev/ttyS0?preset=symbol", "unknown scanner preset"),
        ("scanner", "rfc2217://host", "no port"),
        ("camera", "v4l2:///dev/video0?quality=0", "between"),
        ("camera", "http://cam:0/mjpg", "port 0"),
        ("xray", "folder:///spool?pattern=", "empty"),
        ("xray", "file:///spool", "not a folder"),
        ("sorter", "modbus://plc?unit=300", "between"),
        ("sorter", "tcp://h:2112?chute=" + "R" * 17, "chute"),
        ("sorter", "serial:///dev/ttyS0?mode=request&chute=R1", "mode=divert only"),
    ],
)
def test_check_url_refuses(kind: str, url: str, why: str) -> None:
    with pytest.raises(DeviceUrlError, match=why):
        check_url(kind, url)


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown device kind"):
        check_url("printer", "tcp://h:1")
