"""A fake X-ray machine: writes images into a hot folder the way the machines do (temp name, then rename)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from scanner_drivers.types import DeviceError


class FakeXrayMachine:
    """Writes one shot per `scan()` into `folder`, named `<prefix><seq>[<token>][_H|_L].<ext>`.

    The file is written under a temporary name and renamed into place, as most machines do, so a
    hot folder never sees half a file. With `dual=True` each scan writes a high- and a low-energy
    image; `token` (e.g. a waybill) goes into the file name for binding by name.
    """

    def __init__(self, folder: Path, *, prefix: str = "XR", ext: str = "png", dual: bool = False) -> None:
        if ext not in ("png", "tif", "jpg", "bmp"):
            raise ValueError(f"fake X-ray machine writes png, tif, jpg or bmp, not {ext!r}")
        self.folder = folder
        self.prefix = prefix
        self.ext = ext
        self.dual = dual
        self.seq = 0

    def scan(self, image: np.ndarray | None = None, token: str = "") -> list[Path]:
        """Write one shot (a synthetic 16-bit image unless one is given); returns the paths written."""
        self.seq += 1
        if image is None:
            image = _synthetic(self.seq)
        stem = f"{self.prefix}{self.seq:06d}" + (f"_{token}" if token else "")
        shots = (
            [(stem + "_H", image), (stem + "_L", (image * 0.6).astype(image.dtype))]
            if self.dual
            else [(stem, image)]
        )
        written = []
        for name, pixels in shots:
            if self.ext in ("jpg", "bmp") and pixels.dtype != np.uint8:
                pixels = (pixels / 257).astype(np.uint8)
            ok, buf = cv2.imencode("." + self.ext, pixels)
            if not ok:
                raise DeviceError(f"fake X-ray machine cannot encode {name}.{self.ext}")
            final = self.folder / f"{name}.{self.ext}"
            tmp = self.folder / f".{name}.{self.ext}.part"
            tmp.write_bytes(buf.tobytes())
            os.replace(tmp, final)
            written.append(final)
        return written


def _synthetic(seq: int) -> np.ndarray:
    """A 16-bit transmission image: bright background, a darker box that moves with the sequence."""
    img = np.full((120, 160), 60000, np.uint16)
    x = 10 + (seq * 17) % 100
    img[30:90, x : x + 40] = 15000
    return img
