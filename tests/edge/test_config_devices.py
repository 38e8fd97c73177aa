"""`config check` refuses every device URL and sorter option that `edge run` would fail to open."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.commands import check_config
from edge.config import DevicesConfig, SorterConfig
from edge.errors import ConfigError

STATION = """
[station]
id = "S1"
site_id = "SITE"
line_id = "L1"
"""


def toml(devices: dict[str, str], sorter: dict[str, str] | None = None) -> str:
    text = STATION + "[devices]\n" + "".join(f"{k} = {v!r}\n" for k, v in devices.items())
    if sorter is not None:
        text += "[sorter]\n" + "".join(f"{k} = {v!r}\n" for k, v in sorter.items())
    return text


SCANNER_OK = {"scanner": "fake://x.jsonl"}

# (devices, sorter, the key the message must name, a piece of the reason)
BROKEN: list[tuple[dict[str, str], dict[str, str] | None, str, str]] = [
    ({"scanner": "ftp://host/x"}, None, "devices.scanner", "unknown scanner URL scheme"),
    ({"scanner": "serial:///dev/ttyS0?preset=honeywel"}, None, "devices.scanner", "unknown scanner preset"),
    ({"scanner": "serial:///dev/ttyS0?baud=9600"}, None, "devices.scanner", "unknown option"),
    ({"scanner": "serial://dev/ttyS0"}, None, "devices.scanner", "absolute device path"),
    ({"scanner": "socket://scanner.local:99999"}, None, "devices.scanner", "bad port"),
    ({"scanner": "socket://scanner.local"}, None, "devices.scanner", "no port"),
    ({"scanner": "fake://x.jsonl?speed=fast"}, None, "devices.scanner", "speed must be a number"),
    (
        {"scanner": "serial:///dev/ttyS0?baudrate=9600&baudrate=19200"},
        None,
        "devices.scanner",
        "more than once",
    ),
    ({"scanner": "serial:///dev/ttyS0?parity=Q"}, None, "devices.scanner", "parity"),
    ({"scanner": "/dev/ttyUSB0"}, None, "devices.scanner", "has no scheme"),
    ({**SCANNER_OK, "camera": "v4l2:///dev/video0?fps=fast"}, None, "devices.camera", "must be a number"),
    ({**SCANNER_OK, "camera": "rtsp://cam:70000/stream"}, None, "devices.camera", "bad port"),
    ({**SCANNER_OK, "camera": "webcam:///dev/video0"}, None, "devices.camera", "unknown camera URL scheme"),
    ({**SCANNER_OK, "xray": "folder://spool/xray"}, None, "devices.xray", "absolute path"),
    ({**SCANNER_OK, "xray": "folder:///var/spool/xray?after=shred"}, None, "devices.xray", "must be one of"),
    ({**SCANNER_OK, "xray": "folder:///var/spool/xray?settle=5"}, None, "devices.xray", "unknown option"),
    (SCANNER_OK, {"url": "tcp://10.0.0.1"}, "sorter.url", "no port"),
    (SCANNER_OK, {"url": "tcp://10.0.0.1:2112?ack_timeout=0"}, "sorter.url", "between"),
    (SCANNER_OK, {"url": "udp://10.0.0.1:2112"}, "sorter.url", "unknown sorter URL scheme"),
    (SCANNER_OK, {"url": "tcp://10.0.0.1:2112?mode=ask"}, "sorter.url", "must be one of"),
    (SCANNER_OK, {"url": "tcp://10.0.0.1:2112?chute=A|B"}, "sorter.url", "chute"),
    (SCANNER_OK, {"url": "modbus://plc?slots=99"}, "sorter.url", "between"),
    (SCANNER_OK, {"url": "modbus://plc?mode=request"}, "sorter.url", "destination requests"),
    (SCANNER_OK, {"url": "modbus://plc?register=100&coil=16"}, "sorter.url", "either coil"),
    # The default chutes P1 and H1 are names; a Modbus mailbox carries chute numbers only.
    (SCANNER_OK, {"url": "modbus://plc:502?register=100"}, "sorter.pull_chute", "chute number"),
    (SCANNER_OK, {"url": "modbus://plc?register=100", "pull_chute": "7"}, "sorter.hold_chute", "'H1'"),
    (SCANNER_OK, {"url": "modbus://plc?register=100", "pull_chute": "70000"}, "sorter.pull_chute", "65535"),
    (SCANNER_OK, {"url": "tcp://10.0.0.1:2112", "pull_chute": "P" * 17}, "sorter.pull_chute", "16"),
    (SCANNER_OK, {"url": "tcp://10.0.0.1:2112", "hold_chute": "H|1"}, "sorter.hold_chute", "'|'"),
    (SCANNER_OK, {"url": "modbus://plc?coil=16&chute=7", "pull_chute": "7"}, "sorter.hold_chute", "coil"),
]


@pytest.mark.parametrize(("devices", "sorter", "key", "why"), BROKEN, ids=[b[2] + ":" + b[3] for b in BROKEN])
def test_config_check_refuses_what_edge_run_would(
    tmp_path: Path, devices: dict[str, str], sorter: dict[str, str] | None, key: str, why: str
) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(toml(devices, sorter), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        check_config(path, "edge")
    lines = [line for line in str(caught.value).splitlines() if line.strip().startswith(key + ":")]
    assert lines, str(caught.value)
    assert why in lines[0], lines[0]


@pytest.mark.parametrize(
    ("devices", "sorter"),
    [
        ({"scanner": "serial:///dev/serial/by-id/usb-x?preset=honeywell&suffix=CRLF"}, None),
        (
            {"scanner": "socket://10.0.0.5:4001", "camera": "v4l2:///dev/video0", "xray": "folder:///spool"},
            None,
        ),
        (SCANNER_OK, {"url": "modbus://plc:502?register=100&slots=8", "pull_chute": "7", "hold_chute": "8"}),
        (SCANNER_OK, {"url": "modbus://plc?coil=16&chute=7", "pull_chute": "7", "hold_chute": "7"}),
        # The controller asks: its requests are the reads, so the station has no scanner of its own.
        ({}, {"url": "tcp://10.0.0.1:2112?mode=request&ack_timeout=0.2"}),
        (SCANNER_OK, {"url": "serial:///dev/ttyS1?baudrate=19200&chute=R1"}),
    ],
)
def test_good_device_settings_pass(
    tmp_path: Path, devices: dict[str, str], sorter: dict[str, str] | None
) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(toml(devices, sorter), encoding="utf-8")
    assert "valid edge configuration" in check_config(path, "edge")


def test_models_check_urls_when_built_in_code_too() -> None:
    with pytest.raises(ValueError, match="unknown option"):
        DevicesConfig(scanner="fake://x.jsonl?sped=0")
    with pytest.raises(ValueError, match="pull_chute"):
        SorterConfig(url="modbus://plc")
    assert SorterConfig(url=None, pull_chute="anything").pull_chute == "anything"


def test_demo_station_configs_still_validate(tmp_path: Path) -> None:
    from edge.config import ClassifierConfig
    from edge.demo import demo_terminal, station_config

    cfg = station_config(
        "S-A",
        "L1",
        tmp_path,
        tmp_path / "reads.jsonl",
        "tcp://127.0.0.1:5000",
        "http://x",
        ClassifierConfig(),
        demo_terminal("246810"),
    )
    assert cfg.sorter.url == "tcp://127.0.0.1:5000" and (cfg.devices.scanner or "").startswith("fake://")
