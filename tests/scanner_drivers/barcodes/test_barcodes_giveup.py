"""The early give-up: images with nothing code-like stop after a few steps; codes are still read."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import zxingcpp

from scanner_drivers.barcodes.reader import BarcodeSettings, read_barcodes
from scanner_drivers.barcodes.structure import MIN_EDGE_DENSITY, edge_density, looks_featureless

Grey = npt.NDArray[np.uint8]
RNG_SEED = 11


def render(text: str, fmt: zxingcpp.BarcodeFormat, scale: int) -> Grey:
    img = np.array(zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(text, fmt), scale=scale))
    return np.ascontiguousarray(np.pad(img.astype(np.uint8), 40, constant_values=255))


def bars(module: int, blur: float = 0.0) -> Grey:
    img = np.tile(((np.arange(480) // module) % 2 * 255).astype(np.uint8), (240, 1))
    return np.asarray(cv2.GaussianBlur(img, (0, 0), blur), np.uint8) if blur else img


def rotated(img: Grey, degrees: float) -> Grey:
    side = int(np.hypot(*img.shape)) + 20
    canvas = np.full((side, side), 255, np.uint8)
    top, left = (side - img.shape[0]) // 2, (side - img.shape[1]) // 2
    canvas[top : top + img.shape[0], left : left + img.shape[1]] = img
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(canvas, matrix, (side, side), borderValue=255), np.uint8)


def featureless_images() -> dict[str, Grey]:
    rng = np.random.default_rng(RNG_SEED)
    noise = rng.integers(0, 256, (300, 400), dtype=np.uint8)
    edge = np.zeros((300, 400), np.uint8)
    edge[:, 200:] = 255
    return {
        "white": np.full((300, 400), 255, np.uint8),
        "black": np.zeros((300, 400), np.uint8),
        "shade": np.tile(np.linspace(0, 255, 400).astype(np.uint8), (300, 1)),
        "noise": noise,
        "soft noise": np.asarray(cv2.GaussianBlur(noise, (0, 0), 1.5), np.uint8),
        "faint noise": np.clip(128 + rng.normal(0, 6, (300, 400)), 0, 255).astype(np.uint8),
        "one edge": edge,
    }


@pytest.mark.parametrize("name", list(featureless_images()))
def test_images_without_code_like_edges_score_low(name: str) -> None:
    assert edge_density(featureless_images()[name]) < MIN_EDGE_DENSITY
    assert looks_featureless(featureless_images()[name])


@pytest.mark.parametrize("module", [1, 2, 3, 5, 8, 12, 20, 30])
def test_sharp_bars_score_at_least_half_an_edge_per_module(module: int) -> None:
    density = edge_density(bars(module))
    assert density >= MIN_EDGE_DENSITY
    # About 1/module at full size; large modules score higher through the shrunk copy.
    assert 0.5 / module <= density <= 1.5


def test_blurred_bars_still_score_as_code_like() -> None:
    assert edge_density(bars(6, blur=6.0)) >= MIN_EDGE_DENSITY
    # Blur far past the module leaves nothing a step could read; a lone edge is not a code.
    assert edge_density(bars(6, blur=12.0)) < MIN_EDGE_DENSITY
    assert edge_density(featureless_images()["one edge"]) == pytest.approx(1 / 25, rel=0.25)


@pytest.mark.parametrize(
    "fmt",
    [
        zxingcpp.BarcodeFormat.Code128,
        zxingcpp.BarcodeFormat.EAN13,
        zxingcpp.BarcodeFormat.QRCode,
        zxingcpp.BarcodeFormat.DataMatrix,
        zxingcpp.BarcodeFormat.PDF417,
        zxingcpp.BarcodeFormat.Aztec,
    ],
)
@pytest.mark.parametrize("scale", [1, 3])
@pytest.mark.parametrize("degrees", [0, 30])
def test_every_symbology_scores_as_code_like_at_any_angle(
    fmt: zxingcpp.BarcodeFormat, scale: int, degrees: float
) -> None:
    text = "5901234123457" if fmt == zxingcpp.BarcodeFormat.EAN13 else "PG1234567890CN"
    assert not looks_featureless(rotated(render(text, fmt, scale), degrees))


@pytest.mark.parametrize("name", ["white", "noise", "soft noise", "one edge"])
def test_a_featureless_image_gives_up_after_the_first_steps(name: str) -> None:
    settings = BarcodeSettings(deadline_ms=0)
    result = read_barcodes(featureless_images()[name], settings, cpu_clock=lambda: 0.0)
    assert result.gave_up and not result.budget_spent
    assert result.steps_tried == settings.ladder[: settings.give_up_after]
    assert result.codes == () and result.step is None


def test_giving_up_can_be_switched_off() -> None:
    settings = BarcodeSettings(deadline_ms=0, give_up_after=0)
    result = read_barcodes(featureless_images()["white"], settings, cpu_clock=lambda: 0.0)
    assert not result.gave_up and result.steps_tried == settings.ladder


def test_a_diagonal_code_the_first_steps_miss_is_still_read() -> None:
    img = rotated(render("PG1234567890CN", zxingcpp.BarcodeFormat.Code128, 3), 45)
    first = BarcodeSettings(deadline_ms=0, ladder=BarcodeSettings().ladder[:3])
    assert read_barcodes(img, first, cpu_clock=lambda: 0.0).codes == ()
    result = read_barcodes(img, BarcodeSettings(deadline_ms=0), cpu_clock=lambda: 0.0)
    assert not result.gave_up
    assert [c.text for c in result.codes] == ["PG1234567890CN"]
    assert len(result.steps_tried) > 3


def test_an_image_with_a_doubtful_read_is_not_given_up() -> None:
    # One scan row of a retail code: read, but never trusted alone; the ladder must go on to confirm.
    ean = render("5901234123457", zxingcpp.BarcodeFormat.EAN13, 3)
    strip = np.ascontiguousarray(ean[ean.shape[0] // 2 : ean.shape[0] // 2 + 1, :])
    result = read_barcodes(strip, BarcodeSettings(deadline_ms=0), cpu_clock=lambda: 0.0)
    assert not result.gave_up
    assert [c.text for c in result.codes] == ["5901234123457"]
