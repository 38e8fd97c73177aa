"""Thin adapters over the barcode engines (zxing-cpp, pyzbar) and the text equivalence between reads."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import zxingcpp

from scanner_drivers.types import Code

log = logging.getLogger(__name__)

GreyImage = npt.NDArray[np.uint8]
Point = tuple[float, float]

ENGINE_ZXING = "zxing-cpp"
ENGINE_PYZBAR = "pyzbar"

# Symbologies protected by Reed-Solomon error correction: a decode that succeeds is trustworthy even
# from a poor image. Linear codes carry at most a weak check digit, so they need more evidence.
MATRIX_SYMBOLOGIES = frozenset(
    {
        "QRCode",
        "MicroQRCode",
        "RMQRCode",
        "DataMatrix",
        "PDF417",
        "MicroPDF417",
        "CompactPDF417",
        "Aztec",
        "AztecCode",
        "AztecRune",
        "MaxiCode",
        "SQCode",
    }
)

# zxing-cpp's decoders for retail codes (ISBN is read as EAN-13): all that can confirm or contest a
# retail read, and several times cheaper than every decoder together on a magnified image.
RETAIL_FORMATS = (
    zxingcpp.BarcodeFormat.EAN13,
    zxingcpp.BarcodeFormat.EAN8,
    zxingcpp.BarcodeFormat.UPCA,
    zxingcpp.BarcodeFormat.UPCE,
)

# zbar's type names mapped onto zxing-cpp's format names, so that one code read by both engines has
# one symbology name.
_PYZBAR_SYMBOLOGY = {
    "EAN13": "EAN13",
    "ISBN13": "EAN13",
    "EAN8": "EAN8",
    "UPCA": "UPCA",
    "UPCE": "UPCE",
    "ISBN10": "ISBN10",
    "EAN2": "EAN2",
    "EAN5": "EAN5",
    "I25": "ITF",
    "CODABAR": "Codabar",
    "CODE39": "Code39",
    "CODE93": "Code93",
    "CODE128": "Code128",
    "QRCODE": "QRCode",
    "PDF417": "PDF417",
    "SQCODE": "SQCode",
    "DATABAR": "DataBar",
    "DATABAR_EXP": "DataBarExp",
}

# zbar's default set without DataBar (its decoder asserts on noise; zxing-cpp reads DataBar) and
# without UPC-A, which zbar then reports as EAN-13 with a leading 0 like zxing-cpp does.
_PYZBAR_ENABLED = (
    "EAN8",
    "EAN13",
    "UPCE",
    "I25",
    "CODABAR",
    "CODE39",
    "CODE93",
    "CODE128",
    "QRCODE",
    "PDF417",
)

_CODABAR = re.compile(r"[A-DTNE*]([0-9\-$:/.+]*)[A-DTNE*]")


@dataclass(frozen=True)
class EngineRead:
    """One code as an engine reported it, with its corners in the coordinates of the image it was given."""

    text: str
    symbology: str
    engine: str
    corners: tuple[Point, ...]
    # The engine's own evidence is strong enough to use the read without a second opinion.
    confident: bool


class EngineUnavailableError(OSError):
    """A barcode engine cannot be loaded (for pyzbar: the libzbar0 system package is missing)."""


def is_matrix(symbology: str) -> bool:
    return symbology in MATRIX_SYMBOLOGIES


def linear_rows(corners: tuple[Point, ...]) -> float:
    """How far a linear code's detection extends across its bars (zxing-cpp: top edge to bottom edge)."""
    if len(corners) != 4:
        return 0.0
    top_left, top_right, bottom_right, bottom_left = corners
    return (math.dist(top_left, bottom_left) + math.dist(top_right, bottom_right)) / 2


