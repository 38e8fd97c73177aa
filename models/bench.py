"""`parcelguard bench classifier`: bare onnxruntime inference against the full per-image classification."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.classifier import Classifier
from models.train import IMAGE_SUFFIXES


def machine() -> dict[str, Any]:
    """The machine figures were measured on (CPU model, cores, library versions), for results files."""
    import onnxruntime as ort

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }


def sample_jpegs() -> dict[str, bytes]:
    """The photos bundled with scikit-image, JPEG-encoded at their own size as a camera would send them."""
    from skimage import data

    out: dict[str, bytes] = {}
    for name in ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "retina"):
        rgb = np.asarray(getattr(data, name)(), dtype=np.uint8)
        ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            out[name] = buf.tobytes()
    return out


def _size(data: bytes) -> list[int]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return [] if image is None else [int(v) for v in image.shape[:2]]


def _stats(ms: list[float]) -> dict[str, float]:
    arr = np.asarray(ms)
    return {
        "median_ms": round(float(np.median(arr)), 3),
        "p95_ms": round(float(np.percentile(arr, 95)), 3),
        "mean_ms": round(float(arr.mean()), 3),
    }


def _summary(
    clf: Classifier, threads: int, images: int, bare: list[float], full: list[float]
) -> dict[str, Any]:
    bare_stats, full_stats = _stats(bare), _stats(full)
    return {
        "model": clf.version,
        "precision": clf.manifest.precision,
        "threads": threads,
        "images": images,
        "calls_each": len(bare),
        "bare_inference": bare_stats,
        "full_classification": full_stats,
        "ratio_median_full_over_bare": round(full_stats["median_ms"] / bare_stats["median_ms"], 3),
        "target_ratio": 1.25,
    }


def run_bench(
    manifest: Path,
    images: Path | None,
    kind: str,
    runs: int,
    threads: int,
    out: Path,
    head: Path | None = None,
    gallery: Path | None = None,
    compare: Path | None = None,
) -> dict[str, Any]:
    """Time both paths on the same session and images, interleaved so drift hits both equally.

    With `compare`, a second model (e.g. the int8 variant) is timed in the same loop, image by image.
    """
    models = [Classifier.load(manifest, head=head, gallery=gallery, threads=threads)]
    if compare is not None:
        models.append(Classifier.load(compare, head=head, gallery=gallery, threads=threads))
    if images is None:
        encoded = sample_jpegs()
    else:
        files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:64]
        encoded = {p.name: p.read_bytes() for p in files}
    if not encoded:
        raise ValueError(f"no images to benchmark in {images}")
    tensors = [{name: clf.preprocess(data, kind) for name, data in encoded.items()} for clf in models]
    bare: list[list[float]] = [[] for _ in models]
    full: list[list[float]] = [[] for _ in models]
    per_run = max(1, runs // len(encoded))
    for _ in range(per_run):
        for name, data in encoded.items():
            for m, clf in enumerate(models):
                feed = {clf.manifest.input.name: tensors[m][name]}
                t0 = time.perf_counter()
                clf.session.run(None, feed)  # type: ignore[attr-defined]
                t1 = time.perf_counter()
                clf.classify(data, kind)
                t2 = time.perf_counter()
                bare[m].append((t1 - t0) * 1000)
                full[m].append((t2 - t1) * 1000)
    summary = _summary(models[0], threads, len(encoded), bare[0], full[0])
    if compare is not None:
        other = _summary(models[1], threads, len(encoded), bare[1], full[1])
        summary["compare"] = other
        summary["bare_speedup_of_compare"] = round(
            summary["bare_inference"]["median_ms"] / other["bare_inference"]["median_ms"], 3
        )
    result = {
        "benchmark": "classifier",
        "when_utc": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": machine(),
        "method": (
            "One onnxruntime session (CPU provider, intra-op threads as given, inter-op 1, no spinning), "
            "warmed up at load. For each image in turn: bare = session.run on the image's input tensor, "
            "prepared beforehand; full = Classifier.classify on the encoded image bytes (decode with "
            "DCT-domain downscaling for JPEG, resize/crop or pad, normalise, inference, category table, "
            "head, gallery). Both are timed with perf_counter, interleaved, same images."
        ),
        "kind": kind,
        "image_sizes": {name: _size(d) for name, d in list(encoded.items())[:16]},
        "summary": summary,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result
