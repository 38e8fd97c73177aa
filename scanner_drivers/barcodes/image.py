"""Image bytes or arrays to 8-bit greyscale for the barcode engines, within size limits."""

from __future__ import annotations

import io

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

GreyImage = npt.NDArray[np.uint8]


class BarcodeImageError(ValueError):
    """An image is empty, corrupt, of an unsupported pixel type, or over the size limits."""


def _image_size_from_header(data: bytes) -> tuple[int, int] | None:
    """Width and height from the file header alone, so a decompression bomb is refused before decoding."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.size[0]), int(img.size[1])
    except Image.DecompressionBombError as exc:
        # Pillow refuses sizes far beyond any sane limit before we can ask for them.
        raise BarcodeImageError(f"image is over the pixel limit: {exc}") from exc
    except Exception:  # a format Pillow does not know: OpenCV decides below
        return None


def _decode_with_pillow(data: bytes) -> npt.NDArray[np.generic] | None:
    # OpenCV refuses some valid files (tiny WebP images for one); Pillow is the second opinion.
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode.startswith("I"):
                return np.asarray(img)
            if "A" in img.getbands():
                # RGBA to BGRA, the channel order to_grey expects.
                return np.asarray(img.convert("RGBA"))[:, :, [2, 1, 0, 3]].copy()
            return np.asarray(img.convert("L"))
    except Exception:  # any decoder failure means: not an image we can read
        return None


# zxing-cpp refuses images with a side beyond 16 bits.
MAX_SIDE = 65535


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise BarcodeImageError(f"empty image ({width}x{height} pixels)")
    if max(width, height) > MAX_SIDE:
        raise BarcodeImageError(f"image is {width}x{height} pixels: a side is over {MAX_SIDE}")
    if width * height > max_pixels:
        raise BarcodeImageError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> GreyImage:
    """Encoded image bytes (PNG, JPEG, WebP, BMP, TIFF ...) to an 8-bit greyscale array."""
    if not data:
        raise BarcodeImageError("empty image (0 bytes)")
    if len(data) > max_bytes:
        raise BarcodeImageError(f"image is {len(data)} bytes, over the limit of {max_bytes}")
    size = _image_size_from_header(data)
    if size is not None:
        _check_pixels(size[0], size[1], max_pixels)
    array: npt.NDArray[np.generic] | None = None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        # OpenCV's WebP reader refuses small valid files (and logs about it): Pillow reads WebP first.
        array = _decode_with_pillow(data)
    if array is None:
        try:
            array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:  # OpenCV raises for sizes over its own limit, returns None otherwise
            reason = str(exc).strip().splitlines()[-1]
            raise BarcodeImageError(f"image cannot be decoded ({len(data)} bytes): {reason}") from exc
    if array is None:
        array = _decode_with_pillow(data)
    if array is None:
        raise BarcodeImageError(
            f"not a decodable image ({len(data)} bytes starting {data[:8].hex()}): corrupt or unsupported"
        )
    return to_grey(array, max_pixels=max_pixels)


def to_grey(array: npt.NDArray[np.generic], *, max_pixels: int) -> GreyImage:
    """Any 2-D or HxWxC array (grey, BGR, BGRA; 8/16-bit, float or bool) to contiguous 8-bit grey."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise BarcodeImageError(f"unsupported image shape {array.shape}: need HxW, HxWx1, HxWx3 or HxWx4")
    _check_pixels(int(array.shape[1]), int(array.shape[0]), max_pixels)
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
