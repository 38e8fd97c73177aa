"""A counterfeit head speaks only on the image kinds and goods categories it was trained for."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from edge.classify import ClassifierStage, sha256_hex
from edge.config import ClassifierConfig, PolicyConfig
from edge.decide import ParcelFacts, Reason, decide
from models.categories import GOODS_CATEGORIES
from models.classifier import Classifier
from models.heads import Head, save_head

HERE = Path(__file__).resolve().parent


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_helper_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _load(HERE.parent / "models" / "conftest.py")


def _head(path: Path, categories: list[str], kind: str = "camera") -> Path:
    """A head that calls everything counterfeit with certainty, for the goods it names."""
    dim = tiny.TINY_DIM
    weights = np.zeros((dim, 2), np.float32)
    meta = {"version": f"always-fake-{len(categories)}", "backbone": "tiny-1", "kind": kind}
    meta["categories"] = categories  # type: ignore[assignment]
    head = Head(
        ("counterfeit", "genuine"),
        weights,
        np.asarray([10.0, 0.0], np.float32),
        np.zeros(dim, np.float32),
        np.ones(dim, np.float32),
        1.0,
        0.5,
        ("counterfeit",),
        meta,
    )
    save_head(head, path)
    return path


def _logits_for(imagenet_class: int | None) -> np.ndarray:
    logits = np.zeros(1000, np.float32)
    if imagenet_class is not None:
        logits[imagenet_class] = 20.0
    return logits


def test_head_speaks_only_on_its_goods_categories(tmp_path: Path) -> None:
    manifest = tiny.write_tiny_manifest(tmp_path / "model")
    head = _head(tmp_path / "shoes.npz", ["footwear_clothing"])
    clf = Classifier.load(manifest, head=head)
    emb = np.ones(tiny.TINY_DIM, np.float32)
    shoe = clf.interpret(emb, _logits_for(770), "camera")  # running shoe
    assert shoe.category == "footwear_clothing" and shoe.counterfeit_score is not None
    assert shoe.counterfeit_score > 0.99 and not shoe.uncertain
    watch = clf.interpret(emb, _logits_for(531), "camera")  # digital watch
    assert watch.category == "watches_jewellery" and watch.counterfeit_score is None and watch.label is None
    # Nothing recognisable (flat logits land in "other"): no verdict rather than a guess.
    unknown = clf.interpret(emb, _logits_for(None), "camera")
    assert unknown.category == "other" and unknown.counterfeit_score is None
    # A camera head knows no X-rays, whatever the ImageNet mapping makes of them.
    assert clf.interpret(emb, _logits_for(770), "xray").counterfeit_score is None
    assert clf.head_summary == "head always-fake-1: camera images, footwear_clothing"


def test_station_stage_reports_and_keeps_to_the_head_scope(tmp_path: Path) -> None:
    manifest = tiny.write_tiny_manifest(tmp_path / "model")
    ok, png = cv2.imencode(".png", np.full((40, 40, 3), 120, np.uint8))
    assert ok
    data = png.tobytes()
    images = [(sha256_hex(data), "camera", data)]
    policy = PolicyConfig()

    # A head for goods the camera mapping never gives: the station asks it about nothing.
    narrow = _head(tmp_path / "chem.npz", ["explosive_precursors"])
    stage = ClassifierStage(ClassifierConfig(enabled=True, manifest=manifest, head=narrow))
    assert "explosive_precursors" in stage.heads_summary and stage.heads_summary in stage.describe
    result = stage.run(images)
    assert result.state == "on" and result.views[0].counterfeit_score is None
    facts = ParcelFacts("ok", "SF1", classifier_state="on", images=result.views)
    assert Reason.COUNTERFEIT_SUSPECT not in decide(facts, policy).reasons

    # The same head bound to no category speaks on every camera image, and its verdict counts.
    broad = _head(tmp_path / "any.npz", [])
    stage = ClassifierStage(ClassifierConfig(enabled=True, manifest=manifest, head=broad))
    assert stage.heads_summary.endswith("camera images, any goods category")
    result = stage.run(images)
    assert result.views[0].counterfeit_score is not None
    facts = ParcelFacts("ok", "SF1", classifier_state="on", images=result.views)
    assert Reason.COUNTERFEIT_SUSPECT in decide(facts, policy).reasons

    assert ClassifierStage(ClassifierConfig()).heads_summary == "no counterfeit head"
    assert "explosive_precursors" in GOODS_CATEGORIES
