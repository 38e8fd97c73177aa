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
from models.crossfit import LinearFit, calibrate, choose_l2, first_rows, fit_linear, out_of_fold_logits
from models.groups import file_groups, grouped_folds, read_named_groups, series_of
from models.heads import Head, default_suspect_labels
from models.preprocess import ImageDecodeError, load_image, normalise

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
BATCH = 16
DEFAULT_VIEWS = 3
DEFAULT_FOLDS = 5
DEFAULT_TARGET_PRECISION = 0.95
# A goods category holding at least this share of the training photos is one the head is for.
CATEGORY_SHARE = 0.1


class DatasetError(ValueError):
    """A data folder is missing, empty, or not laid out as one sub-folder per class."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    group: str | None = None  # named in the folder's groups.csv (e.g. the parcel of an exported example)

    @property
    def series(self) -> str:
        """Image series from the file name prefix (e.g. B0049 in B0049_0001.jpg): one object or session."""
        return series_of(self.path)


def scan_folder(root: Path) -> list[Sample]:
    """Samples from root/<label>/<image>; labels are the sub-folder names, sorted."""
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    try:
        named = read_named_groups(root)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DatasetError(str(exc)) from exc
    samples = [
        Sample(path, sub.name, named.get(path.resolve()))
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
    emb, owners, _, _ = embed_views(clf, samples, kind, views, seed, progress)
    return emb, owners


def embed_views(
    clf: Classifier,
    samples: list[Sample],
    kind: str,
    views: int = 0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    grid: int = 1,
) -> tuple[F32, npt.NDArray[np.int64], F32, F32]:
    """Training rows and what the station sees of each sample.

    Returns (rows, sample index of each row, plain embedding per sample, ImageNet logits per sample).
    Rows are the plain view (first) and `views` augmented copies of each sample; with `grid` > 1 each
    row is instead the detail embedding of that view (see `Classifier.detail_embedding`).
    """
    rng = np.random.default_rng(seed)
    tensors: list[F32] = []
    owners: list[int] = []
    rows: list[F32] = []
    plain: list[tuple[F32, F32]] = []
    for i, sample in enumerate(samples):
        try:
            data = sample.path.read_bytes()
            square = load_image(data, kind, clf.size)
            big = load_image(data, kind, grid * clf.size) if grid > 1 else square
        except ImageDecodeError as exc:
            raise DatasetError(f"{sample.path}: {exc}") from exc
        if grid > 1:
            emb, logits = clf.run(normalise(square, clf.mean, clf.inv_std))
            plain.append((emb, logits))
        for view in range(views + 1):
            img = big if view == 0 else augment(big, rng, kind)
            if grid > 1:
                rows.append(clf.embed_detail_square(img, grid)[None])
            else:
                tensors.append(normalise(img, clf.mean, clf.inv_std))
            owners.append(i)
        if len(tensors) >= BATCH:
            batch = clf.run(np.concatenate(tensors))
            rows.append(batch[0])
            plain.append(batch)
            tensors = []
        if progress is not None:
            progress(i + 1, len(samples))
    if tensors:
        batch = clf.run(np.concatenate(tensors))
        rows.append(batch[0])
        plain.append(batch)
    x = np.concatenate(rows)
    owner_index = np.asarray(owners, dtype=np.int64)
    emb_all = np.concatenate([p[0] for p in plain])
    logits_all = np.concatenate([p[1] for p in plain])
    if grid == 1:  # the plain view is each sample's first row
        first = first_rows(owner_index, len(samples))
        emb_all, logits_all = emb_all[first], logits_all[first]
    return x, owner_index, emb_all, logits_all


def data_categories(clf: Classifier, logits: F32, share: float = CATEGORY_SHARE) -> tuple[str, ...]:
    """Goods categories that at least `share` of the training images are placed in (confidently).

    A head learns only what its images show; recording their categories lets the station ask it
    about those goods only, and give no verdict on a watch to a head trained on shoes.
    """
    placed = [clf.category_of(row) for row in logits]
    names = [name for name, _, unsure in placed if not unsure and name != "other"]
    counts = {name: names.count(name) for name in set(names)}
    return tuple(sorted(name for name, count in counts.items() if count >= share * len(placed)))


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
    """Fit weights on (x, y); temperature and reject threshold on the separately held-out (x_val, y_val)."""
    fit = fit_linear(x, y, len(labels))
    validation = calibrate(fit.logits(x_val), y_val, target_precision)
    t, threshold = float(validation["temperature"]), float(validation["reject_threshold"])
    return make_head(fit, labels, t, threshold, suspect, dict(meta, validation=validation))


def make_head(
    fit: LinearFit,
    labels: tuple[str, ...],
    temperature: float,
    threshold: float,
    suspect: tuple[str, ...] | None,
    meta: dict[str, object],
) -> Head:
    return Head(
        labels,
        fit.weights,
        fit.bias,
        fit.mean,
        fit.scale,
        temperature,
        threshold,
        suspect or default_suspect_labels(labels),
        meta,
    )


def choose_folds(groups: list[int], labels: list[str], wanted: int) -> int:
    """As many folds as asked for, but no more than the fewest groups any class has (at least two)."""
    per_class = min(len({g for g, lab in zip(groups, labels, strict=True) if lab == c}) for c in set(labels))
    if per_class < 2:
        raise DatasetError(
            "every class needs images of at least two distinct groups (items or photo series) so that "
            "validation can hold whole groups out; near-duplicates and one file-name series are one group"
        )
    return max(2, min(wanted, per_class))


def train_head(
    clf: Classifier,
    samples: list[Sample],
    kind: str,
    views: int = DEFAULT_VIEWS,
    folds: int = DEFAULT_FOLDS,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    suspect: tuple[str, ...] | None = None,
    version: str | None = None,
    seed: int = 0,
    quiet: bool = False,
    categories: tuple[str, ...] = (),
    detail: int = 1,
) -> Head:
    """Embed, cross-fit by groups, calibrate on the out-of-fold predictions, refit on all the data.

    The head records what it was trained for (image kind; goods categories: `categories`, or for
    camera photos those its training photos are placed in, see `data_categories`) and its grouped
    validation figures: accuracy, temperature, reject threshold and coverage, all from images whose
    group (near-duplicates, file-name series, photo sessions) no weight fitted for them had seen.
    With `detail` > 1 the head reads detail views: detail x detail tiles at that many times the
    resolution, embeddings averaged (detail * detail more inferences per photo it is asked about).
    """
    labels = tuple(sorted({s.label for s in samples}))
    names = [s.label for s in samples]
    x, owners, plain_emb, plain_logits = embed_views(
        clf, samples, kind, views, seed, None if quiet else print_progress("embedding"), detail
    )
    y = np.asarray([labels.index(s.label) for s in samples], dtype=np.int64)
    if kind == "camera" and not categories:
        categories = data_categories(clf, plain_logits)
    try:
        groups = file_groups([s.path for s in samples], names, plain_emb, named=[s.group for s in samples])
    except ImageDecodeError as exc:
        raise DatasetError(str(exc)) from exc
    k = choose_folds(groups, names, folds)
    parts = grouped_folds(groups, names, k, seed)
    l2, l2_scores = choose_l2(x, owners, y, parts, len(labels))
    oof = out_of_fold_logits(x, owners, y, parts, len(labels), l2)
    calibration = calibrate(oof, y, target_precision)
    validation: dict[str, object] = dict(
        calibration,
        method=f"grouped {k}-fold out-of-fold predictions",
        folds=k,
        groups=len(set(groups)),
        l2=l2,
        l2_grid_accuracy=l2_scores,
    )
    if not quiet:
        log.info("grouped validation: %s", validation)
    fit = fit_linear(x, y[owners], len(labels), l2)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    meta: dict[str, object] = {
        "version": version or f"head-{now.strftime('%Y%m%dT%H%M%SZ')}",
        "backbone": clf.manifest.version,
        "kind": kind,
        "categories": list(categories),
        "trained_utc": now.isoformat(),
        "train_images": len(samples),
        "augmented_views": views,
        "detail_grid": detail,
        "per_label": {label: names.count(label) for label in labels},
        "validation": validation,
    }
    t, threshold = float(calibration["temperature"]), float(calibration["reject_threshold"])
    return make_head(fit, labels, t, threshold, suspect, meta)
