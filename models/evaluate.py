"""`parcelguard model eval` and `model crossval`: accuracy, per-class figures, calibration, coverage."""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.classifier import Classifier
from models.heads import Head, threshold_for_precision
from models.train import DEFAULT_VIEWS, DatasetError, Sample, embed_samples, print_progress, train_head

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
        },
        "calibration": {
            "ece": expected_calibration_error(top, correct),
            "nll": float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean()),
            "brier": float(((probs - np.eye(n, dtype=np.float32)[y]) ** 2).sum(axis=1).mean()),
            "temperature": head.temperature,
            "mean_confidence": float(top.mean()),
        },
    }


def evaluate_head(
    clf: Classifier, head: Head, samples: list[Sample], kind: str, target: float = 0.99, quiet: bool = False
) -> dict[str, Any]:
    unknown = sorted({s.label for s in samples} - set(head.labels))
    if unknown:
        raise DatasetError(f"data has classes {unknown} that the head does not know ({list(head.labels)})")
    x, _ = embed_samples(clf, samples, kind, 0, 0, None if quiet else print_progress("evaluating"))
    y = np.asarray([head.labels.index(s.label) for s in samples], dtype=np.int64)
    result = metrics(head.predict_proba(x), y, head.labels, head, target)
    result["head"] = {"version": head.version, "backbone": head.meta.get("backbone"), "model": clf.version}
    return result


def series_folds(samples: list[Sample], folds: int) -> list[list[int]]:
    """Split whole image series into `folds` groups; every class keeps series on both sides."""
    groups: list[list[int]] = [[] for _ in range(folds)]
    for label in sorted({s.label for s in samples}):
        series = sorted({s.series for s in samples if s.label == label})
        if len(series) < folds:
            raise DatasetError(
                f"class {label} has {len(series)} image series ({series}); {folds} folds need more"
            )
        for i, s in enumerate(samples):
            if s.label == label:
                groups[series.index(s.series) % folds].append(i)
    return groups


def crossval_series(
    clf: Classifier,
    samples: list[Sample],
    kind: str,
    folds: int = 2,
    views: int = DEFAULT_VIEWS,
    target: float = 0.99,
    finetune_epochs: int = 0,
    base_manifest: Path | None = None,
) -> dict[str, Any]:
    """Train on some whole series, test on the others: how the head holds when the objects change.

    With `finetune_epochs`, each fold also fine-tunes the backbone on its own training series only.
    """
    groups = series_folds(samples, folds)
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
        result["held_out_series"] = sorted({s.series for s in test})
        result["train_series"] = sorted({s.series for s in train})
        results.append(result)
        print(
            f"fold {f + 1}/{folds}: held out {result['held_out_series']}, accuracy {result['accuracy']:.4f}",
            file=sys.stderr,
        )
    return {
        "folds": results,
        "mean_accuracy": float(np.mean([r["accuracy"] for r in results])),
        "mean_coverage_at_precision": float(
            np.mean([r["coverage_at_precision"]["coverage"] for r in results])
        ),
        "augmented_views": views,
        "finetune_epochs": finetune_epochs,
    }
