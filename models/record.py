"""`parcelguard model record`: the JSON record that ships beside a head (what, from what, how good).

A head file already seals its own weights and metadata; the record repeats what a reviewer needs
without loading it: the file's sha256, the image kind and goods categories it speaks for, where
its training data came from and under which licence (with the attribution that licence requires),
its grouped validation figures and, when given, one evaluation on held-out data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.heads import load_head
from models.manifest import sha256_file

RECORD_FORMAT = "parcelguard-head-record-1"
# The figures from `model eval --json` that belong in a record (the rest is in the full result).
EVAL_KEYS = (
    "samples",
    "groups",
    "accuracy",
    "majority_baseline",
    "per_class",
    "confusion",
    "coverage_at_precision",
    "station_scope",
)


def head_record(head_path: Path, evaluation: dict[str, Any] | None, evaluated_on: str) -> dict[str, Any]:
    head = load_head(head_path)
    meta = dict(head.meta)
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "file": head_path.name,
        "file_sha256": sha256_file(head_path),
        "content_sha256": meta.pop("sha256"),
        "version": head.version,
        "labels": list(head.labels),
        "suspect_labels": list(head.suspect_labels),
        "backbone": meta.get("backbone"),
        "kind": meta.get("kind"),
        "categories": meta.get("categories", []),
        "temperature": head.temperature,
        "reject_threshold": head.reject_threshold,
        "data": meta.get("data", {}),
        "validation": meta.get("validation", {}),
        "trained": {k: meta.get(k) for k in ("trained_utc", "train_images", "augmented_views", "per_label")},
    }
    if evaluation is not None:
        calibration = evaluation.get("calibration", {})
        record["test"] = {
            "data": evaluated_on,
            **{k: evaluation[k] for k in EVAL_KEYS if k in evaluation},
            "calibration": {k: calibration.get(k) for k in ("ece", "nll", "brier", "mean_confidence")},
        }
    return record


def write_head_record(head_path: Path, out: Path, evaluation: Path | None, evaluated_on: str) -> Path:
    result = json.loads(evaluation.read_text(encoding="utf-8")) if evaluation is not None else None
    record = head_record(head_path, result, evaluated_on)
    out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
