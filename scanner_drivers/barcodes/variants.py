"""The image variants the barcode ladder decodes (contrast, thresholds, scale, turns) and their maps back."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from scanner_drivers.barcodes.engines import EngineRead, GreyImage

Affine = npt.NDArray[np.float64]  # 2x3, original image coordinates -> variant coordinates


def _identity() -> Affine:
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


_IDENTITY = _identity()


def _scaled(grey: GreyImage, factor: float) -> tuple[GreyImage, Affine]:
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    out = np.asarray(
        cv2.resize(grey, None, fx=factor, fy=factor, interpolation=interpolation), dtype=np.uint8
    )
    sy, sx = out.shape[0] / grey.shape[0], out.shape[1] / grey.shape[1]
    return out, np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0]])


def _contrast(grey: GreyImage) -> GreyImage:
    # CLAHE evens out glare and shadow; the unsharp mask restores bar edges blurred by focus or motion.
    equalised = np.asarray(cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey), dtype=np.uint8)
    return _sharpen(equalised)


def _sharpen(grey: GreyImage) -> GreyImage:
    blurred = cv2.GaussianBlur(grey, (0, 0), 2.0)
    return np.asarray(cv2.addWeighted(grey, 1.8, blurred, -0.8, 0), dtype=np.uint8)


def _adaptive(grey: GreyImage) -> GreyImage:
    # The block must span a few modules whatever the resolution: about 1/16 of the short side.
    block = max(15, (min(grey.shape[:2]) // 16) | 1)
    return np.asarray(
        cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, 5),
        dtype=np.uint8,
    )


def _rotated(grey: GreyImage, degrees: float) -> tuple[GreyImage, Affine]:
    # Linear codes are only scanned along rows and columns: a diagonal label needs a turned copy.
    height, width = grey.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(height * sin + width * cos) + 1, int(height * cos + width * sin) + 1
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    out = cv2.warpAffine(
        grey, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(out, dtype=np.uint8), matrix.astype(np.float64)


def prepare(step: str, grey: GreyImage, *, max_work_pixels: int) -> tuple[GreyImage, Affine] | None:
    """The variant of the image one step decodes, with its coordinate map; None when it does not apply."""
    prep = step.split("/", 1)[1]
    height, width = grey.shape[:2]
    if prep in ("raw", "fixed"):
        return grey, _identity()
    if prep == "contrast":
        return _contrast(grey), _identity()
    if prep == "sharpen":
        return _sharpen(grey), _identity()
    if prep == "denoise":
        return np.asarray(cv2.medianBlur(grey, 3), dtype=np.uint8), _identity()
    if prep == "adaptive":
        return _adaptive(grey), _identity()
    if prep == "threshold":
        _, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        return np.asarray(binary, dtype=np.uint8), _identity()
    if prep == "invert":
        return np.asarray(255 - grey, dtype=np.uint8), _identity()
    if prep == "downscale":
        return _scaled(grey, 0.5) if min(height, width) >= 64 else None
    if prep in ("upscale", "upscale-contrast"):
        factor = 2.0 if prep == "upscale-contrast" else 1.5
        if width * height * factor * factor > max_work_pixels:
            return None
        scaled, affine = _scaled(grey, factor)
        return (_contrast(scaled) if prep == "upscale-contrast" else scaled), affine
    if prep.startswith("rotate"):
        # Turned copies at 45 and +-22.5 degrees, with zxing-cpp's own 90-degree turns, leave no
        # angle more than about 11 degrees from one that is scanned.
        if width * height * 2 > max_work_pixels:
            return None
        return _rotated(grey, {"rotate45": 45.0, "rotate22": 22.5, "rotate-22": -22.5}[prep])
    raise ValueError(f"unknown ladder step {step!r}")


def to_original(read: EngineRead, affine: Affine) -> EngineRead:
    if np.array_equal(affine, _IDENTITY):
        return read
    inverse = cv2.invertAffineTransform(affine)
    corners = tuple(
        (
            float(inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]),
            float(inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]),
        )
        for x, y in read.corners
    )
    return EngineRead(read.text, read.symbology, read.engine, corners, read.confident)
