"""Read and check one image file from a device: JPEG, PNG, BMP, TIFF (8/16 bit) as is, DICOM/DICOS to PNG.

Every file passes the image gate (`scanner_drivers.image_gate`): its header is checked against the limits
before anything is decoded, and the full decode then proves the file is not cut.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from scanner_drivers.image_gate import ImageInfo, ImageLimits, ImageRefused, decode, read_file

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
DICOM_SUFFIXES = (".dcm", ".dcs", ".dicom")
MAX_PIXELS = 100_000_000
# X-ray machines write large images; the byte limit is the hot folder's own (max_mb).
LIMITS = ImageLimits(max_pixels=MAX_PIXELS, formats=frozenset({"jpeg", "png", "bmp", "tiff"}))
DICOM_LIMITS = replace(LIMITS, formats=frozenset({"dicom"}))


class ImageFileError(ImageRefused):
    """An image file is corrupt, truncated, empty, too large or of a type the drivers do not take."""


def load_image_file(path: Path, *, max_bytes: int | None = None) -> tuple[bytes, str]:
    """Return (encoded bytes, content type) after proving the image decodes; DICOM becomes 16-bit PNG.

    The content type is the one the bytes prove, not the one the name suggests.
    """
    suffix = path.suffix.lower()
    limits = LIMITS if max_bytes is None else replace(LIMITS, max_bytes=max_bytes)
    if suffix in DICOM_SUFFIXES:
        return _dicom_to_png(path, replace(limits, formats=DICOM_LIMITS.formats)), "image/png"
    if suffix not in CONTENT_TYPES:
        raise ImageFileError(f"{path.name}: not a JPEG, PNG, BMP, TIFF or DICOM file name", "unknown_format")
    try:
        data = read_file(path, limits)
    except ImageRefused as exc:
        raise ImageFileError(f"{path.name}: {exc}", exc.reason) from None
    info, _ = _decode(data, path.name, limits)
    return data, info.content_type


def check_image_bytes(data: bytes, name: str) -> np.ndarray:
    """Decode fully (so truncated files are caught) and return the pixels; ImageFileError otherwise."""
    return _decode(data, name, LIMITS)[1]


def _decode(
    data: bytes, name: str, limits: ImageLimits, fmt: str | None = None
) -> tuple[ImageInfo, np.ndarray]:
    try:
        info, pixels = decode(data, limits, format=fmt)
    except ImageRefused as exc:
        raise ImageFileError(f"{name}: {exc}", exc.reason) from None
    return info, np.asarray(pixels)


def _dicom_to_png(path: Path, limits: ImageLimits) -> bytes:
    try:
        data = read_file(path, limits)
    except ImageRefused as exc:
        raise ImageFileError(f"{path.name}: {exc}", exc.reason) from None
    _, arr = _decode(data, path.name, limits, "dicom")
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        # A multi-frame (CT-like) series: take the middle slice as the projection to look at.
        arr = arr[arr.shape[0] // 2]
    elif arr.ndim == 4:
        arr = arr[arr.shape[0] // 2]
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ImageFileError(f"{path.name}: DICOM pixel data has an unusable shape {arr.shape}", "bad_header")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 65535).astype(np.uint16)
    ok, png = cv2.imencode(".png", arr)
    if not ok:
        raise ImageFileError(f"{path.name}: DICOM pixels could not be re-encoded", "decode_failed")
    return bytes(png.tobytes())
