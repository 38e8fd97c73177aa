"""Image decoding and preprocessing: encoded bytes or arrays to the network's normalised input tensor."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from scanner_drivers.image_gate import ImageLimits, ImageRefused, check_size, decode, header_size, probe

IMAGE_KINDS = ("camera", "xray", "xray_low")
MAX_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 60_000_000
MIN_SIDE = 8
# Camera photos follow the ImageNet evaluation recipe (shorter side to size/0.875, centre crop);
# X-ray crops are padded to a square instead, because cropping would cut the object's ends off.
CAMERA_CROP_FRACTION = 0.875
# Padding an X-ray to a square may add at most this many pixels beyond four times the image itself.
MAX_PAD_PIXELS = 16_000_000

UInt8Image = npt.NDArray[np.uint8]


def _u8(image: object) -> UInt8Image:
    return np.asarray(image, dtype=np.uint8)


class ImageDecodeError(ImageRefused):
    """An image is empty, corrupt, of an unsupported format, or too large to decode safely."""


# The image gate refuses by header before decoding; the aspect limit also bounds the padded X-ray square.
LIMITS = ImageLimits(
    max_bytes=MAX_BYTES,
    max_pixels=MAX_PIXELS,
    min_side=MIN_SIDE,
    formats=frozenset({"jpeg", "png", "tiff", "bmp", "webp"}),
)
_TOO_LARGE = {"too_many_bytes", "too_many_pixels", "side_too_long", "too_much_memory", "too_many_frames"}


def _refused(exc: ImageRefused) -> ImageDecodeError:
    if exc.reason in _TOO_LARGE:
        return ImageDecodeError(f"image is larger than the limits allow: {exc}", exc.reason)
    return ImageDecodeError(str(exc), exc.reason)


def sniff_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header without decoding, or None when it cannot be read.

    Checking the size before decoding keeps a small file that claims a gigantic image (a
    decompression bomb) from taking the station's memory.
    """
    return header_size(data)


def _check_size(width: int, height: int) -> None:
    try:
        check_size(width, height, LIMITS)
    except ImageRefused as exc:
        raise _refused(exc) from None


