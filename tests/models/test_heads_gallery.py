"""Heads, gallery, metrics and the model CLI, on a tiny generated ONNX model and generated images."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from models.classifier import Classifier, ModelLoadError
from models.evaluate import evaluate_head, expected_calibration_error, group_folds, metrics
from models.gallery import Gallery, GalleryError, load_gallery, save_gallery
from models.heads import Head, load_head, save_head, threshold_for_precision
from models.train import DatasetError, Sample, fit_head, scan_folder, train_head

COLOURS = {"counterfeit": (30, 30, 220), "genuine": (220, 60, 30)}  # BGR


def _write_dataset(root: Path, per_class: int = 12, series: int = 2) -> Path:
    """root/<label>/S<k>_<n>.png: noisy pictures of one dominant colour per class, in `series` series."""
    rng = np.random.default_rng(3)
    for label, colour in COLOURS.items():
        (root / label).mkdir(parents=True)
        for n in range(per_class):
            img = np.clip(np.array(colour) + rng.normal(0, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / label / f"S{label[0]}{n % series}_{n:03d}.png"), img)
    return root


def _synthetic_head(labels: tuple[str, ...] = ("counterfeit", "genuine"), dim: int = 8) -> Head:
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((len(labels), dim)).astype(np.float32) * 3
    y = np.repeat(np.arange(len(labels)), 30)
    x = (centres[y] + rng.standard_normal((len(y), dim))).astype(np.float32)
    meta: dict[str, object] = {"version": "synthetic-1", "backbone": "tiny-1"}
    return fit_head(x, y, labels, x[::3], y[::3], 0.99, None, meta, quiet=True)


def test_head_round_trip_and_suspect_score(tmp_path: Path) -> None:
    head = _synthetic_head()
    assert head.suspect_labels == ("counterfeit",)
    path = tmp_path / "head.npz"
    digest = save_head(head, path)
    loaded = load_head(path)
    assert loaded.labels == head.labels and loaded.meta["sha256"] == digest
    probs = loaded.predict_proba(np.ones((1, 8), np.float32))
    np.testing.assert_allclose(probs, head.predict_proba(np.ones((1, 8), np.float32)))
    assert loaded.suspect_score(probs[0]) == pytest.approx(float(probs[0, 0]))
    plain = _synthetic_head(("handgun", "shuriken"))
    assert plain.suspect_score(np.array([0.5, 0.5], np.float32)) is None


def test_tampered_or_missing_head_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "head.npz"
    save_head(_synthetic_head(), path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["bias"] = arrays["bias"] + 1.0
    np.savez(path, **arrays)
    with pytest.raises(ModelLoadError, match="sha256"):
        load_head(path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_head(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ModelLoadError):
        load_head(tmp_path / "junk.npz")


def test_head_with_other_embedding_width_is_refused(tiny_manifest: Path, tmp_path: Path) -> None:
    path = tmp_path / "wide.npz"
    save_head(_synthetic_head(dim=16), path)
    with pytest.raises(ModelLoadError, match="16-d"):
        Classifier.load(tiny_manifest, head=path)


def test_gallery_add_nearest_remove_and_digest(tmp_path: Path) -> None:
    g = Gallery.empty(4, "tiny-1")
    g = g.add(np.array([1, 0, 0, 0], np.float32), "a", "fake watch", "review 1")
    g = g.add(np.array([0, 1, 0, 0], np.float32), "b", "fake bag", "review 2")
    g = g.add(np.array([1, 1, 0, 0], np.float32), "c", "fake shoe", "rights holder")
    best = g.nearest(np.array([2, 0.1, 0, 0], np.float32), k=2)
    assert [e.ref_id for e, _ in best] == ["a", "c"]
    assert best[0][1] == pytest.approx(2 / np.hypot(2, 0.1), rel=1e-5)
    g = g.add(np.array([1, 0, 0, 0], np.float32), "x", "fake gun part", "review 3", kind="xray")
    assert [e.ref_id for e, _ in g.nearest(np.array([1, 0, 0, 0], np.float32), k=5, kind="xray")] == ["x"]
    assert "x" not in [e.ref_id for e, _ in g.nearest(np.array([1, 0, 0, 0], np.float32), k=5, kind="camera")]
    g = g.remove("x")
    with pytest.raises(GalleryError, match="already"):
        g.add(np.ones(4, np.float32), "a", "x", "y")
    with pytest.raises(GalleryError, match="values"):
        g.add(np.ones(5, np.float32), "d", "x", "y")
    path = tmp_path / "g.npz"
    save_gallery(g.remove("b"), path)
    loaded = load_gallery(path)
    assert [e.ref_id for e in loaded.entries] == ["a", "c"] and loaded.version.startswith("gallery-2-")
    with pytest.raises(GalleryError, match="not in"):
        loaded.remove("zz")
    data = bytearray(path.read_bytes())
    data[-200] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError):
        load_gallery(path)


def test_threshold_for_precision_and_ece() -> None:
    top = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6], np.float32)
    correct = np.array([True, True, True, False, True, False])
    threshold, coverage = threshold_for_precision(top, correct, 0.99)
    assert threshold == pytest.approx(0.9) and coverage == pytest.approx(0.5)
    assert threshold_for_precision(top, correct, 0.5)[1] == pytest.approx(1.0)
    assert threshold_for_precision(top, ~correct | True, 0.99)[1] == 1.0
    nothing = threshold_for_precision(top, np.zeros(6, bool), 0.99)
    assert nothing[1] == 0.0 and nothing[0] > 0.99
    assert expected_calibration_error(np.array([1.0, 1.0], np.float32), np.array([True, True])) == 0.0
    assert expected_calibration_error(
        np.array([0.9, 0.9], np.float32), np.array([True, False])
    ) == pytest.approx(0.4)


def test_metrics_table() -> None:
    head = _synthetic_head(("a", "b", "c"))
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]], np.float32)
    y = np.array([0, 1, 2, 2])
    m = metrics(probs, y, ("a", "b", "c"), head, 0.99)
    assert m["accuracy"] == 0.75
    assert m["confusion"]["rows_true_cols_predicted"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert m["per_class"]["a"]["precision"] == 0.5 and m["per_class"]["c"]["recall"] == 0.5
    assert set(m) >= {"accuracy", "per_class", "confusion", "coverage_at_precision", "calibration"}


def test_scan_folder_and_series(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "data")
    samples = scan_folder(root)
    assert {s.label for s in samples} == set(COLOURS) and len(samples) == 24
    assert Sample(Path("x/B0049_0001.jpg"), "a").series == "B0049"
    folds = group_folds(samples, 2)
    held = [{samples[i].series for i in f} for f in folds]
    assert held[0].isdisjoint(held[1])
    with pytest.raises(DatasetError, match="groups"):
        group_folds(samples, 3)
    with pytest.raises(DatasetError):
        scan_folder(tmp_path / "missing")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DatasetError, match="two"):
        scan_folder(tmp_path / "one")


def test_a_corrupt_training_image_is_named(tiny_manifest: Path, tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "data", per_class=4)
    (root / "genuine" / "S9_broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"S9_broken\.png"):
        train_head(Classifier.load(tiny_manifest), scan_folder(root), "camera", views=0, quiet=True)


def test_train_and_evaluate_on_generated_images(tiny_manifest: Path, tmp_path: Path) -> None:
    clf = Classifier.load(tiny_manifest)
    samples = scan_folder(_write_dataset(tmp_path / "data"))
    head = train_head(clf, samples, "camera", views=1, quiet=True, version="h-1")
    assert head.meta["backbone"] == "tiny-1" and head.labels == ("counterfeit", "genuine")
    result = evaluate_head(clf, head, samples, "camera", quiet=True)
    assert result["accuracy"] >= 0.9
    path = tmp_path / "head.npz"
    save_head(head, path)
    with_head = Classifier.load(tiny_manifest, head=path)
    bgr = cv2.imread(str(samples[0].path))
    assert bgr is not None
    c = with_head.classify(np.ascontiguousarray(bgr[:, :, ::-1]))
    assert c.label in head.labels and c.counterfeit_score is not None
    assert with_head.version == "tiny-1+h-1"
    # The head was trained on camera images: it says nothing about an X-ray.
    xray = with_head.classify(samples[0].path.read_bytes(), kind="xray")
    assert xray.label is None and xray.counterfeit_score is None


def test_model_cli_train_eval_gallery(
    tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_dataset(tmp_path / "data")
    head = tmp_path / "head.npz"
    common = ["--manifest", str(tiny_manifest), "--threads", "1"]
    assert main(["model", "train", *common, "--data", str(data), "--out", str(head), "--views", "1"]) == 0
    capsys.readouterr()
    assert main(["model", "eval", *common, "--data", str(data), "--head", str(head), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"accuracy", "per_class", "confusion", "coverage_at_precision", "calibration"}
    assert result["head"]["validation_accuracy"] is not None and result["groups"] >= 2
    assert main(["model", "eval", *common, "--data", str(data), "--head", str(head)]) == 0
    text = capsys.readouterr().out
    assert "at the head's threshold" in text and "majority baseline" in text
    gallery = tmp_path / "gallery.npz"
    image = next((data / "counterfeit").iterdir())
    add = ["model", "gallery", "add", *common, "--gallery", str(gallery), "--image", str(image)]
    assert main([*add, "--ref-id", "r1", "--label", "fake"]) == 0
    assert main([*add, "--ref-id", "r1", "--label", "fake"]) == 2  # duplicate id: clear error, exit 2
    assert main(["model", "gallery", "list", "--gallery", str(gallery)]) == 0
    assert "r1\tfake\tcamera" in capsys.readouterr().out
    clf = Classifier.load(tiny_manifest, head=head, gallery=gallery)
    match = clf.classify(image.read_bytes()).gallery[0]
    assert match.ref_id == "r1" and match.similarity == pytest.approx(1.0, abs=1e-4)
    assert main(["model", "gallery", "remove", "--gallery", str(gallery), "--ref-id", "r1"]) == 0
    assert load_gallery(gallery).entries == ()


def test_bench_writes_results(tiny_manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["--manifest", str(tiny_manifest), "--runs", "12", "--out", str(out), "--head", "none"]
    assert main(["bench", "classifier", *args, "--gallery", "none"]) == 0
    result = json.loads(out.read_text())
    summary = result["summary"]
    assert summary["bare_inference"]["median_ms"] > 0 and summary["full_classification"]["median_ms"] > 0
    assert {"machine", "method", "summary"} <= set(result)
