"""Trainable heads: a calibrated softmax classifier on frozen embeddings, saved with its own digest."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.manifest import ModelLoadError
from models.sealed import read_sealed, write_sealed

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
SUSPECT_WORDS = ("counterfeit", "suspect", "fake")
HEAD_FORMAT = "parcelguard-head-1"


@dataclass(frozen=True)
class Head:
    """Linear softmax head over L2-normalised, standardised embeddings, with temperature and a reject rule."""

    labels: tuple[str, ...]
    weights: F32  # (dim, classes)
    bias: F32  # (classes,)
    mean: F32  # (dim,) standardisation of the normalised embedding
    scale: F32  # (dim,)
    temperature: float
    reject_threshold: float  # top probability below this -> "uncertain"
    suspect_labels: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "head-unversioned"))

    def logits(self, embeddings: F32) -> F32:
        x = l2_normalise(embeddings)
        return np.asarray(((x - self.mean) / self.scale) @ self.weights + self.bias, dtype=np.float32)

    def predict_proba(self, embeddings: F32) -> F32:
        return softmax(self.logits(embeddings) / self.temperature)

    def suspect_score(self, probs: F32) -> float | None:
        """Summed probability of the suspect labels; None when the head has none."""
        if not self.suspect_labels:
            return None
        idx = [self.labels.index(label) for label in self.suspect_labels]
        return float(probs[..., idx].sum())


def l2_normalise(x: F32) -> F32:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.asarray(x / np.maximum(norm, 1e-12), dtype=np.float32)


def softmax(z: F32) -> F32:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float32)


def default_suspect_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(label for label in labels if any(w in label.lower() for w in SUSPECT_WORDS))


def save_head(head: Head, path: Path) -> str:
    """Write the head as .npz with a sha256 over its content; returns that digest."""
    meta = dict(head.meta, format=HEAD_FORMAT)
    arrays: dict[str, npt.NDArray[Any]] = {
        "labels": np.asarray(head.labels, dtype=str),
        "suspect_labels": np.asarray(head.suspect_labels, dtype=str),
        "weights": head.weights.astype(np.float32),
        "bias": head.bias.astype(np.float32),
        "mean": head.mean.astype(np.float32),
        "scale": head.scale.astype(np.float32),
        "scalars": np.asarray([head.temperature, head.reject_threshold], dtype=np.float64),
        "meta": np.asarray(json.dumps(meta, sort_keys=True)),
    }
    return write_sealed(path, arrays)


def load_head(path: Path) -> Head:
    """Read and verify a head; any problem is a ModelLoadError naming the file."""
    arrays, stored = read_sealed(path, "head")
    try:
        meta = json.loads(str(arrays["meta"]))
        labels = tuple(str(x) for x in arrays["labels"])
        suspects = tuple(str(x) for x in arrays["suspect_labels"])
        temperature, threshold = (float(x) for x in arrays["scalars"])
        head = Head(
            labels=labels,
            weights=arrays["weights"].astype(np.float32),
            bias=arrays["bias"].astype(np.float32),
            mean=arrays["mean"].astype(np.float32),
            scale=arrays["scale"].astype(np.float32),
            temperature=temperature,
            reject_threshold=threshold,
            suspect_labels=suspects,
            meta=dict(meta, sha256=stored),
        )
    except (KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"head file {path} lacks a field or has a bad one: {exc}") from exc
    check_head(head, path)
    return head


def check_head(head: Head, path: Path) -> None:
    """Labels and array shapes must agree with each other."""
    n = len(head.labels)
    if n < 2 or len(set(head.labels)) != n:
        raise ModelLoadError(f"head {path}: labels {list(head.labels)} must be at least two distinct names")
    if head.weights.shape != (head.dim, n) or head.bias.shape != (n,):
        raise ModelLoadError(
            f"head {path}: weights {head.weights.shape} and bias {head.bias.shape} do not fit {n} labels"
        )
    if head.mean.shape != (head.dim,) or head.scale.shape != (head.dim,):
        raise ModelLoadError(f"head {path}: standardisation vectors do not fit dimension {head.dim}")
    unknown = [s for s in head.suspect_labels if s not in head.labels]
    if unknown:
        raise ModelLoadError(
            f"head {path}: suspect labels {unknown} are not among its labels {list(head.labels)}"
        )


def fit_softmax(
    x: F32,
    y: npt.NDArray[np.int64],
    classes: int,
    epochs: int = 300,
    l2: float = 1e-3,
    lr: float = 0.05,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[F32, F32]:
    """Multinomial logistic regression by full-batch Adam with class-balanced weights."""
    rng = np.random.default_rng(0)
    n, dim = x.shape
    w = (rng.standard_normal((dim, classes)) * 0.01).astype(np.float32)
    b = np.zeros(classes, dtype=np.float32)
    counts = np.bincount(y, minlength=classes).astype(np.float32)
    sample_w = (n / (classes * np.maximum(counts, 1)))[y].astype(np.float32)
    onehot = np.eye(classes, dtype=np.float32)[y]
    state = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)]
    for epoch in range(1, epochs + 1):
        p = softmax(x @ w + b)
        loss = float(-(sample_w * np.log(p[np.arange(n), y] + 1e-9)).mean() + 0.5 * l2 * (w * w).sum())
        g = (p - onehot) * sample_w[:, None] / n
        gw = x.T @ g + l2 * w
        gb = g.sum(axis=0)
        for i, (param, grad) in enumerate(((w, gw), (b, gb))):
            m, v = state[2 * i], state[2 * i + 1]
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= lr * (m / (1 - 0.9**epoch)) / (np.sqrt(v / (1 - 0.999**epoch)) + 1e-8)
        if progress is not None and (epoch % 25 == 0 or epoch == epochs):
            progress(epoch, loss)
    return w, b


def fit_temperature(logits: F32, y: npt.NDArray[np.int64]) -> float:
    """Temperature (>= 1) minimising held-out negative log-likelihood, by grid search.

    Only softening is allowed: a validation split that is perfectly separated would otherwise
    drive the temperature to zero and make every later answer look certain.
    """
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(0.0, np.log(20.0), 61)):
        p = softmax(logits / t)
        nll = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def threshold_for_precision(
    top_prob: F32, correct: npt.NDArray[np.bool_], target: float
) -> tuple[float, float]:
    """Lowest confidence threshold whose accepted set reaches `target` precision, and its coverage.

    Returns (threshold, coverage); when no threshold reaches the target, (above every score, 0.0).
    """
    order = np.argsort(-top_prob, kind="stable")
    hits = np.cumsum(correct[order])
    precision = hits / np.arange(1, len(order) + 1)
    ok = np.nonzero(precision >= target)[0]
    if len(ok) == 0:
        return float(np.nextafter(top_prob.max(), np.float32(2.0))), 0.0
    k = int(ok.max())
    # Ties: everything scoring at least the k-th score is accepted, so report what that really covers.
    threshold = float(top_prob[order[k]])
    accepted = top_prob >= threshold
    if correct[accepted].mean() < target:
        threshold = float(np.nextafter(np.float32(threshold), np.float32(2.0)))
        accepted = top_prob >= threshold
    return threshold, float(accepted.mean())
