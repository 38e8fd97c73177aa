"""`parcelguard model demo`: a demo head, gallery and sample images, all from generated brand-label pictures.

The product may ship nothing it has no right to, so the demo's counterfeit evidence is learned
from labels this module draws: a made-up brand ("NORDLUX") printed properly (crisp text, red
logo, holographic strip) and as a counterfeit would be (misspelt or thin text, off-colour logo,
grey strip, blurred print). The resulting head only knows those drawings; it demonstrates the
mechanism (head score, gallery match, reject rule), not knowledge of real goods.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from models.classifier import Classifier
from models.gallery import Gallery, save_gallery
from models.heads import Head, save_head
from models.train import fit_head

log = logging.getLogger(__name__)

BRAND = "NORDLUX"
FAKE_SPELLINGS = ("NORDLUX", "N0RDLUX", "NORDLUKS", "NOROLUX", "NORDIUX")
WIDTH, HEIGHT = 400, 300
LABELS = ("counterfeit", "genuine")
IMAGES_PER_CLASS = {"train": 60, "validation": 20, "test": 40}


def render_label(rng: np.random.Generator, counterfeit: bool) -> npt.NDArray[np.uint8]:
    """One photo-like RGB picture of a product label on a parcel, genuine or counterfeit."""
    base = np.array([150, 120, 85]) + rng.integers(-20, 20, 3)  # cardboard
    img = np.clip(base + rng.normal(0, 6, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    x0, y0 = int(rng.integers(20, 70)), int(rng.integers(20, 60))
    w, h = int(rng.integers(270, 320)), int(rng.integers(180, 220))
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (245, 245, 240), -1)
    cx, cy, r = x0 + 45, y0 + 50, 30
    logo = (
        (200, 30, 40)
        if not counterfeit
        else tuple(int(v) for v in rng.integers([190, 70, 20], [240, 140, 80]))
    )
    cv2.circle(img, (cx, cy), r, logo, -1)
    angles = -np.pi / 2 + np.arange(5) * 4 * np.pi / 5  # pentagram vertex order
    star = np.stack([cx + r * 0.8 * np.cos(angles), cy + r * 0.8 * np.sin(angles)], axis=1)
    cv2.fillPoly(img, [star.astype(np.int32)], (255, 255, 255))
    text = BRAND if not counterfeit else str(rng.choice(FAKE_SPELLINGS))
    font = cv2.FONT_HERSHEY_DUPLEX if not counterfeit else cv2.FONT_HERSHEY_SIMPLEX
    weight = 3 if not counterfeit else int(rng.integers(1, 3))
    cv2.putText(img, text, (x0 + 85, y0 + 62), font, 1.2, (20, 30, 110), weight, cv2.LINE_AA)
    strip_y = y0 + 100
    if not counterfeit:  # holographic strip: a rainbow gradient
        hue = ((np.arange(w - 40) * 180 / (w - 40) + rng.integers(0, 180)) % 180).astype(np.uint8)
        hsv = np.stack(
            [
                np.tile(hue, (25, 1)),
                np.full((25, w - 40), 200, np.uint8),
                np.full((25, w - 40), 230, np.uint8),
            ],
            2,
        )
        img[strip_y : strip_y + 25, x0 + 20 : x0 + w - 20] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    else:
        grey = int(rng.integers(150, 200))
        cv2.rectangle(img, (x0 + 20, strip_y), (x0 + w - 20, strip_y + 25), (grey, grey, grey), -1)
    bars = rng.integers(0, 2, 40)
    for i, bar in enumerate(bars):  # a barcode-like block
        if bar:
            bx = x0 + 20 + i * 5
            cv2.rectangle(img, (bx, y0 + 140), (bx + 3, y0 + h - 15), (15, 15, 15), -1)
    angle = rng.uniform(-8, 8)
    matrix = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), angle, rng.uniform(0.9, 1.05))
    img = np.asarray(
        cv2.warpAffine(img, matrix, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT), dtype=np.uint8
    )
    if counterfeit:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 1.6)), dtype=np.uint8)
    gain = rng.uniform(0.8, 1.15)
    noisy = img.astype(np.float32) * gain + rng.normal(0, 4, img.shape)
    return np.asarray(np.clip(noisy, 0, 255), dtype=np.uint8)


def _render_set(seed: int, per_class: int) -> tuple[list[npt.NDArray[np.uint8]], list[int]]:
    rng = np.random.default_rng(seed)
    images: list[npt.NDArray[np.uint8]] = []
    ys: list[int] = []
    for _ in range(per_class):
        for y, label in enumerate(LABELS):
            images.append(render_label(rng, label == "counterfeit"))
            ys.append(y)
    return images, ys


def _embed(clf: Classifier, images: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
    return clf.embed([clf.preprocess(img, "camera") for img in images])


def train_demo_head(clf: Classifier) -> Head:
    """Fit and test the demo head on three independent generated sets (train, validation, test)."""
    sets = {name: _render_set(seed, n) for seed, (name, n) in enumerate(IMAGES_PER_CLASS.items(), start=101)}
    x = {name: _embed(clf, imgs) for name, (imgs, _) in sets.items()}
    y = {name: np.asarray(ys, dtype=np.int64) for name, (_, ys) in sets.items()}
    meta: dict[str, object] = {
        "version": "demo-head-nordlux-1",
        "backbone": clf.manifest.version,
        "kind": "camera",
        "data": "generated NORDLUX label drawings (models/demo.py), no third-party images",
    }
    head = fit_head(
        x["train"], y["train"], LABELS, x["validation"], y["validation"], 0.99, None, meta, quiet=True
    )
    probs = head.predict_proba(x["test"])
    accuracy = float((probs.argmax(axis=1) == y["test"]).mean())
    meta = dict(head.meta, test={"samples": len(y["test"]), "accuracy": accuracy})
    return Head(head.labels, head.weights, head.bias, head.mean, head.scale, head.temperature,
                head.reject_threshold, head.suspect_labels, meta)  # fmt: skip


def build_demo_assets(manifest: Path, out: Path) -> list[Path]:
    """Write the demo head, a gallery of three counterfeit references and sample images; returns paths."""
    clf = Classifier.load(manifest, threads=2)
    out.mkdir(parents=True, exist_ok=True)
    head = train_demo_head(clf)
    log.info("demo head: %s", head.meta.get("test"))
    head_path = out / "demo_head.npz"
    save_head(head, head_path)
    rng = np.random.default_rng(7)
    gallery = Gallery.empty(clf.manifest.embedding.dim, clf.manifest.version)
    for i in range(3):
        ref = render_label(rng, counterfeit=True)
        gallery = gallery.add(
            _embed(clf, [ref])[0], f"demo-ref-{i + 1}", f"counterfeit {BRAND} label (demo)", "generated"
        )
    gallery_path = out / "demo_gallery.npz"
    save_gallery(gallery, gallery_path)
    paths = [head_path, gallery_path]
    images = out / "images"
    images.mkdir(exist_ok=True)
    rng = np.random.default_rng(11)
    for i in range(2):
        for label in LABELS:
            path = images / f"{label}_label_{i + 1}.jpg"
            rgb = render_label(rng, label == "counterfeit")
            cv2.imwrite(str(path), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            paths.append(path)
    return paths
