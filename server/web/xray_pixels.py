"""X-ray images as grey pixels for the desk's viewer: any stored format, 8 or 16 bits kept as they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from scanner_drivers.image_gate import ImageLimits, decode

# The stored images passed the upload gate already; this only bounds what one request may decode.
VIEW_LIMITS = ImageLimits(max_pixels=100_000_000)


@dataclass(frozen=True)
class GreyPixels:
    """Row-major grey samples: `bits` 8 (one byte each) or 16 (two bytes, little-endian)."""

    width: int
    height: int
    bits: int
    data: bytes


def grey_pixels(encoded: bytes) -> GreyPixels:
    """Decode a stored X-ray image to grey samples at its own depth.

    A browser draws a 16-bit image as 8 bits and cannot draw TIFF or DICOM at all; the viewer windows
    the full depth itself. Colour images become their luminance; a multi-frame image its first frame;
    any other sample type (signed, float) is stretched to 16 bits over its own range.
    """
    info, array = decode(encoded, VIEW_LIMITS)
    grey: npt.NDArray[Any] = np.asarray(array)
    if info.frames > 1 and grey.ndim == 3 and grey.shape[0] == info.frames:
        grey = grey[0]
    if grey.ndim == 3 and grey.shape[2] == 4:
        grey = cv2.cvtColor(grey, cv2.COLOR_BGRA2GRAY)
    elif grey.ndim == 3 and grey.shape[2] == 3:
        grey = cv2.cvtColor(grey, cv2.COLOR_BGR2GRAY)
    elif grey.ndim == 3:
        grey = grey[:, :, 0]
    if grey.dtype == np.uint8:
        bits = 8
    elif grey.dtype == np.uint16:
        bits = 16
    else:
        values = grey.astype(np.float64)
        low, high = float(values.min()), float(values.max())
        scale = 65535.0 / (high - low) if high > low else 0.0
        grey = np.round((values - low) * scale).astype(np.uint16)
        bits = 16
    height, width = int(grey.shape[0]), int(grey.shape[1])
    samples = np.ascontiguousarray(grey).astype("<u2" if bits == 16 else np.uint8, copy=False)
    return GreyPixels(width, height, bits, samples.tobytes())
