"""The one image gate: every image that enters the system (hot folder, camera, barcode reader, classifier,
server upload) passes here before any decoder allocates for it.

`probe(data, limits)` reads the real size from the header of each accepted format (PNG, JPEG, BMP, TIFF,
WebP, GIF, DICOM without its pixel data) and refuses by bytes, pixel count, side length, aspect ratio,
frame count, decoded memory and header plausibility. `decode(data, limits)` probes, then decodes with
OpenCV or Pillow and checks that the decoded size matches the header. `check_array` applies the same
limits to pixels that arrive as arrays (camera frames). Every refusal and every decoder failure is one
error, `ImageRefused` (a ValueError), whose `reason` is one of `REASONS`.

The module is pure: it imports nothing of ours but its header parsers, so `models` and `server` may use
it (the one named exception to the import direction of the design).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from scanner_drivers.image_headers import (
    BadHeader,
    Header,
    read_bmp,
    read_gif,
    read_jpeg,
    read_png,
    read_tiff,
    read_webp,
    sniff_format,
)

FORMATS = frozenset({"png", "jpeg", "bmp", "tiff", "webp", "gif", "dicom"})
CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "gif": "image/gif",
    "dicom": "application/dicom",
}
REASONS = {
    "empty": "no bytes at all",
    "too_many_bytes": "the encoded file is over max_bytes",
    "unknown_format": "the leading bytes name no format the gate reads",
    "format_not_accepted": "a known format this entry does not take",
    "unsupported": "a variant of a known format that is not accepted (BigTIFF, JPEG inside BMP)",
    "bad_header": "the header is malformed, inconsistent or fails its checksum",
    "truncated": "the file ends early, or holds far too little data for the pixels it declares",
    "zero_size": "a side of zero pixels",
    "too_many_pixels": "width x height over max_pixels",
    "side_too_long": "a side over max_side",
    "side_too_short": "a side under min_side",
    "aspect_ratio": "longer side over max_aspect times the shorter one",
    "too_many_frames": "more pages or frames than max_frames",
    "too_much_memory": "the decoded pixels would take more than max_decoded_bytes",
    "decode_failed": "the decoder refused the data",
    "size_mismatch": "the decoded image is not the size its header declared",
    "out_of_memory": "the decoder ran out of memory",
}


class ImageRefused(ValueError):
    """An image was refused before or while decoding; `reason` is one of `REASONS`.

    Callers keep their own named errors by subclassing this one and re-raising with their wording.
    """

    def __init__(self, message: str, reason: str = "decode_failed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageLimits:
    """What one entry accepts; each caller overrides the fields it needs (`ImageLimits(max_pixels=...)`)."""

    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 20_000
    min_side: int = 1
    max_aspect: float = 40.0
    max_frames: int = 100
    max_decoded_bytes: int = 512 * 1024 * 1024
    formats: frozenset[str] = FORMATS


DEFAULT_LIMITS = ImageLimits()


@dataclass(frozen=True)
class ImageInfo:
    """What the header declares, after the limits accepted it."""

    format: str
    width: int
    height: int
    frames: int
    bytes_per_pixel: float

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def check_size(
    width: int,
    height: int,
    limits: ImageLimits = DEFAULT_LIMITS,
    *,
    frames: int = 1,
    bytes_per_pixel: float = 1.0,
) -> None:
    """Refuse a size (of a header or of an array) that breaks `limits`; `frames` are decoded together."""
    if width <= 0 or height <= 0:
        raise ImageRefused(f"empty image ({width}x{height} pixels)", "zero_size")
    if width * height > limits.max_pixels:
        raise ImageRefused(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {limits.max_pixels}",
            "too_many_pixels",
        )
    if max(width, height) > limits.max_side:
        raise ImageRefused(
            f"image is {width}x{height} pixels: a side is over {limits.max_side}", "side_too_long"
        )
    if min(width, height) < limits.min_side:
        raise ImageRefused(
            f"image of {width}x{height} pixels is too small (a side under {limits.min_side})",
            "side_too_short",
        )
    if max(width, height) > limits.max_aspect * min(width, height):
        raise ImageRefused(
            f"image of {width}x{height} pixels is over the {limits.max_aspect:g}:1 aspect ratio limit",
            "aspect_ratio",
        )
    if frames > limits.max_frames:
        raise ImageRefused(
            f"image has {frames} frames, over the limit of {limits.max_frames}", "too_many_frames"
        )
    decoded = math.ceil(width * height * frames * bytes_per_pixel)
    if decoded > limits.max_decoded_bytes:
        raise ImageRefused(
            f"image of {width}x{height} x {frames} frames would take {decoded} bytes decoded, "
            f"over the limit of {limits.max_decoded_bytes}",
            "too_much_memory",
        )


def check_array(array: npt.NDArray[np.generic], limits: ImageLimits = DEFAULT_LIMITS) -> None:
    """The same limits for pixels that arrive as an array (HxW or HxWxC)."""
    if array.ndim not in (2, 3):
        raise ImageRefused(f"image array of shape {array.shape} is neither HxW nor HxWxC", "bad_header")
    channels = array.shape[2] if array.ndim == 3 else 1
    check_size(
        int(array.shape[1]), int(array.shape[0]), limits, bytes_per_pixel=float(array.itemsize * channels)
    )


def probe(data: bytes, limits: ImageLimits = DEFAULT_LIMITS, *, format: str | None = None) -> ImageInfo:
    """The header's real size after every check, without decoding; `format` forces one (DICOM by name)."""
    if not data:
        raise ImageRefused("empty image (0 bytes)", "empty")
    if len(data) > limits.max_bytes:
        raise ImageRefused(
            f"image is {len(data)} bytes, over the limit of {limits.max_bytes}", "too_many_bytes"
        )
    fmt = format or sniff_format(data)
    if fmt is None:
        raise ImageRefused(
            f"not an image the gate reads ({len(data)} bytes starting {data[:8].hex()})", "unknown_format"
        )
    if fmt not in limits.formats:
        raise ImageRefused(
            f"{fmt} images are not accepted here (only {', '.join(sorted(limits.formats))})",
            "format_not_accepted",
        )
    try:
        header = _read_header(fmt, data, limits)
    except BadHeader as exc:
        raise ImageRefused(f"{fmt}: {exc}", exc.reason) from None
    # Only DICOM decodes every frame at once; the other decoders take the first page or frame.
    together = header.frames if fmt == "dicom" else 1
    check_size(header.width, header.height, limits, frames=together, bytes_per_pixel=header.bytes_per_pixel)
    if header.frames > limits.max_frames:
        raise ImageRefused(
            f"image has {header.frames} frames, over the limit of {limits.max_frames}", "too_many_frames"
        )
    for w, h in header.frame_sizes[1:]:
        check_size(w, h, limits, bytes_per_pixel=header.bytes_per_pixel)
    if header.min_coded > header.coded:
        raise ImageRefused(
            f"{fmt} declares {header.width}x{header.height} pixels but holds only {header.coded} bytes of "
            f"image data (at least {int(header.min_coded)} needed): cut or lying",
            "truncated",
        )
    return ImageInfo(fmt, header.width, header.height, header.frames, header.bytes_per_pixel)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the header declares them, with no limits applied; None when it cannot be read."""
    fmt = sniff_format(data)
    if fmt is None or fmt == "dicom":
        return None
    try:
        header = _read_header(fmt, data, DEFAULT_LIMITS)
    except BadHeader:
        return None
    return header.width, header.height


def _read_header(fmt: str, data: bytes, limits: ImageLimits) -> Header:
    try:
        if fmt == "png":
            return read_png(data)
        if fmt == "jpeg":
            return read_jpeg(data)
        if fmt == "bmp":
            return read_bmp(data)
        if fmt == "tiff":
            return read_tiff(data, limits.max_frames)
        if fmt == "webp":
            return read_webp(data)
        if fmt == "gif":
            return read_gif(data, limits.max_frames)
        from scanner_drivers.image_dicom import read_dicom_header

        return read_dicom_header(data)
    except BadHeader:
        raise
    except Exception as exc:
        # The parsers bound every read, so this is a bug or pydicom's own error on crafted input;
        # either way the image is refused, never passed on.
        raise BadHeader("bad_header", f"header cannot be read ({type(exc).__name__}: {exc})") from None


# OpenCV's reduced-size flags decode JPEG at 1/2, 1/4 or 1/8 scale.
_REDUCE = {16: 2, 32: 4, 64: 8}


def decode(
    data: bytes,
    limits: ImageLimits = DEFAULT_LIMITS,
    *,
    flags: int = cv2.IMREAD_UNCHANGED,
    format: str | None = None,
) -> tuple[ImageInfo, npt.NDArray[np.generic]]:
    """Probe, then decode (OpenCV `flags`, BGR channel order) and check the result matches the header."""
    info = probe(data, limits, format=format)
    try:
        if info.format == "dicom":
            from scanner_drivers.image_dicom import decode_dicom

            return info, decode_dicom(data, info.height, info.width, info.frames)
        array: npt.NDArray[np.generic] | None = None
        if info.format not in ("webp", "gif"):
            array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
        if array is None:
            # OpenCV refuses some valid files (small WebP ones); Pillow reads WebP and GIF first anyway.
            array = _decode_with_pillow(data, info, flags)
    except ImageRefused:
        raise
    except BadHeader as exc:
        raise ImageRefused(f"{info.format}: {exc}", exc.reason) from None
    except MemoryError:
        raise ImageRefused(f"{info.format}: out of memory while decoding", "out_of_memory") from None
    except Exception as exc:  # cv2.error, PIL errors, OSError, struct.error ...: all mean "cannot decode"
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ImageRefused(f"{info.format} cannot be decoded: {reason}", "decode_failed") from None
    if array is None or array.size == 0:
        raise ImageRefused(f"{info.format} cannot be decoded (corrupt or truncated)", "decode_failed")
    _check_decoded(info, array, flags)
    return info, np.asarray(array)


def _check_decoded(info: ImageInfo, array: npt.NDArray[np.generic], flags: int) -> None:
    f = _REDUCE.get(flags & 0x70, 1) if flags >= 0 else 1
    want = (-(-info.height // f), -(-info.width // f))
    got = (int(array.shape[0]), int(array.shape[1]))
    # Colour and grey flags apply the EXIF orientation, which may swap the sides; reduced decodes of
    # formats other than JPEG are resized and may round the other way.
    slack = 1 if f > 1 else 0

    def close(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return abs(a[0] - b[0]) <= slack and abs(a[1] - b[1]) <= slack

    ok = close(got, want) or (flags >= 0 and close(got, (want[1], want[0])))
    if info.format == "gif":  # the decoder keeps the logical screen; frames may extend the header's size
        ok = got[0] <= info.height and got[1] <= info.width
    if not ok:
        raise ImageRefused(
            f"{info.format} decoded to {got[1]}x{got[0]} pixels, "
            f"not the {want[1]}x{want[0]} its header declares",
            "size_mismatch",
        )


def _decode_with_pillow(data: bytes, info: ImageInfo, flags: int) -> npt.NDArray[np.generic]:
    with Image.open(io.BytesIO(data)) as img:
        if img.size != (info.width, info.height) and info.format != "gif":
            raise ImageRefused(
                f"{info.format} header reads {img.size[0]}x{img.size[1]} to Pillow, "
                f"{info.width}x{info.height} to the gate",
                "size_mismatch",
            )
        img.load()
        f = _REDUCE.get(flags & 0x70, 1) if flags >= 0 else 1
        out = img.reduce(f) if f > 1 else img
        if flags >= 0 and not flags & 1:
            return np.asarray(out.convert("L"))
        if flags < 0 and out.mode.startswith("I"):
            return np.asarray(out)
        if flags < 0 and out.mode in ("L", "1"):
            return np.asarray(out.convert("L"))
        if flags < 0 and ("A" in out.getbands() or "transparency" in out.info):
            return np.asarray(out.convert("RGBA"))[:, :, [2, 1, 0, 3]].copy()
        return np.asarray(out.convert("RGB"))[:, :, ::-1].copy()


def read_file(path: Path, limits: ImageLimits = DEFAULT_LIMITS) -> bytes:
    """A file's bytes, never more than `limits.max_bytes` read; OSError as the file system raises it."""
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limits.max_bytes:
            raise ImageRefused(
                f"file is {size} bytes, over the limit of {limits.max_bytes}", "too_many_bytes"
            )
        # Read what the file holds, plus one byte to see it grow; read(max_bytes) would allocate max_bytes.
        data = fh.read(min(size, limits.max_bytes) + 1)
    if len(data) > size:
        raise ImageRefused(f"file grew past its {size} bytes while being read", "truncated")
    return data
