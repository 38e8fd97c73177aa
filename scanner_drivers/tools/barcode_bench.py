"""Benchmark: the project's barcode reader against bare pyzbar and bare zxing-cpp on labelled images."""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from scanner_drivers.barcodes import engines as engines
from scanner_drivers.barcodes.engines import GreyImage
from scanner_drivers.barcodes.reader import BarcodeImageError, BarcodeSettings, load_image, read_barcodes
from scanner_drivers.types import Code

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
HALVES = ("A", "B")
_SERIES = re.compile(r"-(\d+)$")
NEGATIVE_PREFIX = "falsepositives"
READER_PROJECT = "parcelguard"
READER_ZXING = "zxing-cpp"
READER_PYZBAR = "pyzbar"

METHOD = (
    "Samples: every image N.(png|jpg|webp|...) with an expected text in N.txt beside it (labelled), plus "
    "every image in a folder whose name starts with 'falsepositives' (negative: must give no code); other "
    "images (several codes without a .txt, structured-append parts, binary .bin expectations) are listed "
    "as skipped. Each image file is decoded once to 8-bit greyscale by the project's loader, outside the "
    "timing; then the three readers run one after the other on the same array, in one process, taking "
    "turns at going first: "
    "parcelguard = scanner_drivers.barcodes.reader.read_barcodes with default settings; zxing-cpp = "
    "zxingcpp.read_barcodes with its defaults except text_mode=Plain (so text is compared as encoded, "
    "not rewritten for display); pyzbar = pyzbar.pyzbar.decode with its defaults. An image counts as "
    "read when one returned code matches the expected text; a wrong read is a returned code that "
    "matches no expected text (on a negative image every code is wrong). Texts match modulo "
    "presentation: UPC-A as EAN-13 with a leading 0, CRLF vs LF, Codabar start/stop letters, UPC-E vs its "
    "UPC-A expansion. Codes found in the skipped images are listed per reader, unscored. "
    "Milliseconds are wall time (time.perf_counter) per image over labelled and "
    "negative images; median and 95th percentile; median CPU ms is the process's processor time "
    "(time.process_time, all threads) per image, which other load on the machine disturbs less. "
    "Target: read rate at least 8 points above the better bare library, no more wrong reads than "
    "the bare library with the fewest, median at most 2x bare "
    "zxing-cpp's. --half A|B keeps the sets (folders) of one half, split by a fixed rule so that one "
    "half can tune and the other judge: a set named <kind>-<N> with N odd is in half A, N even in half "
    "B, a set without a number in A. --select GLOB keeps the sets whose folder name matches."
)


def half_of(set_name: str) -> str:
    """The half (A or B) a sample set belongs to: odd series numbers in A, even in B, none in A."""
    series = _SERIES.search(set_name)
    return "B" if series and int(series.group(1)) % 2 == 0 else "A"


def in_subset(set_name: str, half: str | None, select: str | None) -> bool:
    """Whether a set is kept by the --half and --select filters (either may be None)."""
    if half is not None and half_of(set_name) != half:
        return False
    return select is None or fnmatch.fnmatchcase(set_name, select)


@dataclass(frozen=True)
class Sample:
    """One benchmark image: its path, its set (folder) and the expected text (None for a negative)."""

    path: Path
    set_name: str
    expected: str | None


@dataclass
class ReaderTally:
    """Counts and timings for one reader over the whole run."""

    read: int = 0
    wrong: int = 0
    errors: int = 0
    ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    wrong_reads: list[dict[str, str]] = field(default_factory=list)

    def summary(self, labelled: int) -> dict[str, Any]:
        return {
            "read": self.read,
            "labelled": labelled,
            "read_rate_pct": round(100.0 * self.read / labelled, 2) if labelled else 0.0,
            "wrong_reads": self.wrong,
            "errors": self.errors,  # unreadable files, or the reader failing on an image
            "median_ms": round(statistics.median(self.ms), 3) if self.ms else 0.0,
            "p95_ms": round(float(np.percentile(self.ms, 95)), 3) if self.ms else 0.0,
            "median_cpu_ms": round(statistics.median(self.cpu_ms), 3) if self.cpu_ms else 0.0,
            "missed": self.missed,
            "wrong": self.wrong_reads,
        }