def _to_uint8(image: npt.NDArray[np.generic], stretch: bool) -> UInt8Image:
    """Bring any supported depth to 8 bits; X-ray images get a percentile stretch.

    Raw 16-bit X-ray frames rarely use the full range, so a fixed shift would leave them nearly
    black; a robust stretch (0.5th-99.5th percentile) makes different machines look alike.
    """
    if image.dtype == np.uint8 and not stretch:
        return image.astype(np.uint8, copy=False)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    data = image.astype(np.float32)
    if not np.isfinite(data).all():
        raise ImageDecodeError("image contains NaN or infinite values")
    if stretch:
        low, high = np.percentile(
            data[:: max(1, data.shape[0] // 256), :: max(1, data.shape[1] // 256)], (0.5, 99.5)
        )
    elif image.dtype == np.uint16:
        low, high = 0.0, 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        low, high = (0.0, 1.0) if float(data.max()) <= 1.0 else (0.0, 255.0)
    else:
        low, high = float(data.min()), float(data.max())
    if high <= low:
        high = low + 1.0
    out = (data - low) * (255.0 / (high - low))
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)


def _decode_bytes(data: bytes, target: int, grey: bool) -> npt.NDArray[np.generic]:
    try:
        info = probe(data, LIMITS)
        flags = cv2.IMREAD_UNCHANGED
        if info.format == "jpeg":
            # JPEG can be decoded at 1/2, 1/4 or 1/8 scale by the DCT itself: far cheaper than a full
            # decode followed by a resize, and still at least `target` pixels on the shorter side.
            factor = 1
            while factor < 8 and min(info.width, info.height) // (factor * 2) >= target:
                factor *= 2
            flags = {
                1: (cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE),
                2: (cv2.IMREAD_REDUCED_COLOR_2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
                4: (cv2.IMREAD_REDUCED_COLOR_4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                8: (cv2.IMREAD_REDUCED_COLOR_8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
            }[factor][1 if grey else 0]
        _, image = decode(data, LIMITS, flags=flags)
    except ImageRefused as exc:
        raise _refused(exc) from None
    # Colour stays in OpenCV's BGR order until the image is small: swapping channels of a full-size
    # photo costs more than the rest of the preprocessing.
    return np.asarray(image)


def to_rgb_or_grey(
    image: npt.NDArray[np.generic], grey: bool, stretch: bool, bgr: bool = False
) -> UInt8Image:
    """An 8-bit image, colour (HxWx3, channel order as given) or grey (HxW), from any supported layout."""
    if image.ndim == 3 and image.shape[2] in (1, 2):  # grey, or grey + alpha
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:  # drop alpha
        image = image[:, :, :3]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ImageDecodeError(f"image array of shape {image.shape} is neither HxW nor HxWx1/2/3/4")
    _check_size(image.shape[1], image.shape[0])
    out = np.ascontiguousarray(_to_uint8(image, stretch))
    if grey and out.ndim == 3:
        out = _u8(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY))
    if not grey and out.ndim == 2:
        out = _u8(cv2.cvtColor(out, cv2.COLOR_GRAY2BGR))
    return out


def load_image(image: bytes | npt.NDArray[np.generic], kind: str, size: int) -> UInt8Image:
    """Decode and lay out one image for `kind`: an RGB square of `size` pixels, uint8.

    Arrays are taken as RGB (or grey); encoded bytes are JPEG, PNG, TIFF, BMP or WebP, checked by the
    image gate before decoding. Every failure is an ImageDecodeError (an ImageRefused, a ValueError).
    """
    if kind not in IMAGE_KINDS:
        raise ImageDecodeError(f"image kind {kind!r} is not one of {IMAGE_KINDS}", "format_not_accepted")
    try:
        return _load_image(image, kind, size)
    except cv2.error as exc:
        # The gate has checked sizes and shapes; an OpenCV error here is still one refused image.
        raise ImageDecodeError(f"image cannot be preprocessed: {str(exc).strip()[-200:]}") from None


def _load_image(image: bytes | npt.NDArray[np.generic], kind: str, size: int) -> UInt8Image:
    xray = kind != "camera"
    if isinstance(image, bytes | bytearray | memoryview):
        raw = _decode_bytes(bytes(image), size, grey=xray)
        bgr = True
    elif isinstance(image, np.ndarray):
        if image.size == 0:
            raise ImageDecodeError("image array is empty", "zero_size")
        raw, bgr = image, False
    else:
        raise ImageDecodeError(f"image must be bytes or a numpy array, not {type(image).__name__}")
    stretch = xray and raw.dtype != np.uint8
    pixels = to_rgb_or_grey(raw, grey=xray, stretch=stretch, bgr=bgr)
    square = square_for_kind(pixels, kind, size)
    return _u8(cv2.cvtColor(square, cv2.COLOR_BGR2RGB)) if bgr and not xray else square


def _interpolation(side: int, size: int) -> int:
    """Area averaging only for strong shrinking; below 2x, bilinear is as good and several times faster
    (JPEGs have already been shrunk by a power of two while decoding)."""
    return int(cv2.INTER_AREA) if side >= 2 * size else int(cv2.INTER_LINEAR)


def square_for_kind(pixels: UInt8Image, kind: str, size: int) -> UInt8Image:
    """Camera: centre crop (0.875 of the shorter side), resized. X-ray: padded square, background fill.

    Grey input gives a 3-channel result; colour keeps its channel order.
    """
    h, w = pixels.shape[:2]
    _check_size(w, h)
    if kind == "camera":
        # Equivalent to "shorter side to size/0.875, then centre crop", but crops first so that
        # only the pixels that are kept get resized.
        side = max(1, round(min(h, w) * CAMERA_CROP_FRACTION))
        y, x = (h - side) // 2, (w - side) // 2
        crop = pixels[y : y + side, x : x + side]
        interp = _interpolation(side, size)
        out = cv2.resize(crop, (size, size), interpolation=interp)
        return np.ascontiguousarray(out)
    grey = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    side = max(h, w)
    # X-ray background is the unattenuated beam; pad with what the image's border shows.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    fill = int(np.median(border))
    interp = _interpolation(side, size)
    if side * side > 4 * h * w + MAX_PAD_PIXELS:
        # A long thin image would make a padded square many times its own size: shrink it first, then pad
        # the small copy (nearly the same pixels, without the giant canvas).
        sw, sh = max(1, round(w * size / side)), max(1, round(h * size / side))
        small = cv2.resize(grey, (sw, sh), interpolation=interp)
        top, left = (size - sh) // 2, (size - sw) // 2
        square = cv2.copyMakeBorder(
            small, top, size - sh - top, left, size - sw - left, cv2.BORDER_CONSTANT, value=fill
        )
        return np.ascontiguousarray(cv2.cvtColor(square, cv2.COLOR_GRAY2RGB))
    top, left = (side - h) // 2, (side - w) // 2
    canvas = cv2.copyMakeBorder(
        grey, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=fill
    )
    out = cv2.cvtColor(cv2.resize(canvas, (size, size), interpolation=interp), cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(out)


def normalise(
    square: UInt8Image, mean: npt.NDArray[np.float32], inv_std: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """HxWx3 uint8 RGB -> 1x3xHxW float32, (pixel - mean) / std per channel."""
    if np.all(inv_std == inv_std[0]):
        # One C++ pass (subtract, scale, HWC->NCHW) instead of four numpy passes.
        blob = cv2.dnn.blobFromImage(
            square, scalefactor=float(inv_std[0]), mean=tuple(float(m) for m in mean)
        )
        return np.asarray(blob, dtype=np.float32)
    chw = square.transpose(2, 0, 1).astype(np.float32)
    chw -= mean[:, None, None]
    chw *= inv_std[:, None, None]
    return chw[None]
