"""Image bytes or arrays to 8-bit greyscale for the barcode engines, through the image gate's limits."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from scanner_drivers.image_gate import ImageLimits, ImageRefused, check_array, decode

GreyImage = npt.NDArray[np.uint8]


class BarcodeImageError(ImageRefused):
    """An image is empty, corrupt, of an unsupported pixel type, or over the size limits."""


# zxing-cpp refuses images with a side beyond 16 bits. Barcode images may be long thin strips (a single
# scan line of a linear code), so the aspect limit is far looser than the gate's default.
MAX_SIDE = 65535
MAX_ASPECT = 1000.0
FORMATS = frozenset({"png", "jpeg", "bmp", "tiff", "webp", "gif"})
# Reasons that mean "these bytes are not a readable image", worded as such for the operator.
_UNREADABLE = frozenset(
    {
        "unknown_format",
        "format_not_accepted",
        "unsupported",
        "bad_header",
        "truncated",
        "decode_failed",
        "size_mismatch",
    }
)


def limits_for(max_bytes: int, max_pixels: int) -> ImageLimits:
    return ImageLimits(
        max_bytes=max_bytes, max_pixels=max_pixels, max_side=MAX_SIDE, max_aspect=MAX_ASPECT, formats=FORMATS
    )


def _refused(exc: ImageRefused, data: bytes | None = None) -> BarcodeImageError:
    if exc.reason == "too_many_pixels":
        return BarcodeImageError(f"image is over the pixel limit: {exc}", exc.reason)
    if exc.reason in _UNREADABLE and data is not None:
        head = data[:8].hex()
        return BarcodeImageError(
            f"not a decodable image ({len(data)} bytes starting {head}): {exc}", exc.reason
        )
    return BarcodeImageError(str(exc), exc.reason)


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> GreyImage:
    """Encoded image bytes (PNG, JPEG, WebP, BMP, TIFF, GIF) to an 8-bit greyscale array."""
    limits = limits_for(max_bytes, max_pixels)
    try:
        _, array = decode(data, limits)
    except ImageRefused as exc:
        raise _refused(exc, data) from None
    return to_grey(array, max_pixels=max_pixels)


def to_grey(array: npt.NDArray[np.generic], *, max_pixels: int) -> GreyImage:
    """Any 2-D or HxWxC array (grey, BGR, BGRA; 8/16-bit, float or bool) to contiguous 8-bit grey."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise BarcodeImageError(f"unsupported image shape {array.shape}: need HxW, HxWx1, HxWx3 or HxWx4")
    try:
        check_array(array, limits_for(2**62, max_pixels))
    except ImageRefused as exc:
        raise _refused(exc) from None
    pixels = _to_uint8(array)
    if pixels.ndim == 3:
        if pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
        elif pixels.shape[2] == 3:
            pixels = np.asarray(cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        else:
            # Transparent areas are usually black with alpha 0: put them on white paper, as printed.
            alpha = pixels[:, :, 3].astype(np.float32) / 255.0
            grey = cv2.cvtColor(np.ascontiguousarray(pixels[:, :, :3]), cv2.COLOR_BGR2GRAY).astype(np.float32)
            pixels = (grey * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(pixels, dtype=np.uint8)


def _to_uint8(array: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    if array.dtype == np.uint8:
        return np.asarray(array, dtype=np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise BarcodeImageError("image has NaN or infinite pixel values")
        if np.issubdtype(array.dtype, np.floating) and values.min() >= 0.0 and values.max() <= 1.0:
            return (values * 255.0).round().astype(np.uint8)
        # 16-bit sensors rarely use the whole range: stretch what is there to 0..255.
        low, high = float(values.min()), float(values.max())
        if high <= low:
            return np.full(array.shape, 255, dtype=np.uint8)
        return ((values - low) * (255.0 / (high - low))).round().astype(np.uint8)
    raise BarcodeImageError(f"unsupported pixel type {array.dtype}")
