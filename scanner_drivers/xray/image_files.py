"""Read and check one image file from a device: JPEG, PNG, BMP, TIFF (8/16 bit) as is, DICOM/DICOS to PNG."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

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


class ImageFileError(ValueError):
    """An image file is corrupt, truncated, empty, too large or of a type the drivers do not take."""


def load_image_file(path: Path) -> tuple[bytes, str]:
    """Return (encoded bytes, content type) after proving the image decodes; DICOM becomes 16-bit PNG."""
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return _dicom_to_png(path), "image/png"
    content_type = CONTENT_TYPES.get(suffix)
    if content_type is None:
        raise ImageFileError(f"{path.name}: not a JPEG, PNG, BMP, TIFF or DICOM file name")
    data = path.read_bytes()
    check_image_bytes(data, path.name)
    return data, content_type


def check_image_bytes(data: bytes, name: str) -> np.ndarray:
    """Decode fully (so truncated files are caught) and return the pixels; ImageFileError otherwise."""
    if not data:
        raise ImageFileError(f"{name}: empty file")
    buf = np.frombuffer(data, dtype=np.uint8)
    # The header alone tells the size: refuse decompression bombs before decoding them.
    if _header_pixels(buf) > MAX_PIXELS:
        raise ImageFileError(f"{name}: image is over {MAX_PIXELS} pixels")
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageFileError(f"{name}: cannot be decoded (corrupt or truncated)")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        # libjpeg pads a truncated JPEG with grey and only warns. FF D9 cannot occur inside coded
        # data (FF is stuffed there), so its absence near the end means the file was cut.
        raise ImageFileError(f"{name}: JPEG is truncated (no end-of-image marker)")
    return np.asarray(image)


def _header_pixels(buf: np.ndarray) -> int:
    # PNG keeps width and height at fixed offsets of its IHDR chunk; other formats are bounded by
    # the file size limit.
    raw = buf[:24].tobytes()
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        return int.from_bytes(raw[16:20], "big") * int.from_bytes(raw[20:24], "big")
    return 0


def _dicom_to_png(path: Path) -> bytes:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except (InvalidDicomError, AttributeError, ValueError, KeyError, OSError, RuntimeError) as exc:
        raise ImageFileError(f"{path.name}: not a readable DICOM/DICOS image ({exc})") from None
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        # A multi-frame (CT-like) series: take the middle slice as the projection to look at.
        arr = arr[arr.shape[0] // 2]
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ImageFileError(f"{path.name}: DICOM pixel data has an unusable shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 65535).astype(np.uint16)
    ok, png = cv2.imencode(".png", arr)
    if not ok:
        raise ImageFileError(f"{path.name}: DICOM pixels could not be re-encoded")
    return bytes(png.tobytes())
