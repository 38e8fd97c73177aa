"""Synthetic camera and X-ray images for the simulated line: a box with its waybill label, its contents."""

from __future__ import annotations

import random

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

Image = npt.NDArray[np.uint8]


def label_barcode(text: str, height: int = 90) -> Image:
    """A Code 128 symbol as a greyscale array, quiet zones included."""
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
    bars = np.array(zxingcpp.write_barcode_to_image(barcode, scale=2, add_quiet_zones=True), dtype=np.uint8)
    if bars.ndim == 3:
        bars = bars[..., 0]
    row = bars[bars.shape[0] // 2]
    return np.repeat(row[None, :], height, axis=0)


def parcel_photo(
    waybill: str | None, seed: int, damaged: bool = False, size: tuple[int, int] = (480, 640)
) -> bytes:
    """A top-down camera photo: a cardboard box, tape, and a white label carrying the waybill barcode.

    `damaged` tears through the barcode so that no reader can recover it (an unreadable label).
    """
    rng = random.Random(seed)
    h, w = size
    img = np.full((h, w, 3), (40, 45, 50), np.uint8)  # conveyor belt
    bx, by = rng.randint(40, 90), rng.randint(30, 70)
    bw, bh = w - 2 * bx, h - 2 * by
    brown = (rng.randint(70, 100), rng.randint(120, 150), rng.randint(170, 200))
    cv2.rectangle(img, (bx, by), (bx + bw, by + bh), brown, -1)
    cv2.rectangle(img, (bx, by + bh // 2 - 18), (bx + bw, by + bh // 2 + 18), (150, 170, 185), -1)  # tape
    noise = np.random.default_rng(seed).normal(0, 6, img.shape)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if waybill:
        bars = label_barcode(waybill)
        lh, lw = bars.shape[0] + 60, bars.shape[1] + 40
        lx, ly = bx + rng.randint(10, max(11, bw - lw - 10)), by + 20
        if lx + lw < w and ly + lh < h:
            cv2.rectangle(img, (lx, ly), (lx + lw, ly + lh), (245, 245, 245), -1)
            img[ly + 15 : ly + 15 + bars.shape[0], lx + 20 : lx + 20 + bars.shape[1]] = bars[..., None]
            cv2.putText(img, waybill, (lx + 20, ly + lh - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1)
            if damaged:
                # A torn label: a wide scuff across every bar row, as a reader sees a wet or ripped label.
                cv2.rectangle(img, (lx + 20, ly + 10), (lx + lw - 20, ly + 15 + bars.shape[0]), brown, -1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise ValueError("could not encode the synthetic photo")
    return bytes(buf)


def xray_scan(seed: int, size: tuple[int, int] = (400, 520)) -> bytes:
    """A single-energy X-ray style image: a bright background and darker, overlapping objects."""
    rng = random.Random(seed)
    h, w = size
    img = np.full((h, w), 235, np.float32)
    for _ in range(rng.randint(3, 7)):
        density = rng.uniform(40, 140)
        layer = np.zeros((h, w), np.float32)
        cx, cy = rng.randint(60, w - 60), rng.randint(60, h - 60)
        if rng.random() < 0.5:
            axes = (rng.randint(20, 90), rng.randint(15, 60))
            cv2.ellipse(layer, (cx, cy), axes, rng.randint(0, 180), 0, 360, density, -1)
        else:
            pw, ph = rng.randint(30, 140), rng.randint(20, 90)
            cv2.rectangle(layer, (cx - pw // 2, cy - ph // 2), (cx + pw // 2, cy + ph // 2), density, -1)
        img -= layer * 0.6
    blurred = cv2.GaussianBlur(img, (5, 5), 1.2)
    noisy = blurred + np.random.default_rng(seed).normal(0, 3, img.shape)
    ok, buf = cv2.imencode(".png", np.clip(noisy, 0, 255).astype(np.uint8))
    if not ok:
        raise ValueError("could not encode the synthetic X-ray")
    return bytes(buf)


def goods_photo(seed: int, counterfeit: bool) -> bytes:
    """A photo of the goods' brand label, drawn by the classifier's demo generator (genuine or fake)."""
    from models.demo import render_label

    rgb = render_label(np.random.default_rng(seed), counterfeit)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("could not encode the synthetic goods photo")
    return bytes(buf)
