"""`parcelguard model train`: embed a folder-per-class data set (with augmentation) and fit a head."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from models.classifier import Classifier
from models.heads import (
    Head,
    default_suspect_labels,
    fit_softmax,
    fit_temperature,
    l2_normalise,
    softmax,
    threshold_for_precision,
)
from models.preprocess import ImageDecodeError, load_image, normalise

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
BATCH = 16
FEATURE_GAIN = 30.0
DEFAULT_VIEWS = 3


class DatasetError(ValueError):
    """A data folder is missing, empty, or not laid out as one sub-folder per class."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str

    @property
    def series(self) -> str:
        """Image series from the file name prefix (e.g. B0049 in B0049_0001.jpg): one object or session."""
        stem = self.path.stem
        for sep in ("_", "-"):
            if sep in stem:
                return stem.split(sep, 1)[0]
        return stem


def scan_folder(root: Path) -> list[Sample]:
    """Samples from root/<label>/<image>; labels are the sub-folder names, sorted."""
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    samples = [
        Sample(path, sub.name)
        for sub in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(sub.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    labels = {s.label for s in samples}
    if len(labels) < 2:
        raise DatasetError(
            f"data folder {root} needs at least two class sub-folders with images, found {sorted(labels)}"
        )
    return samples


def augment(square: npt.NDArray[np.uint8], rng: np.random.Generator, kind: str) -> npt.NDArray[np.uint8]:
    """One random view of a preprocessed square image.

    X-ray objects lie in bags at any angle and either way up, so X-ray views are the seven other
    right-angle rotations and mirror images (lossless: no interpolation, no invented background).
    Camera views are a mirror image plus a small rotation, since photos are taken roughly upright.
    In measurements, exposure jitter and free rotations did not help the linear head on X-ray crops.
    """
    if kind != "camera":
        turn = int(rng.integers(0, 8))
        out = np.rot90(square, turn % 4)
        if turn >= 4 or turn == 0:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)
    size = square.shape[0]
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-10, 10), rng.uniform(0.9, 1.05))
    out = np.asarray(
        cv2.warpAffine(square, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT),
        dtype=np.uint8,
    )
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def embed_samples(
    clf: Classifier,
    samples: list[Sample],
    kind: str,
    views: int = 0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[F32, npt.NDArray[np.int64]]:
    """Embeddings of each sample, plus `views` augmented copies each; returns (embeddings, sample index)."""
    rng = np.random.default_rng(seed)
    tensors: list[F32] = []
    owners: list[int] = []
    chunks: list[F32] = []
    for i, sample in enumerate(samples):
        try:
            square = load_image(sample.path.read_bytes(), kind, clf.size)
        except ImageDecodeError as exc:
            raise DatasetError(f"{sample.path}: {exc}") from exc
        for view in range(views + 1):
            img = square if view == 0 else augment(square, rng, kind)
            tensors.append(normalise(img, clf.mean, clf.inv_std))
            owners.append(i)
        if len(tensors) >= BATCH:
            chunks.append(clf.embed(tensors))
            tensors = []
        if progress is not None:
            progress(i + 1, len(samples))
    if tensors:
        chunks.append(clf.embed(tensors))
    return np.concatenate(chunks), np.asarray(owners, dtype=np.int64)


def print_progress(prefix: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        if done == total or done % 25 == 0:
            print(
                f"\r{prefix}: {done}/{total} images",
                end="\n" if done == total else "",
                file=sys.stderr,
                flush=True,
            )

    return show


def fit_head(
    x: F32,
    y: npt.NDArray[np.int64],
    labels: tuple[str, ...],
    x_val: F32,
    y_val: npt.NDArray[np.int64],
    target_precision: float,
    suspect: tuple[str, ...] | None,
    meta: dict[str, object],
    quiet: bool = False,
) -> Head:
    """Fit weights on (x, y); temperature and reject threshold on the held-out (x_val, y_val)."""
    xn = l2_normalise(x)
    mean = xn.mean(axis=0)
    # One common scale, not per-feature standardisation: dividing by each feature's spread lifts
    # near-constant features to full weight, and in series-held-out tests that head fitted the
    # series rather than the object (about 0.7 accuracy against 0.95 with a common scale).
    scale = np.full_like(mean, 1.0 / FEATURE_GAIN)

    def progress(epoch: int, loss: float) -> None:
        if not quiet:
            print(f"epoch {epoch}: loss {loss:.4f}", file=sys.stderr, flush=True)

    w, b = fit_softmax((xn - mean) / scale, y, len(labels), progress=progress)
    head = Head(labels, w, b, mean, scale, 1.0, 0.0, suspect or default_suspect_labels(labels), meta)
    val_logits = head.logits(x_val)
    temperature = fit_temperature(val_logits, y_val)
    probs = softmax(val_logits / temperature)
    threshold, coverage = threshold_for_precision(
        probs.max(axis=1), probs.argmax(axis=1) == y_val, target_precision
    )
    meta = dict(
        meta,
        validation={
            "samples": len(y_val),
            "accuracy": float((probs.argmax(axis=1) == y_val).mean()),
            "temperature": temperature,
            "target_precision": target_precision,
            "reject_threshold": threshold,
            "coverage": coverage,
        },
    )
    return Head(labels, w, b, mean, scale, temperature, threshold, head.suspect_labels, meta)


def split_validation(samples: list[Sample], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified random split of sample indices into (train, validation)."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in sorted({s.label for s in samples}):
        idx = [i for i, s in enumerate(samples) if s.label == label]
        rng.shuffle(idx)
        n_val = max(1, round(len(idx) * fraction))
        val += idx[:n_val]
        train += idx[n_val:]
    return sorted(train), sorted(val)


def train_head(
    clf: Classifier,
    samples: list[Sample],
    kind: str,
    views: int = DEFAULT_VIEWS,
    val_fraction: float = 0.15,
    target_precision: float = 0.99,
    suspect: tuple[str, ...] | None = None,
    version: str | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> Head:
    """Embed, split, fit and calibrate a head for `samples`; the result records what it was trained on."""
    labels = tuple(sorted({s.label for s in samples}))
    train_idx, val_idx = split_validation(samples, val_fraction, seed)
    train_samples = [samples[i] for i in train_idx]
    val_samples = [samples[i] for i in val_idx]
    x, owners = embed_samples(
        clf, train_samples, kind, views, seed, None if quiet else print_progress("embedding")
    )
    y = np.asarray([labels.index(train_samples[i].label) for i in owners], dtype=np.int64)
    x_val, _ = embed_samples(clf, val_samples, kind, 0, seed, None if quiet else print_progress("validation"))
    y_val = np.asarray([labels.index(s.label) for s in val_samples], dtype=np.int64)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    meta: dict[str, object] = {
        "version": version or f"head-{now.strftime('%Y%m%dT%H%M%SZ')}",
        "backbone": clf.manifest.version,
        "kind": kind,
        "trained_utc": now.isoformat(),
        "train_images": len(train_samples),
        "augmented_views": views,
        "per_label": {label: sum(s.label == label for s in samples) for label in labels},
    }
    return fit_head(x, y, labels, x_val, y_val, target_precision, suspect, meta, quiet)
