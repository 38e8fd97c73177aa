"""Weighing barcode reads across ladder steps: confirmation, rival texts on the same bars, settling."""

from __future__ import annotations

import numpy as np
import zxingcpp

from scanner_drivers.barcodes.engines import EngineRead, read_pyzbar, read_zxing
from scanner_drivers.barcodes.evidence import Evidence, same_bars


def line(
    text: str,
    y: float,
    rows: float = 1.0,
    *,
    x: float = 100.0,
    length: float = 200.0,
    engine: str = "zxing-cpp",
    symbology: str = "EAN13",
    confident: bool | None = None,
) -> EngineRead:
    """A linear read across the bars from x to x+length, rows pixels thick, starting at row y."""
    corners = ((x, y), (x + length, y), (x + length, y + rows), (x, y + rows))
    return EngineRead(text, symbology, engine, corners, rows >= 5 if confident is None else confident)


def evidence() -> Evidence:
    return Evidence(settled_rows=20.0, contest_ratio=3.0, pyzbar_weight=2.0)


def test_thin_read_needs_a_second_step_and_its_own_duplicates_do_not_count() -> None:
    ev = evidence()
    ev.add("zxing/raw", [line("0012345678905", 50), line("0012345678905", 51)])
    assert ev.accepted() == []
    ev.add("pyzbar/raw", [line("012345678905", 40, 30, engine="pyzbar", symbology="UPCA", confident=False)])
    assert [r.text for r in ev.accepted()] == ["0012345678905"]
    # Two thin reads span two rows: accepted, but not enough to stop the ladder.
    assert not ev.settled()


def test_tall_uncontested_read_settles() -> None:
    ev = evidence()
    ev.add("zxing/raw", [line("5901234123457", 40, 60)])
    assert [r.text for r in ev.accepted()] == ["5901234123457"] and ev.settled()


def test_rival_texts_on_the_same_bars_give_no_code_until_one_outweighs_the_others() -> None:
    ev = evidence()
    # Two steps agree on a misread, on rows far from each other but across the same bars.
    ev.add("zxing/raw", [line("9074932437075", 10, 4)])
    ev.add("pyzbar/raw", [line("9074932437075", 20, 60, engine="pyzbar", confident=False)])
    assert [r.text for r in ev.accepted()] == ["9074932437075"] and not ev.settled()
    ev.add("zxing/upscale", [line("0023942431015", 110, 10)])
    # 10 rows against 4 + 2: contested, so neither is given.
    assert ev.accepted() == [] and not ev.settled()
    ev.add("zxing/upscale-contrast", [line("0023942431015", 40, 60)])
    # 70 rows against 6: the heavier text is kept, but a rival was seen, so the ladder may go on.
    assert [r.text for r in ev.accepted()] == ["0023942431015"]
    assert not ev.settled() and ev.retail_in_doubt()


def test_retail_doubt_is_an_unconfirmed_thin_or_contested_code() -> None:
    ev = evidence()
    ev.add("zxing/raw", [line("PG1", 40, 30, symbology="Code128"), line("PG2", 140, 2, symbology="Code128")])
    assert not ev.retail_in_doubt()
    ev.add("pyzbar/raw", [line("4006381333931", 240, 1, engine="pyzbar", confident=False)])
    assert ev.retail_in_doubt() and ev.accepted()[0].text == "PG1"
    ev.add("zxing/raw", [line("4006381333931", 240, 8)])
    assert ev.retail_in_doubt()
    ev.add("zxing/upscale", [line("4006381333931", 240, 30)])
    assert not ev.retail_in_doubt()
    # The thin, unconfirmed Code 128 is not given and does not hold the ladder.
    assert [r.text for r in ev.accepted()] == ["PG1", "4006381333931"] and ev.settled()


def test_confident_reads_that_disagree_cancel_out() -> None:
    ev = evidence()
    ev.add("zxing/raw", [line("4006381333931", 40, 30)])
    ev.add("zxing/adaptive", [line("4006381333986", 80, 25)])
    assert ev.accepted() == []


def test_codes_side_by_side_or_stacked_apart_are_separate_places() -> None:
    ev = evidence()
    beside = line("5901234123457", 40, 60, x=400)
    below = line("4006381333931", 250, 60)
    ev.add("zxing/raw", [line("0012345678905", 40, 60), beside, below])
    assert sorted(r.text for r in ev.accepted()) == ["0012345678905", "4006381333931", "5901234123457"]
    assert ev.settled()
    assert not same_bars(line("a", 40, 60), beside) and not same_bars(line("a", 40, 60), below)
    assert same_bars(line("a", 40, 1), line("b", 130, 1))


def test_other_linear_codes_with_different_texts_are_different_codes() -> None:
    ev = evidence()
    # Shipping labels stack Code 128s close together: a different text near by is a second code.
    ev.add("zxing/raw", [line("PG1", 40, 30, symbology="Code128"), line("PG2", 75, 30, symbology="Code128")])
    assert sorted(r.text for r in ev.accepted()) == ["PG1", "PG2"] and ev.settled()


def test_matrix_codes_are_kept_as_read() -> None:
    square = ((10.0, 10.0), (90.0, 10.0), (90.0, 90.0), (10.0, 90.0))
    ev = evidence()
    ev.add("zxing/raw", [EngineRead("outer", "QRCode", "zxing-cpp", square, True)])
    ev.add("zxing/raw", [EngineRead("inner", "QRCode", "zxing-cpp", square, True)])
    assert sorted(r.text for r in ev.accepted()) == ["inner", "outer"] and ev.settled()


def test_engine_reads_of_a_generated_code_agree_and_settle() -> None:
    barcode = zxingcpp.create_barcode("5901234123457", zxingcpp.BarcodeFormat.EAN13)
    img = np.full((260, 440), 255, np.uint8)
    code = np.array(zxingcpp.write_barcode_to_image(barcode, scale=3), dtype=np.uint8)
    img[40 : 40 + code.shape[0], 50 : 50 + code.shape[1]] = code
    ev = evidence()
    ev.add("zxing/raw", read_zxing(img))
    ev.add("pyzbar/raw", read_pyzbar(img))
    assert [r.text for r in ev.accepted()] == ["5901234123457"] and ev.settled()
