"""`parcelguard model eval` and `model crossval`: accuracy, per-class figures, calibration, coverage."""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.classifier import Classifier, detail_grid
from models.groups import file_groups, grouped_folds
from models.heads import Head, threshold_for_precision
from models.preprocess import ImageDecodeError
from models.train import BATCH, DEFAULT_VIEWS, DatasetError, Sample, print_progress, train_head

F32 = npt.NDArray[np.float32]
ECE_BINS = 10


def expected_calibration_error(top_prob: F32, correct: npt.NDArray[np.bool_], bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (top_prob > lo) & (top_prob <= hi)
        if in_bin.any():
            ece += float(in_bin.mean()) * abs(float(correct[in_bin].mean()) - float(top_prob[in_bin].mean()))
    return ece


def metrics(
    probs: F32, y: npt.NDArray[np.int64], labels: tuple[str, ...], head: Head, target: float
) -> dict[str, Any]:
    """All evaluation figures for predicted probabilities `probs` against true labels `y`."""
    pred = probs.argmax(axis=1)
    top = probs.max(axis=1)
    correct = pred == y
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class: dict[str, dict[str, float | int]] = {}
    for i, label in enumerate(labels):
        tp = int(confusion[i, i])
        predicted = int(confusion[:, i].sum())
        actual = int(confusion[i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    accepted = top >= head.reject_threshold
    kept = np.zeros((n, n), dtype=np.int64)
    np.add.at(kept, (y[accepted], pred[accepted]), 1)
    oracle_threshold, oracle_coverage = threshold_for_precision(top, correct, target)
    return {
        "samples": len(y),
        "accuracy": float(correct.mean()),
        "per_class": per_class,
        "confusion": {"labels": list(labels), "rows_true_cols_predicted": confusion.tolist()},
        "coverage_at_precision": {
            "target_precision": target,
            # The head's own threshold was chosen on its validation split, before seeing this data.
            "head_threshold": head.reject_threshold,
            "head_threshold_coverage": float(accepted.mean()),
            "head_threshold_precision": float(correct[accepted].mean()) if accepted.any() else None,
            # The best threshold on this data: what the coverage at the target precision can be.
            "threshold_on_this_data": oracle_threshold,
            "coverage": oracle_coverage,
            # What is left after the head's own rejection: per predicted class, how often it is right.
            "at_head_threshold": {
                label: {
                    "predicted": int(kept[:, i].sum()),
                    "precision": float(kept[i, i] / kept[:, i].sum()) if kept[:, i].sum() else None,
                    "recall": float(kept[i, i] / confusion[i].sum()) if confusion[i].sum() else None,
                }
                for i, label in enumerate(labels)
            },
        },
        "majority_baseline": float(np.bincount(y, minlength=n).max() / max(1, len(y))),
        "calibration": {
            "ece": expected_calibration_error(top, correct),
            "nll": float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean()),
            "brier": float(((probs - np.eye(n, dtype=np.float32)[y]) ** 2).sum(axis=1).mean()),
            "temperature": head.temperature,
            "mean_confidence": float(top.mean()),
            "reliability": reliability_bins(top, correct, 1.0 / n),
        },
    }


def reliability_bins(
    top_prob: F32, correct: npt.NDArray[np.bool_], floor: float, bins: int = 5
) -> list[dict[str, float]]:
    """Per confidence bin: how many, how confident on average, how often right (the reliability diagram)."""
    rows: list[dict[str, float]] = []
    for lo, hi in itertools.pairwise(np.linspace(floor, 1.0, bins + 1)):
        in_bin = (top_prob > lo) & (top_prob <= hi)
        if in_bin.any():
            rows.append(
                {
                    "from": round(float(lo), 3),
                    "to": round(float(hi), 3),
                    "samples": int(in_bin.sum()),
                    "confidence": float(top_prob[in_bin].mean()),
                    "accuracy": float(correct[in_bin].mean()),
                }
            )
    return rows


def evaluate_head(
    clf: Classifier, head: Head, samples: list[Sample], kind: str, target: float = 0.99, quiet: bool = False
) -> dict[str, Any]:
    unknown = sorted({s.label for s in samples} - set(head.labels))
    if unknown:
        raise DatasetError(f"data has classes {unknown} that the head does not know ({list(head.labels)})")
    x, logits = embed_plain(clf, samples, kind, quiet)
    plain = x
    y = np.asarray([head.labels.index(s.label) for s in samples], dtype=np.int64)
    grid = detail_grid(head)
    if grid > 1:
        x = np.stack([clf.detail_embedding(s.path.read_bytes(), kind, grid) for s in samples])
    probs = head.predict_proba(x)
    accepted = probs.max(axis=1) >= head.reject_threshold
    result = metrics(probs, y, head.labels, head, target)
    groups = file_groups([s.path for s in samples], [s.label for s in samples], plain)
    result["groups"] = len(set(groups))
    validation = head.meta.get("validation", {})
    result["head"] = {
        "version": head.version,
        "backbone": head.meta.get("backbone"),
        "model": clf.version,
        "kind": head.meta.get("kind"),
        "categories": head.meta.get("categories", []),
        "validation_accuracy": validation.get("accuracy") if isinstance(validation, dict) else None,
    }
    # The station asks the head only about images of its kind and goods categories: say how many
    # of these images it would have spoken on, and how it does on just those.
    scope = np.asarray([clf.head_in_scope(lg, kind, head) for lg in logits], dtype=bool)
    result["station_scope"] = {
        "in_scope": int(scope.sum()),
        "fraction": float(scope.mean()) if len(scope) else 0.0,
        "accuracy_in_scope": float((result_pred(head, x[scope]) == y[scope]).mean()) if scope.any() else None,
        "coverage_in_scope": float(accepted[scope].mean()) if scope.any() else None,
        "precision_in_scope_at_head_threshold": (
            float((result_pred(head, x[scope & accepted]) == y[scope & accepted]).mean())
            if (scope & accepted).any()
            else None
        ),
    }
    return result


def result_pred(head: Head, x: F32) -> npt.NDArray[np.int64]:
    return np.asarray(head.predict_proba(x).argmax(axis=1), dtype=np.int64)


def embed_plain(clf: Classifier, samples: list[Sample], kind: str, quiet: bool) -> tuple[F32, F32]:
    """Embeddings and ImageNet logits of each sample as the station would see it (no augmentation)."""
    progress = None if quiet else print_progress("evaluating")
    embs: list[F32] = []
    logits: list[F32] = []
    batch: list[F32] = []
    for i, sample in enumerate(samples):
        try:
            batch.append(clf.preprocess(sample.path.read_bytes(), kind))
        except ImageDecodeError as exc:
            raise DatasetError(f"{sample.path}: {exc}") from exc
        if len(batch) == BATCH or i == len(samples) - 1:
            e, lg = clf.run(np.concatenate(batch))
            embs.append(e)
            logits.append(lg)
            batch = []
        if progress is not None:
            progress(i + 1, len(samples))
    return np.concatenate(embs), np.concatenate(logits)


def group_folds(
    samples: list[Sample], folds: int, embeddings: F32 | None = None, seed: int = 0
) -> list[list[int]]:
    """Whole groups (near-duplicates, file-name series, photo sessions when `embeddings` are given)
    into `folds` parts, each with every class."""
    names = [s.label for s in samples]
    groups = file_groups([s.path for s in samples], names, embeddings)
    for label in sorted(set(names)):
        count = len({g for g, n in zip(groups, names, strict=True) if n == label})
        if count < folds:
            raise DatasetError(f"class {label} has {count} image groups; {folds} folds need more")
    return grouped_folds(groups, names, folds, seed)


def crossval_groups(
    clf: Classifier,
    samples: list[Sample],
    kind: str,
    folds: int = 2,
    views: int = DEFAULT_VIEWS,
    target: float = 0.99,
    finetune_epochs: int = 0,
    base_manifest: Path | None = None,
) -> dict[str, Any]:
    """Train on some whole groups, test on the others: how the head holds when the objects change.

    With `finetune_epochs`, each fold also fine-tunes the backbone on its own training groups only.
    """
    groups = group_folds(samples, folds, embed_plain(clf, samples, kind, quiet=True)[0])
    results: list[dict[str, Any]] = []
    for f, held in enumerate(groups):
        held_set = set(held)
        train = [s for i, s in enumerate(samples) if i not in held_set]
        test = [samples[i] for i in held]
        with tempfile.TemporaryDirectory() as tmp:
            fold_clf = clf
            if finetune_epochs > 0:
                from models.finetune import finetune_backbone

                if base_manifest is None:
                    raise ValueError("fine-tuning in cross-validation needs the base model's manifest")
                path = finetune_backbone(
                    base_manifest, train, kind, Path(tmp), f"finetune-fold{f + 1}", finetune_epochs
                )
                fold_clf = Classifier.load(path, threads=2)
            head = train_head(fold_clf, train, kind, views=views, target_precision=target, quiet=True)
            result = evaluate_head(fold_clf, head, test, kind, target, quiet=True)
        result["held_out_images"] = len(test)
        results.append(result)
        print(
            f"fold {f + 1}/{folds}: held out {result['groups']} groups, {len(test)} images, "
            f"accuracy {result['accuracy']:.4f} (its own grouped validation: "
            f"{result['head']['validation_accuracy']:.4f})",
            file=sys.stderr,
        )
    return {
        "folds": results,
        "mean_accuracy": float(np.mean([r["accuracy"] for r in results])),
        "mean_coverage_at_precision": float(
            np.mean([r["coverage_at_precision"]["coverage"] for r in results])
        ),
        "mean_own_validation_accuracy": float(np.mean([r["head"]["validation_accuracy"] for r in results])),
        "mean_head_threshold_coverage": float(
            np.mean([r["coverage_at_precision"]["head_threshold_coverage"] for r in results])
        ),
        "augmented_views": views,
        "finetune_epochs": finetune_epochs,
    }
