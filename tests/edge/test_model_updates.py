"""Model updates against the real server: a published model is verified and switched to, or shadowed."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from edge.agent import EdgeAgent
from edge.config import ClassifierConfig, DevicesConfig, EdgeConfig, ServerLinkConfig, StationConfig
from edge.model_updates import Artefact, ArtefactError
from server.schema import gallery, model_artifacts

HERE = Path(__file__).resolve().parent


def load_test_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_helper_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = load_test_module(HERE.parent / "models" / "conftest.py")
sync_world = load_test_module(HERE / "test_sync.py")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Any]:
    w = sync_world.World(tmp_path)
    yield w
    w.stop()


@pytest.fixture
def agent(world: Any, tmp_path: Path) -> Iterator[EdgeAgent]:
    manifest = tiny.write_tiny_manifest(tmp_path / "model-1", "tiny-1")
    (tmp_path / "reads.jsonl").write_text("", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id="S1", site_id="SITE1", line_id="L1", data_dir=tmp_path / "edge"),
        devices=DevicesConfig(scanner=f"fake://{tmp_path / 'reads.jsonl'}?speed=0"),
        server=ServerLinkConfig(url=world.url, models_interval_s=3600),
        classifier=ClassifierConfig(enabled=True, manifest=manifest),
    )
    a = EdgeAgent(cfg, token=world.token)
    yield a
    a.stop()


def publish(world: Any, folder: Path, version: str, mode: str = "active", lie: bool = False) -> None:
    manifest_path = tiny.write_tiny_manifest(folder, version)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    onnx = (manifest_path.parent / manifest["file"]).read_bytes()
    sha = hashlib.sha256(onnx).hexdigest()
    # What a publisher sends: only the fields that differ from the running model's manifest.
    published = {"version": version, "sha256": "0" * 64 if lie else sha, "file": manifest["file"]}
    r = httpx.put(
        f"{world.url}/api/v1/models/backbone/{version}",
        params={"sha256": sha, "kind": "model", "mode": mode, "manifest": json.dumps(published)},
        content=onnx,
        headers={
            "Authorization": f"Bearer {world.network_admin_token}",
            "Content-Type": "application/octet-stream",
        },
        timeout=30,
    )
    assert r.status_code == 201, r.text


@pytest.mark.slow
def test_published_model_is_verified_then_live_or_shadow(
    world: Any, agent: EdgeAgent, tmp_path: Path
) -> None:
    assert agent.models is not None and agent.classifier.live is not None
    assert agent.classifier.live.version.startswith("tiny-1")
    publish(world, tmp_path / "pub2", "tiny-2")
    assert "model backbone tiny-2 (active)" in agent.models.check_once()
    assert agent.classifier.live.version.startswith("tiny-2")
    assert agent.models.check_once() == []  # nothing new: nothing downloaded or reloaded
    publish(world, tmp_path / "pub3", "tiny-3", mode="shadow")
    agent.models.check_once()
    assert agent.classifier.shadow is not None and agent.classifier.shadow.version.startswith("tiny-3")
    assert agent.classifier.live.version.startswith("tiny-2")
    photo = cv2.imencode(".png", np.full((40, 40, 3), 120, np.uint8))[1].tobytes()
    result = agent.classifier.run([("a" * 64, "camera", photo)])
    assert [(w.model_version.split("+")[0], w.shadow) for w in result.wire] == [
        ("tiny-2", False),
        ("tiny-3", True),
    ]


@pytest.mark.slow
def test_a_lying_artefact_is_refused_and_the_running_model_stays(
    world: Any, agent: EdgeAgent, tmp_path: Path
) -> None:
    assert agent.models is not None and agent.classifier.live is not None
    publish(world, tmp_path / "pub2", "tiny-2", lie=True)
    assert agent.models.check_once() == []
    assert agent.classifier.live.version.startswith("tiny-1")
    model_tile = next(d for d in agent.health.snapshot(0)["devices"] if d["name"] == "model")
    assert "update refused" in model_tile["detail"] and "tiny-2" in model_tile["detail"]
    assert agent.models.check_once() == []  # refused once, not retried every round


@pytest.mark.slow
def test_officers_references_reach_the_gallery(world: Any, agent: EdgeAgent) -> None:
    assert agent.models is not None and agent.classifier.live is not None
    rng = np.random.default_rng(5)
    photo = cv2.imencode(".png", rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))[1].tobytes()
    sha = hashlib.sha256(photo).hexdigest()
    r = httpx.put(
        f"{world.url}/api/v1/images/{sha}",
        content=photo,
        headers={"Authorization": f"Bearer {world.token}", "Content-Type": "image/png"},
    )
    assert r.status_code in (200, 201), r.text
    engine = sa.create_engine(world.settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            gallery.insert().values(
                ref_id=str(uuid.uuid4()),
                image_sha256=sha,
                label="seized fake trainers",
                category="footwear_clothing",
                kind="camera",
                review_id=None,
                added_by="officer1",
                created_at="2026-11-22T08:00:00+00:00",
            )
        )
    engine.dispose()
    changed = agent.models.check_once()
    assert len(changed) == 1 and changed[0].startswith("gallery reference")
    c = agent.classifier.live.classify(photo, "camera")
    assert c.gallery and c.gallery[0].label == "seized fake trainers" and c.gallery[0].similarity > 0.999
    assert agent.models.check_once() == []


def _store_artefact(world: Any, name: str, version: str, data: bytes, manifest: dict[str, Any]) -> None:
    """What a server that let any name through (older, or not ours) would list."""
    engine = sa.create_engine(world.settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            model_artifacts.insert().values(
                name=name,
                kind="model",
                version=version,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                data=data,
                mode="active",
                manifest=json.dumps(manifest),
                published_by="admin",
                created_at="2026-11-22T08:00:00+00:00",
            )
        )
    engine.dispose()


@pytest.mark.slow
def test_artefacts_named_to_escape_the_models_folder_are_refused(
    world: Any, agent: EdgeAgent, tmp_path: Path
) -> None:
    assert agent.models is not None and agent.classifier.live is not None
    data = b"not a model"
    manifest = {"sha256": hashlib.sha256(data).hexdigest()}
    for name, version in ((".", ".."), ("..", ".."), ("x", "../../../escaped"), ("..", "escaped")):
        _store_artefact(world, name, version, data, manifest)
    assert agent.models.check_once() == []
    # A link inside the models folder to somewhere else is refused like "..".
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    models_dir = agent.models.folder
    (models_dir / "model").mkdir(parents=True, exist_ok=True)
    (models_dir / "model" / "linked").symlink_to(outside, target_is_directory=True)
    _store_artefact(world, "linked", "1", data, manifest)
    assert agent.models.check_once() == []
    assert agent.classifier.live.version.startswith("tiny-1")
    written = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert "model.onnx" not in written and "manifest.json" not in {p.name for p in outside.iterdir()}
    tile = next(d for d in agent.health.snapshot(0)["devices"] if d["name"] == "model")
    assert "update refused" in tile["detail"] and "outside the models folder" in tile["detail"]
    # A listing that points the download elsewhere would hand this station's token to that host.
    away = Artefact("backbone", "model", "2", "0" * 64, "active", {}, "http://elsewhere.example/m")
    with pytest.raises(ArtefactError, match="not on this server"):
        agent.models._apply(away)
    # The listing shows the newest ".." only: four artefacts, each refused once.
    assert agent.models.failed == {
        "model . .. (active)",
        "model x ../../../escaped (active)",
        "model .. escaped (active)",
        "model linked 1 (active)",
    }
