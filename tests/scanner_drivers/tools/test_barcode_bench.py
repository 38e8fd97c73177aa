"""The barcode benchmark and the `barcodes` command group, on generated sets and a few shared samples."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp

from edge.cli import main
from scanner_drivers.tools.barcode_bench import find_samples, format_table, half_of, run_bench

QR_TEXT = "RR123456785CN\x1d420\r\nline two"


def _write_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    path.write_bytes(bytes(buf))


def _render(text: str, fmt: zxingcpp.BarcodeFormat, scale: int = 3) -> np.ndarray:
    img = np.array(zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(text, fmt), scale=scale))
    return np.pad(img, 20, constant_values=255)


@pytest.fixture()
def sample_dir(tmp_path: Path) -> Path:
    root = tmp_path / "samples"
    _write_png(root / "code128-1" / "1.png", _render("PG1234567890CN", zxingcpp.BarcodeFormat.Code128))
    (root / "code128-1" / "1.txt").write_text("PG1234567890CN")
    # UPC-A expected as EAN-13 with a leading 0, the way the sample sets write it.
    _write_png(root / "upca-1" / "1.png", _render("036000291452", zxingcpp.BarcodeFormat.UPCA))
    (root / "upca-1" / "1.txt").write_text("0036000291452")
    _write_png(root / "qrcode-1" / "1.png", _render(QR_TEXT, zxingcpp.BarcodeFormat.QRCode, 4))
    (root / "qrcode-1" / "1.txt").write_bytes(QR_TEXT.replace("\r\n", "\n").encode())
    _write_png(root / "falsepositives-1" / "blank.png", np.full((80, 120), 255, np.uint8))
    _write_png(
        root / "falsepositives-1" / "noise.png", np.random.default_rng(1).integers(0, 255, (90, 90), np.uint8)
    )
    (root / "falsepositives-1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _write_png(root / "multi-1" / "two.png", _render("ABC", zxingcpp.BarcodeFormat.QRCode))
    return root


def test_find_samples_sorts_labelled_negative_and_skipped(sample_dir: Path) -> None:
    samples, skipped = find_samples(sample_dir)
    assert sum(s.expected is not None for s in samples) == 3
    assert sum(s.expected is None for s in samples) == 3
    assert skipped == ["multi-1/two.png"]
    with pytest.raises(FileNotFoundError):
        find_samples(sample_dir / "missing")


def test_bench_counts_reads_wrongs_and_unreadable_files(sample_dir: Path) -> None:
    results = run_bench(sample_dir)
    ours = results["readers"]["parcelguard"]
    assert ours["read"] == 3 and ours["labelled"] == 3 and ours["wrong_reads"] == 0
    assert results["readers"]["zxing-cpp"]["read"] == 3
    assert results["samples"]["unreadable_files"] == ["falsepositives-1/broken.png"]
    assert ours["errors"] == 1
    assert set(results["machine"]) >= {"platform", "cpus", "python", "zxing-cpp", "pyzbar"}
    assert "modulo presentation" in results["method"]
    table = format_table(results)
    for name in ("parcelguard", "zxing-cpp", "pyzbar", "median ms", "p95 ms", "wrong"):
        assert name in table


def test_bench_command_prints_the_table_and_writes_results(
    sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results" / "barcodes.json"
    assert main(["bench", "barcodes", str(sample_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parcelguard" in printed and str(out) in printed
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["benchmark"] == "barcodes" and written["readers"]["parcelguard"]["read"] == 3


def test_bench_command_defaults_to_bench_results_folder(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "barcodes", str(sample_dir), "--limit", "2"]) == 0
    assert len(list((tmp_path / "bench-results").glob("barcodes-*.json"))) == 1


def test_bench_on_missing_folder_is_an_io_error(tmp_path: Path) -> None:
    assert main(["bench", "barcodes", str(tmp_path / "nowhere")]) == 3


def test_decode_command_json_shape_and_exact_text(
    sample_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [sample_dir / "qrcode-1" / "1.png", sample_dir / "falsepositives-1" / "blank.png"]
    assert main(["barcodes", "decode", *map(str, paths), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["path"] == str(paths[0])
    assert [c["text"] for c in first["codes"]] == [QR_TEXT]
    assert set(first["codes"][0]) >= {"text", "symbology", "engine"}
    assert first["codes"][0]["symbology"] == "QRCode" and isinstance(first["ms"], float)
    # Control characters appear once, as JSON escapes, never doubled or dropped.
    assert "\\u001d" in lines[0] and "\\\\u001d" not in lines[0]
    assert second["codes"] == []


def test_decode_command_reports_bad_files_and_goes_on(
    sample_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [
        sample_dir / "falsepositives-1" / "broken.png",
        sample_dir / "nope.png",
        sample_dir / "code128-1" / "1.png",
    ]
    assert main(["barcodes", "decode", *map(str, paths), "--json"]) == 2
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o.get("error", {}).get("code") for o in objects] == ["bad_image", "bad_image", None]
    assert objects[2]["codes"][0]["text"] == "PG1234567890CN"
    assert main(["barcodes", "decode", str(paths[2]), "--engine", "pyzbar"]) == 0
    assert "[pyzbar] 'PG1234567890CN'" in capsys.readouterr().out


def test_small_bench_on_shared_samples(repo_root: Path, tmp_path: Path) -> None:
    shared = repo_root.parent / "shared" / "data" / "barcodes"
    if not shared.is_dir():
        pytest.skip("shared barcode samples are not present")
    subset = tmp_path / "subset"
    subset.mkdir()
    for name in ("qrcode-1", "ean13-3", "upce-1", "falsepositives-2"):
        if not (shared / name).is_dir():
            pytest.skip(f"shared barcode set {name} is not present")
        # Links, not copies: the sample images stay where they are.
        (subset / name).symlink_to(shared / name, target_is_directory=True)
    results = run_bench(subset)
    ours, zxing = results["readers"]["parcelguard"], results["readers"]["zxing-cpp"]
    assert results["samples"]["negative"] > 0
    assert ours["read"] >= zxing["read"] and ours["read_rate_pct"] >= 90.0
    assert not [w for w in ours["wrong"] if w["image"].startswith("falsepositives")]


def test_halves_split_sets_by_series_number() -> None:
    assert [half_of(name) for name in ("ean13-1", "ean13-2", "qrcode-10", "upca-5", "falsepositives")] == [
        "A",
        "B",
        "B",
        "A",
        "A",
    ]


def test_bench_runs_on_one_half_or_on_selected_sets(
    sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_png(sample_dir / "code128-2" / "1.png", _render("RR123456785CN", zxingcpp.BarcodeFormat.Code128))
    (sample_dir / "code128-2" / "1.txt").write_text("RR123456785CN")
    results = run_bench(sample_dir, half="B")
    assert results["samples"]["sets"] == ["code128-2"] and results["samples"]["half"] == "B"
    assert results["readers"]["parcelguard"]["read"] == 1
    assert [r["image"] for r in results["per_image"]] == ["code128-2/1.png"]
    assert results["per_image"][0]["read"]["parcelguard"] == "read"
    assert results["per_image"][0]["steps"] == ["zxing/raw"]
    assert run_bench(sample_dir, half="A")["samples"]["labelled"] == 3
    assert run_bench(sample_dir, select="qr*")["samples"]["sets"] == ["qrcode-1"]
    with pytest.raises(ValueError, match="half must be one of A, B"):
        find_samples(sample_dir, half="C")
    out = tmp_path / "half.json"
    assert main(["bench", "barcodes", str(sample_dir), "--half", "B", "--out", str(out)]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["samples"]["sets"] == ["code128-2"]
    assert "cpu ms" in capsys.readouterr().out
