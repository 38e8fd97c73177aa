"""The shipped footwear counterfeit head: it loads, its record matches it, it credits its data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.config import load_edge_config
from models.classifier import Classifier
from models.heads import load_head
from models.manifest import sha256_file

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "models" / "artifacts"
HEAD = ARTIFACTS / "footwear" / "counterfeit_footwear.npz"
RECORD = ARTIFACTS / "footwear" / "counterfeit_footwear.record.json"
MANIFEST = ARTIFACTS / "efficientnet_lite0.manifest.json"


@pytest.fixture(scope="module")
def record() -> dict[str, object]:
    data: dict[str, object] = json.loads(RECORD.read_text(encoding="utf-8"))
    return data


def test_record_matches_the_file_and_the_head(record: dict[str, object]) -> None:
    assert record["file"] == HEAD.name and record["file_sha256"] == sha256_file(HEAD)
    head = load_head(HEAD)  # verifies the head's own content digest
    assert record["content_sha256"] == head.meta["sha256"] and record["version"] == head.version
    assert head.labels == ("fake", "genuine") and head.suspect_labels == ("fake",)
    assert head.meta["kind"] == record["kind"] == "camera"
    assert head.meta["categories"] == record["categories"] == ["footwear_clothing"]
    assert head.reject_threshold == record["reject_threshold"]


def test_record_credits_the_data_under_its_licence(record: dict[str, object]) -> None:
    head = load_head(HEAD)
    for data in (record["data"], head.meta["data"]):
        assert isinstance(data, dict)
        attribution = data["attribution"]
        assert "CC BY 4.0" in attribution and "aniket-panchal-mpjwi" in attribution
        assert "counterfeit-nike-shoes-detection" in attribution
        assert "not shipped" in data["description"]


def test_record_carries_grouped_validation_and_one_test_figure(record: dict[str, object]) -> None:
    validation, test = record["validation"], record["test"]
    assert isinstance(validation, dict) and isinstance(test, dict)
    assert validation["method"].startswith("grouped") and validation["groups"] >= 20
    assert 0.5 < validation["accuracy"] < 1.0 and validation["samples"] == 875
    assert test["samples"] == 238 and test["groups"] >= 10
    # Honest figures: the head's own grouped validation is near what unseen items give.
    assert abs(validation["accuracy"] - test["accuracy"]) <= 0.05


def test_station_loads_it_for_camera_footwear_only() -> None:
    cfg = load_edge_config(ROOT / "config" / "edge.example.toml").classifier
    assert cfg.head is not None and (ROOT / cfg.head).resolve() == HEAD.resolve()
    clf = Classifier.load(MANIFEST, head=HEAD)
    assert clf.head_summary == "head counterfeit-footwear-nike-1: camera images, footwear_clothing"
    # A generated product label is no shoe: the footwear head gives it no counterfeit verdict.
    label = next((ARTIFACTS / "demo" / "images").glob("*.jpg")).read_bytes()
    c = clf.classify(label, "camera")
    assert c.category != "footwear_clothing" and c.counterfeit_score is None and c.label is None