def read_zxing(
    grey: GreyImage,
    *,
    binarizer: str = "local",
    min_linear_lines: float = 5.0,
    try_harder: bool = True,
    try_invert: bool | None = None,
    formats: Sequence[zxingcpp.BarcodeFormat] | None = None,
) -> list[EngineRead]:
    """Decode with zxing-cpp (every format, or only formats); text is the content as encoded
    (TextMode.Plain, no HRI rewriting)."""
    binarizers = {
        "local": zxingcpp.Binarizer.LocalAverage,
        "global": zxingcpp.Binarizer.GlobalHistogram,
        "fixed": zxingcpp.Binarizer.FixedThreshold,
    }
    # Every format unless told otherwise: the call is then exactly zxing-cpp's default one.
    only: dict[str, Any] = {"formats": zxingcpp.BarcodeFormats(list(formats))} if formats else {}
    found = zxingcpp.read_barcodes(
        grey,
        **only,
        text_mode=zxingcpp.TextMode.Plain,
        binarizer=binarizers[binarizer],
        try_rotate=try_harder,
        try_downscale=try_harder,
        try_invert=try_harder if try_invert is None else try_invert,
    )
    reads = []
    for barcode in found:
        pos = barcode.position
        corners = tuple(
            (float(p.x), float(p.y)) for p in (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
        )
        symbology = barcode.format.name
        # A linear code found on a sliver of one or two scan lines is how zxing-cpp misreads
        # damaged retail codes; it stays a candidate until another read agrees.
        confident = is_matrix(symbology) or linear_rows(corners) >= min_linear_lines
        reads.append(EngineRead(barcode.text, symbology, ENGINE_ZXING, corners, confident))
    return reads


_pyzbar_module: Any = None


def _pyzbar() -> Any:
    global _pyzbar_module
    if _pyzbar_module is None:
        try:
            from pyzbar import pyzbar
        except ImportError as exc:  # pyzbar raises ImportError when libzbar.so cannot be loaded
            raise EngineUnavailableError(f"pyzbar cannot load libzbar (install libzbar0): {exc}") from exc
        _pyzbar_module = pyzbar
    return _pyzbar_module


def pyzbar_available() -> bool:
    try:
        _pyzbar()
    except EngineUnavailableError:
        return False
    return True


def _decode_zbar_text(data: bytes) -> str:
    # zbar hands out UTF-8 (it converts QR text itself); anything else is kept byte for byte.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_pyzbar(grey: GreyImage, *, linear_alone: bool = False) -> list[EngineRead]:
    """Decode with pyzbar (zbar) over the symbologies in _PYZBAR_ENABLED."""
    pyzbar = _pyzbar()
    symbols = [getattr(pyzbar.ZBarSymbol, name) for name in _PYZBAR_ENABLED]
    try:
        decoded_all = pyzbar.decode(grey, symbols=symbols)
    except ValueError:
        # pyzbar fails computing the box of a symbol zbar gave no outline: treat as no read.
        log.debug("pyzbar could not describe a symbol; ignoring it", exc_info=True)
        return []
    reads = []
    for decoded in decoded_all:
        symbology = _PYZBAR_SYMBOLOGY.get(decoded.type, decoded.type)
        corners = tuple((float(p.x), float(p.y)) for p in decoded.polygon)
        confident = is_matrix(symbology) or linear_alone
        reads.append(
            EngineRead(_decode_zbar_text(decoded.data), symbology, ENGINE_PYZBAR, corners, confident)
        )
    return reads


def bounding_box(corners: tuple[Point, ...]) -> tuple[int, int, int, int] | None:
    if not corners:
        return None
    xs = [p[0] for p in corners]
    ys = [p[1] for p in corners]
    x0, y0 = math.floor(min(xs)), math.floor(min(ys))
    return (x0, y0, math.ceil(max(xs)) - x0, math.ceil(max(ys)) - y0)


def bare_zxing(grey: GreyImage) -> list[Code]:
    """zxing-cpp as it comes (all its defaults), text as encoded: the benchmark's first baseline."""
    return [
        Code(b.text, b.format.name, ENGINE_ZXING, None)
        for b in zxingcpp.read_barcodes(grey, text_mode=zxingcpp.TextMode.Plain)
    ]


def bare_pyzbar(grey: GreyImage) -> list[Code]:
    """pyzbar as it comes (all its defaults): the benchmark's second baseline."""
    return [
        Code(_decode_zbar_text(d.data), _PYZBAR_SYMBOLOGY.get(d.type, d.type), ENGINE_PYZBAR, None)
        for d in _pyzbar().decode(grey)
    ]


def _upce_to_upca(digits: str) -> str | None:
    if len(digits) != 8 or digits[0] not in "01":
        return None
    number_system, body, check = digits[0], digits[1:7], digits[7]
    last = body[5]
    if last in "012":
        expanded = body[0:2] + last + "0000" + body[2:5]
    elif last == "3":
        expanded = body[0:3] + "00000" + body[3:5]
    elif last == "4":
        expanded = body[0:4] + "00000" + body[4]
    else:
        expanded = body[0:5] + "0000" + last
    return number_system + expanded + check


def text_forms(text: str) -> frozenset[str]:
    """The presentations one encoded content can have across engines and sample sets.

    UPC-A shown as EAN-13 with a leading 0, CRLF against LF line ends, Codabar with or without its
    start/stop letters, and UPC-E against its UPC-A expansion.
    """
    text = text.replace("\r\n", "\n")
    forms = {text}
    if text.isascii() and text.isdigit():
        if len(text) == 13 and text[0] == "0":
            forms.add(text[1:])
        expanded = _upce_to_upca(text)
        if expanded is not None:
            forms.add(expanded)
    codabar = _CODABAR.fullmatch(text)
    if codabar:
        forms.add(codabar.group(1))
    return frozenset(forms)


def same_text(a: str, b: str) -> bool:
    """True when two texts are the same content modulo presentation (see text_forms)."""
    return a == b or not text_forms(a).isdisjoint(text_forms(b))