def find_samples(
    root: Path, half: str | None = None, select: str | None = None
) -> tuple[list[Sample], list[str]]:
    """The labelled and negative images under root, and the images skipped for want of an expectation;
    only sets kept by in_subset(half, select)."""
    if half is not None and half not in HALVES:
        raise ValueError(f"half must be one of {', '.join(HALVES)}, not {half!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"sample folder {root} does not exist")
    samples: list[Sample] = []
    skipped: list[str] = []
    # Sample sets may be linked in from elsewhere, so links to folders are followed.
    found = (Path(folder) / name for folder, _, names in os.walk(root, followlinks=True) for name in names)
    for path in sorted(found):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        set_name = path.parent.name
        if not in_subset(set_name, half, select):
            continue
        label = path.with_suffix(".txt")
        if set_name.startswith(NEGATIVE_PREFIX):
            samples.append(Sample(path, set_name, None))
        elif label.is_file():
            samples.append(Sample(path, set_name, _read_label(label)))
        else:
            skipped.append(str(path.relative_to(root)))
    return samples, skipped


def _read_label(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # A label in a legacy encoding still compares byte for byte with engines that fall back the same way.
        return data.decode("latin-1")


def _project_reader(
    settings: BarcodeSettings, steps: list[tuple[str, ...]]
) -> Callable[[GreyImage], list[Code]]:
    def read(grey: GreyImage) -> list[Code]:
        result = read_barcodes(grey, settings)
        steps.append(result.steps_tried)
        return list(result.codes)

    return read


def _call(reader: Callable[[GreyImage], list[Code]], grey: GreyImage) -> list[Code] | None:
    """Run one reader; None when it fails on the image (pyzbar raises on symbols it cannot orient)."""
    try:
        return reader(grey)
    except ValueError:
        return None


def _tally(tally: ReaderTally, sample: Sample, codes: Sequence[Code], name: str) -> None:
    if sample.expected is None:
        wrong = list(codes)
    else:
        expected = sample.expected
        if any(engines.same_text(c.text, expected) for c in codes):
            tally.read += 1
        else:
            tally.missed.append(name)
        wrong = [c for c in codes if not engines.same_text(c.text, expected)]
    tally.wrong += len(wrong)
    tally.wrong_reads.extend({"image": name, "text": c.text, "symbology": c.symbology} for c in wrong)


def run_bench(
    root: Path,
    settings: BarcodeSettings | None = None,
    limit: int | None = None,
    *,
    half: str | None = None,
    select: str | None = None,
) -> dict[str, Any]:
    """Run the three readers over the samples under root (only those kept by half and select) and
    return the results document."""
    settings = settings or BarcodeSettings()
    samples, skipped = find_samples(root, half, select)
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise FileNotFoundError(f"no labelled or negative barcode images under {root}")
    steps: list[tuple[str, ...]] = []
    readers: dict[str, Callable[[GreyImage], list[Code]]] = {
        READER_PROJECT: _project_reader(settings, steps),
        READER_ZXING: engines.bare_zxing,
        READER_PYZBAR: engines.bare_pyzbar,
    }
    tallies = {name: ReaderTally() for name in readers}
    unreadable: list[str] = []
    per_image: list[dict[str, Any]] = []
    warmed = False
    for index, sample in enumerate(samples):
        name = str(sample.path.relative_to(root))
        try:
            grey = load_image(sample.path.read_bytes(), settings)
        except BarcodeImageError:
            unreadable.append(name)
            grey = None
        if grey is not None and not warmed:
            # First calls load libraries and build tables; keep that out of the medians.
            for reader in readers.values():
                _call(reader, grey)
            warmed = True
        steps.clear()
        record: dict[str, Any] = {"image": name, "ms": {}, "read": {}}
        # The readers take turns going first, so that none always finds the caches cold (or warm) and
        # load on the machine falls on all of them alike.
        names = list(readers)
        order = names[index % len(names) :] + names[: index % len(names)]
        for reader_name in order:
            reader = readers[reader_name]
            tally = tallies[reader_name]
            before = tally.read, tally.wrong
            if grey is None:
                codes: list[Code] = []
                tally.errors += 1
                elapsed = cpu = 0.0
            else:
                began, cpu_began = time.perf_counter(), time.process_time()
                result = _call(reader, grey)
                elapsed = (time.perf_counter() - began) * 1000.0
                cpu = (time.process_time() - cpu_began) * 1000.0
                if result is None:
                    tally.errors += 1
                codes = result or []
            tally.ms.append(elapsed)
            tally.cpu_ms.append(cpu)
            _tally(tally, sample, codes, name)
            record["ms"][reader_name] = round(elapsed, 3)
            record.setdefault("cpu_ms", {})[reader_name] = round(cpu, 3)
            record["read"][reader_name] = (
                "wrong" if tally.wrong > before[1] else "read" if tally.read > before[0] else "none"
            )
        if grey is not None and steps:
            record["steps"] = list(steps[-1])
        per_image.append(record)
    labelled = sum(s.expected is not None for s in samples)
    unlabelled = _codes_without_expectation(root, skipped, readers, settings)
    summaries = {name: tally.summary(labelled) for name, tally in tallies.items()}
    return {
        "benchmark": "barcodes",
        "at_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "method": METHOD,
        "settings": settings.model_dump(mode="json"),
        "samples": {
            "half": half,
            "select": select,
            "sets": sorted({s.set_name for s in samples}),
            "labelled": labelled,
            "negative": len(samples) - labelled,
            "skipped_without_expectation": skipped,
            "unreadable_files": unreadable,
        },
        "readers": summaries,
        "target": _target(summaries),
        "unlabelled_codes": unlabelled,
        "per_image": per_image,
    }


def _codes_without_expectation(
    root: Path,
    skipped: list[str],
    readers: dict[str, Callable[[GreyImage], list[Code]]],
    settings: BarcodeSettings,
) -> dict[str, dict[str, list[str]]]:
    """What each reader finds in images with no expected text (several codes per image, for one):
    reported for inspection, not scored."""
    found: dict[str, dict[str, list[str]]] = {}
    for name in skipped:
        try:
            grey = load_image((root / name).read_bytes(), settings)
        except BarcodeImageError:
            continue
        found[name] = {
            reader_name: [c.text for c in _call(reader, grey) or []]
            for reader_name, reader in readers.items()
        }
    return found


def _target(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ours = summaries[READER_PROJECT]
    bare = [summaries[READER_ZXING], summaries[READER_PYZBAR]]
    best_rate = max(b["read_rate_pct"] for b in bare)
    fewest_wrong = min(b["wrong_reads"] for b in bare)
    zxing_median = summaries[READER_ZXING]["median_ms"]
    ratio = ours["median_ms"] / zxing_median if zxing_median else float("inf")
    zxing_cpu = summaries[READER_ZXING]["median_cpu_ms"]
    checks = {
        "read_rate_points_above_best_bare": round(ours["read_rate_pct"] - best_rate, 2),
        "read_rate_ok": ours["read_rate_pct"] >= best_rate + 8.0,
        "wrong_reads_vs_fewest_bare": f"{ours['wrong_reads']} vs {fewest_wrong}",
        "wrong_reads_ok": ours["wrong_reads"] <= fewest_wrong,
        "median_ratio_to_zxing": round(ratio, 2),
        "median_ok": ratio <= 2.0,
        "median_cpu_ratio_to_zxing": round(ours["median_cpu_ms"] / zxing_cpu, 2) if zxing_cpu else None,
    }
    checks["met"] = bool(checks["read_rate_ok"] and checks["wrong_reads_ok"] and checks["median_ok"])
    return checks


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "zxing-cpp": _version("zxing-cpp"),
        "pyzbar": _version("pyzbar"),
        "opencv": _version("opencv-python-headless"),
    }


def format_table(results: dict[str, Any]) -> str:
    """The human-readable table the bench command prints."""
    lines = [
        f"{'reader':<12} {'read':>9} {'rate %':>7} {'wrong':>6} {'median ms':>10} {'p95 ms':>8} "
        f"{'cpu ms':>7}",
    ]
    for name, row in results["readers"].items():
        lines.append(
            f"{name:<12} {row['read']:>4}/{row['labelled']:<4} {row['read_rate_pct']:>7.1f} "
            f"{row['wrong_reads']:>6} {row['median_ms']:>10.2f} {row['p95_ms']:>8.2f} "
            f"{row['median_cpu_ms']:>7.2f}"
        )
    samples = results["samples"]
    target = results["target"]
    unlabelled = results.get("unlabelled_codes", {})
    if unlabelled:
        counts = {name: sum(len(found[name]) for found in unlabelled.values()) for name in results["readers"]}
        lines.append(
            f"codes found in the {len(unlabelled)} images without expected text (not scored): "
            + ", ".join(f"{name} {count}" for name, count in counts.items())
        )
    lines.append(
        f"images: {samples['labelled']} labelled, {samples['negative']} negative, "
        f"{len(samples['skipped_without_expectation'])} skipped (no expected text)"
    )
    lines.append(
        f"target: +{target['read_rate_points_above_best_bare']} points (need +8), "
        f"wrong {target['wrong_reads_vs_fewest_bare']}, median {target['median_ratio_to_zxing']}x zxing-cpp "
        f"(need <= 2x; CPU {target['median_cpu_ratio_to_zxing']}x): {'MET' if target['met'] else 'NOT MET'}"
    )
    return "\n".join(lines)


def write_results(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
