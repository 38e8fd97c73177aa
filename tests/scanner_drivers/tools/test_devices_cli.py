"""`parcelguard devices listen/divert` against the fake scanner, a hot folder and the simulated sorter."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from scanner_drivers.scanners.fake_serial import FakeSerialScanner
from scanner_drivers.sorter.sim import SimulatedSorter
from scanner_drivers.tools import devices_cli
from scanner_drivers.types import DeviceUrlError


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench").add_subparsers(dest="bench")
    devices_cli.register(commands, bench)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_divert_prints_the_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    sim = SimulatedSorter("tcp", miss=lambda tid: tid == "MISSME")
    url = sim.start()
    try:
        assert _run(["devices", "divert", url, "EA123456785CN", "--chute", "R2"]) == 0
        assert capsys.readouterr().out.startswith("DIVERTED chute=R2")
        assert _run(["devices", "divert", url, "MISSME"]) == 1
        assert capsys.readouterr().out.startswith("MISSED")
    finally:
        sim.stop()
    assert _run(["devices", "divert", url, "EA1", "--deadline", "0.3"]) == 1
    assert capsys.readouterr().out.startswith("TIMEOUT (sorter unreachable")


def test_divert_with_a_bad_url_raises_for_the_dispatcher() -> None:
    with pytest.raises(DeviceUrlError):
        _run(["devices", "divert", "tcp://127.0.0.1:5000?colour=red", "EA1"])


def test_listen_prints_frames_heartbeats_and_reads(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeSerialScanner.vendor("zebra", chunk_seed=1)
    url = fake.start() + "?preset=zebra"
    try:
        assert _run(["devices", "listen", url, "--count", "2", "--json", "--seconds", "20"]) == 0
    finally:
        fake.stop()
    events = _json_lines(capsys.readouterr().out)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "up"
    assert {"event": "frame", "raw": "MOTEVTHB:001", "meaning": "heartbeat"}.items() <= events[1].items()
    reads = [e for e in events if e["event"] in ("read", "no-read")]
    assert reads[0]["codes"] == [{"text": "EA123456785CN", "symbology": "unknown"}]
    assert reads[1]["event"] == "no-read"


def test_listen_to_a_hot_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4), np.uint8))
    (tmp_path / "b.tif").write_bytes(b"II*\x00broken")
    url = f"folder://{tmp_path}?settle_ms=0&poll_ms=20"
    assert _run(["devices", "listen", url, "--count", "1", "--seconds", "20"]) == 0
    out = capsys.readouterr().out
    assert "image" in out and "name=a.png" in out
    assert (tmp_path / "quarantine" / "b.tif").exists()


def test_listen_to_a_replay_ends_with_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "s.jsonl"
    scenario.write_text('{"codes": ["EA123456785CN"]}\n{"codes": []}\n')
    assert _run(["devices", "listen", f"fake://{scenario}?speed=0", "--seconds", "20"]) == 0
    out = capsys.readouterr().out
    assert "EA123456785CN" in out and "no-read" in out and "replay finished" in out


def test_listen_to_a_camera_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cv2.imwrite(str(tmp_path / "f1.png"), np.zeros((4, 4), np.uint8))
    assert _run(["devices", "listen", f"images://{tmp_path}", "--interval", "0", "--seconds", "20"]) == 0
    out = capsys.readouterr().out
    assert "kind=camera" in out and "no more images" in out


def test_simulator_and_fake_scanner_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["devices", "simulate-sorter", "--protocol", "serial", "--seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("serial:///dev/") and "received=0" in out
    assert _run(["devices", "fake-scanner", "honeywell-aim", "--seconds", "0.2"]) == 0
    assert "preset=honeywell&aim=1" in capsys.readouterr().out
    assert _run(["devices", "fake-scanner", "acme", "--seconds", "0.2"]) == 2
