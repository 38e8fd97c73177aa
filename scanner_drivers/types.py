"""Plain data that every driver hands out: decoded codes, scanner reads and captured images."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# "label" is the shipping label as a label camera saw it (read for the waybill, never classified);
# "camera" is a photo of the package or of its goods.
ImageKind = Literal["xray", "xray_low", "camera", "label"]


@dataclass(frozen=True)
class Code:
    """One barcode as read: text exactly as encoded, the symbology and the engine that read it."""

    text: str
    symbology: str
    engine: str
    # (x, y, width, height) in image pixels when the code came from an image.
    position: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class ImageCapture:
    """One image from a camera or an X-ray machine, as encoded bytes (JPEG, PNG, TIFF ...)."""

    kind: ImageKind
    data: bytes
    name: str
    at_utc: str
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class ScanRead:
    """One read event from a scanner: zero codes means a no-read."""

    device: str
    codes: tuple[Code, ...]
    at_utc: str
    at_monotonic: float
    raw: bytes = b""
    trigger_id: int | None = None
    images: tuple[ImageCapture, ...] = field(default=())
    carrier_id: str | None = None
    # Seconds after `at_monotonic` within which the source wants its answer (a controller's request).
    answer_within_s: float | None = None

    @property
    def no_read(self) -> bool:
        return not self.codes


class DeviceError(OSError):
    """A device could not be opened, or failed while in use."""


class DeviceUrlError(ValueError):
    """A device URL is malformed or names an unknown scheme or option."""
