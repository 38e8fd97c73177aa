"""The barcode reader on generated barcodes: ladder, several codes, exact text, bad images, time budget."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pydantic
import pytest
import zxingcpp

from scanner_drivers.barcodes.engines import RETAIL_FORMATS, read_zxing, same_text, text_forms
from scanner_drivers.barcodes.reader import (
    BarcodeImageError,
    BarcodeResult,
    BarcodeSettings,
    load_image,
    read_barcodes,
)

Grey = npt.NDArray[np.uint8]


def render(text: str, fmt: zxingcpp.BarcodeFormat, scale: int = 3) -> Grey:
    barcode = zxingcpp.create_barcode(text, fmt)
    return np.ascontiguousarray(
        np.array(zxingcpp.write_barcode_to_image(barcode, scale=scale)), dtype=np.uint8
    )


def on_canvas(parts: list[tuple[Grey, int, int]], size: tuple[int, int] = (600, 800)) -> Grey:
    canvas = np.full(size, 255, dtype=np.uint8)
    for img, y, x in parts:
        canvas[y : y + img.shape[0], x : x + img.shape[1]] = img
    return canvas


def png(img: npt.NDArray[np.integer[Any]]) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf)


def read_frozen(
    image: bytes | npt.NDArray[np.generic], settings: BarcodeSettings | None = None
) -> BarcodeResult:
    """Read with a CPU clock that never moves and no deadline: what the ladder can do, whatever the load."""
    unhurried = (settings or BarcodeSettings()).model_copy(update={"deadline_ms": 0})
    return read_barcodes(image, unhurried, cpu_clock=lambda: 0.0)


def texts(image: bytes | npt.NDArray[np.generic], settings: BarcodeSettings | None = None) -> list[str]:
    return [c.text for c in read_frozen(image, settings).codes]


CODE128 = render("PG1234567890CN", zxingcpp.BarcodeFormat.Code128)
EAN13 = render("5901234123457", zxingcpp.BarcodeFormat.EAN13)
QR = render("https://example.com/track/RR123456785CN", zxingcpp.BarcodeFormat.QRCode, scale=4)


@pytest.mark.parametrize(
    ("img", "text", "symbology"),
    [(CODE128, "PG1234567890CN", "Code128"), (EAN13, "5901234123457", "EAN13"), (QR, None, "QRCode")],
)
def test_reads_each_symbology_with_position_and_engine(img: Grey, text: str | None, symbology: str) -> None:
    canvas = on_canvas([(img, 100, 150)])
    result = read_frozen(canvas)
    assert len(result.codes) == 1
    code = result.codes[0]
    assert code.text == (text or "https://example.com/track/RR123456785CN")
    assert code.symbology == symbology
    assert code.engine == "zxing-cpp"
    assert result.step == "zxing/raw"
    assert code.position is not None
    x, y, w, h = code.position
    assert 140 <= x <= 150 + img.shape[1] and 90 <= y <= 100 + img.shape[0]
    assert x + w <= 160 + img.shape[1] and y + h <= 110 + img.shape[0]


def test_reads_several_codes_in_one_image() -> None:
    canvas = on_canvas([(CODE128, 20, 20), (EAN13, 220, 20), (QR, 220, 500)], (450, 700))
    found = read_frozen(canvas).codes
    assert {c.symbology for c in found} == {"Code128", "EAN13", "QRCode"}
    assert "PG1234567890CN" in {c.text for c in found}


def test_one_content_printed_twice_is_two_codes() -> None:
    canvas = on_canvas([(QR, 20, 20), (QR, 20, 260), (EAN13, 250, 20), (EAN13, 250, 420)], (500, 800))
    found = read_frozen(canvas).codes
    assert sorted(c.symbology for c in found) == ["EAN13", "EAN13", "QRCode", "QRCode"]
    assert len({c.position for c in found}) == 4


def test_stacked_shipping_codes_close_together_are_all_read() -> None:
    first = render("PG1234567890CN", zxingcpp.BarcodeFormat.Code128, 2)[10:70]
    second = render("RR123456785CN", zxingcpp.BarcodeFormat.Code128, 2)[10:70]
    canvas = on_canvas([(first, 40, 40), (second, 110, 40)], (220, 500))
    assert sorted(texts(canvas)) == ["PG1234567890CN", "RR123456785CN"]


def test_text_is_exactly_as_encoded_control_characters_included() -> None:
    content = "[)>\x1e06\x1dP445\x1d1PT\x1e\x04\r\nend"
    found = texts(on_canvas([(render(content, zxingcpp.BarcodeFormat.DataMatrix, 6), 50, 50)]))
    assert found == [content]


def rotate(img: Grey, degrees: float) -> Grey:
    side = int(np.hypot(*img.shape)) + 40
    top, left = (side - img.shape[0]) // 2, (side - img.shape[1]) // 2
    square = on_canvas([(img, top, left)], (side, side))
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(square, matrix, (side, side), borderValue=255), dtype=np.uint8)


@pytest.mark.parametrize("degrees", [20, 45, 70, 90, 115, 135, 160, 180])
def test_reads_rotated_linear_code(degrees: float) -> None:
    assert texts(rotate(CODE128, degrees)) == ["PG1234567890CN"]


def test_diagonal_code_needs_the_rotation_step() -> None:
    only_raw = BarcodeSettings(ladder=("zxing/raw",))
    img = rotate(CODE128, 45)
    assert texts(img, only_raw) == []
    result = read_frozen(img)
    assert result.step == "zxing/rotate45"
    # The position is mapped back onto the original image.
    assert result.codes[0].position is not None
    x, y, w, h = result.codes[0].position
    assert x >= 0 and y >= 0 and x + w <= img.shape[1] + 2 and y + h <= img.shape[0] + 2


def test_reads_inverted_and_low_contrast_codes() -> None:
    canvas = on_canvas([(EAN13, 100, 100)])
    patient = BarcodeSettings()
    assert texts(255 - canvas, patient) == ["5901234123457"]
    rng = np.random.default_rng(7)
    faint = 120 + (canvas.astype(np.float64) / 255.0) * 25 + rng.normal(0, 3, canvas.shape)
    assert texts(np.clip(faint, 0, 255).astype(np.uint8), patient) == ["5901234123457"]


def test_reads_blurred_small_code_through_the_ladder() -> None:
    # One pixel per module, out of focus: too soft for the plain pass, sharp enough after contrast.
    small = render("PG1234567890CN", zxingcpp.BarcodeFormat.Code128, 1)
    blurred = np.asarray(cv2.GaussianBlur(on_canvas([(small, 30, 30)], (120, 300)), (0, 0), 0.8), np.uint8)
    assert texts(blurred, BarcodeSettings(ladder=("zxing/raw",))) == []
    result = read_frozen(blurred)
    assert [c.text for c in result.codes] == ["PG1234567890CN"]
    assert result.step != "zxing/raw"


@pytest.mark.parametrize("kind", ["white", "noise", "gradient", "text-like"])
def test_images_without_codes_give_nothing(kind: str) -> None:
    rng = np.random.default_rng(3)
    if kind == "white":
        img = np.full((300, 400), 255, np.uint8)
    elif kind == "noise":
        img = rng.integers(0, 256, (300, 400), dtype=np.uint8)
    elif kind == "gradient":
        img = np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))
    else:
        img = np.full((300, 400), 255, np.uint8)
        for i in range(12):
            cv2.putText(img, "PARCEL 42 FRAGILE", (10, 20 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 0, 2)
    result = read_frozen(img)
    assert result.codes == ()
    assert result.step is None


# ---------------------------------------------------------------- image types and bad images


def test_accepts_encoded_images_and_pixel_types() -> None:
    canvas = on_canvas([(QR, 40, 40)], (300, 300))
    want = ["https://example.com/track/RR123456785CN"]
    assert texts(png(canvas)) == want
    ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok and texts(bytes(jpeg)) == want
    # 16-bit with a narrow range, as X-ray and industrial cameras write it.
    sixteen = (1000 + canvas.astype(np.uint16) * 4).astype(np.uint16)
    assert texts(png(sixteen)) == want
    ok, tiff = cv2.imencode(".tiff", sixteen)
    assert ok and texts(bytes(tiff)) == want
    assert texts(sixteen) == want
    assert texts(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)) == want
    assert texts(canvas[:, :, None]) == want
    assert texts(canvas.astype(np.float32) / 255.0) == want
    assert texts(canvas > 127) == want
    # Transparent background stored as black: must be composed on white, as printed.
    bgra = np.zeros((*canvas.shape, 4), np.uint8)
    bgra[..., 3] = 255 - canvas
    assert texts(png(bgra)) == want
    assert texts(np.asfortranarray(canvas)) == want


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(width: int, height: int) -> bytes:
    """A well-formed PNG that declares a huge size: only the header may be read before refusing it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 10_000, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def bad_images() -> Iterator[tuple[str, bytes | npt.NDArray[np.generic], str]]:
    good = png(on_canvas([(QR, 40, 40)], (300, 300)))
    yield "empty bytes", b"", "empty"
    yield "not an image", b"hello, this is not an image at all", "not a decodable image"
    yield "truncated png", good[: len(good) // 3], "not a decodable image"
    yield "garbage after header", good[:40] + bytes(range(256)) * 4, "not a decodable image"
    yield "bomb, 10^10 pixels", _png_bomb(100_000, 100_000), "over the pixel limit"
    yield "bomb, 10^8 pixels", _png_bomb(10_000, 10_000), "100000000 pixels, over the limit"
    yield "zero-size array", np.zeros((0, 10), np.uint8), "empty image"
    yield "4-d array", np.zeros((2, 2, 2, 2), np.uint8), "unsupported image shape"
    yield "two channels", np.zeros((8, 8, 2), np.uint8), "unsupported image shape"
    yield "complex pixels", np.zeros((8, 8), np.complex64), "unsupported pixel type"
    yield "NaN pixels", np.full((8, 8), np.nan, np.float32), "NaN"
    yield "side over 16 bits", np.full((1, 70_000), 255, np.uint8), "a side is over 65535"
    yield "a path, not the image", "label.png", "got a path"  # type: ignore[misc]


@pytest.mark.parametrize(("label", "image", "message"), list(bad_images()), ids=[b[0] for b in bad_images()])
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bad_images_get_a_named_error(
    label: str, image: bytes | npt.NDArray[np.generic], message: str
) -> None:
    with pytest.raises(BarcodeImageError, match=message):
        read_barcodes(image)


def test_size_limits_are_settings() -> None:
    canvas = on_canvas([(QR, 40, 40)], (300, 300))
    with pytest.raises(BarcodeImageError, match="90000 pixels, over the limit of 1000"):
        read_barcodes(canvas, BarcodeSettings(max_pixels=1000))
    with pytest.raises(BarcodeImageError, match="over the limit of 100"):
        load_image(png(canvas), BarcodeSettings(max_bytes=100))
    assert isinstance(BarcodeImageError("x"), ValueError)


def test_tiny_images_read_as_nothing() -> None:
    assert texts(np.zeros((1, 1), np.uint8)) == []
    assert texts(png(np.full((1, 100), 255, np.uint8))) == []


def test_settings_forbid_unknown_keys_and_steps() -> None:
    with pytest.raises(pydantic.ValidationError):
        BarcodeSettings(budget=10)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        BarcodeSettings(ladder=("zxing/magic",))
    for name, info in BarcodeSettings.model_fields.items():
        assert info.description, name


# ---------------------------------------------------------------- time budget and engines


class FakeClock:
    """A clock that moves only when the reader looks at it, by a fixed step."""

    def __init__(self, step_s: float) -> None:
        self.now = 1000.0
        self.step_s = step_s
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        self.now += self.step_s
        return self.now


def test_budget_spent_stops_the_ladder_after_the_first_step() -> None:
    nothing = np.full((200, 200), 255, np.uint8)
    result = read_barcodes(nothing, BarcodeSettings(budget_ms=50, deadline_ms=0), cpu_clock=FakeClock(0.060))
    assert result.steps_tried == ("zxing/raw",)
    assert result.budget_spent
    assert result.codes == ()


def test_without_budget_pressure_every_step_is_tried() -> None:
    nothing = np.full((200, 200), 255, np.uint8)
    settings = BarcodeSettings(budget_ms=50, deadline_ms=0, give_up_after=0)
    result = read_barcodes(nothing, settings, cpu_clock=FakeClock(0.0))
    assert result.steps_tried == settings.ladder
    assert not result.budget_spent
    assert result.cpu_ms == 0.0


def test_budget_allows_some_steps() -> None:
    nothing = np.full((200, 200), 255, np.uint8)
    # Each clock reading moves 10 ms: start, then one reading per step check.
    settings = BarcodeSettings(budget_ms=35, deadline_ms=0, give_up_after=0)
    result = read_barcodes(nothing, settings, cpu_clock=FakeClock(0.010))
    assert 1 < len(result.steps_tried) < len(BarcodeSettings().ladder)
    assert result.budget_spent


def test_deadline_abandons_a_step_on_an_adversarial_image() -> None:
    # Dense noise makes every detector work hard; no step can finish in a tenth of a millisecond.
    noise = np.random.default_rng(5).integers(0, 256, (1000, 1000), dtype=np.uint8)
    result = read_barcodes(noise, BarcodeSettings(deadline_ms=0.1), cpu_clock=FakeClock(0.0))
    assert result.overran and result.budget_spent
    assert result.codes == () and result.step is None


def test_deadline_leaves_quick_reads_alone() -> None:
    result = read_barcodes(on_canvas([(QR, 10, 10)], (200, 200)), BarcodeSettings(deadline_ms=60_000))
    assert not result.overran and [c.symbology for c in result.codes] == ["QRCode"]


def test_engine_choice_limits_the_steps() -> None:
    nothing = np.full((100, 100), 255, np.uint8)
    result = read_barcodes(
        nothing, BarcodeSettings(engines=("zxing-cpp",), deadline_ms=0), cpu_clock=FakeClock(0.0)
    )
    assert result.steps_tried and all(s.startswith("zxing/") for s in result.steps_tried)
    result = read_frozen(CODE128, BarcodeSettings(engines=("pyzbar",)))
    assert [(c.text, c.engine) for c in result.codes] == [("PG1234567890CN", "pyzbar")]


# ---------------------------------------------------------------- confidence rules


def test_single_scan_line_code_is_confirmed_by_another_step() -> None:
    strip = np.ascontiguousarray(EAN13[EAN13.shape[0] // 2 : EAN13.shape[0] // 2 + 1, :])
    result = read_frozen(strip)
    assert [c.text for c in result.codes] == ["5901234123457"]
    assert result.step != "zxing/raw"
    # A read one row thick never settles: the ladder goes on to its end looking for a rival text.
    ladder = BarcodeSettings(ladder=("zxing/raw", "zxing/contrast", "pyzbar/raw", "zxing/upscale"))
    result = read_frozen(strip, ladder)
    assert [c.text for c in result.codes] == ["5901234123457"]
    # A retail read in doubt sends the ladder to the magnified view next, ahead of the ladder's order,
    # read by the retail decoders only; the full step keeps its place at the end of the ladder.
    assert result.step == "zxing/upscale+retail"
    assert result.steps_tried == (
        "zxing/raw",
        "zxing/upscale+retail",
        "zxing/contrast",
        "pyzbar/raw",
        "zxing/upscale",
    )


def test_tall_clean_code_settles_at_the_first_step() -> None:
    result = read_frozen(on_canvas([(EAN13, 100, 150)]))
    assert [c.text for c in result.codes] == ["5901234123457"]
    assert result.steps_tried == ("zxing/raw",)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("0012345678905", "012345678905", True),
        ("00123457", "0001234000057", True),
        ("A12345B", "12345", True),
        ("line1\r\nline2", "line1\nline2", True),
        ("5901234123457", "5901234123458", False),
        ("ABC", "abc", False),
    ],
)
def test_texts_compare_modulo_presentation(a: str, b: str, same: bool) -> None:
    assert same_text(a, b) is same
    assert a in text_forms(a) or "\r\n" in a
    assert same_text(b, a) is same


def test_retail_decoders_alone_read_retail_codes_only() -> None:
    canvas = on_canvas([(EAN13, 20, 20), (QR, 20, 420)], (400, 800))
    assert {r.symbology for r in read_zxing(canvas)} == {"EAN13", "QRCode"}
    assert [r.symbology for r in read_zxing(canvas, formats=RETAIL_FORMATS)] == ["EAN13"]
