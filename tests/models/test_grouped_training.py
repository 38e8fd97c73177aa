"""Grouped splits: near-duplicates stay on one side, and a head's own figures come from held-out groups."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.classifier import Classifier
from models.crossfit import calibrate, first_rows, out_of_fold_logits
from models.groups import (
    average_hash,
    file_groups,
    group_ids,
    grouped_folds,
    hash_file,
    series_of,
    session_pairs,
)
from models.heads import save_head
from models.preprocess import ImageDecodeError, detail_tiles, load_image
from models.train import DatasetError, embed_samples, scan_folder, train_head


def _scene(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A random picture of dark and bright blocks, so that its average hash is its own and stable."""
    bright = rng.integers(0, 2, (8, 8, 1)) * 150
    blocks = (bright + rng.integers(0, 90, (8, 8, 3))).astype(np.uint8)
    big = np.asarray(cv2.resize(blocks, (size, size), interpolation=cv2.INTER_NEAREST), dtype=np.float32)
    return np.asarray(np.clip(big + rng.normal(0, 8, big.shape), 0, 255), dtype=np.uint8)


def _perturb(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A near-duplicate: slightly shifted, brighter or darker, noisier, re-encoded as JPEG."""
    dx, dy = (float(v) for v in rng.integers(-1, 2, 2))
    shift = np.asarray([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    out = cv2.warpAffine(img, shift, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)
    out = np.clip(out.astype(np.float32) * rng.uniform(0.95, 1.05) + rng.normal(0, 3, out.shape), 0, 255)
    ok, jpg = cv2.imencode(".jpg", out.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return np.asarray(cv2.imdecode(jpg, cv2.IMREAD_COLOR))


def _planted_set(root: Path, items: int = 8, copies: int = 3, seed: int = 5) -> dict[str, str]:
    """root/<label>/<unrelated name>.png: `items` distinct scenes per class, each with perturbed copies.

    File names share no series prefix and carry no number: only the content ties a copy to its original.
    Returns file name -> item id.
    """
    rng = np.random.default_rng(seed)
    item_of: dict[str, str] = {}
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    for label in ("fake", "genuine"):
        (root / label).mkdir(parents=True)
        for item in range(items):
            scene = _scene(rng)
            for copy in range(copies + 1):
                img = scene if copy == 0 else _perturb(scene, rng)
                name = "".join(rng.choice(letters, 10)) + ".png"
                cv2.imwrite(str(root / label / name), img)
                item_of[name] = f"{label}{item}"
    return item_of


def test_near_duplicates_are_one_group_and_never_straddle_folds(tmp_path: Path) -> None:
    item_of = _planted_set(tmp_path / "data")
    samples = scan_folder(tmp_path / "data")
    groups = file_groups([s.path for s in samples], [s.label for s in samples])
    items = [item_of[s.path.name] for s in samples]
    # Every planted copy joins its original, and distinct scenes stay apart.
    assert len(set(groups)) == len(set(items)) == 16
    for g in set(groups):
        assert len({it for it, gg in zip(items, groups, strict=True) if gg == g}) == 1
    folds = grouped_folds(groups, [s.label for s in samples], 4)
    seen: dict[str, int] = {}
    for f, part in enumerate(folds):
        assert {samples[i].label for i in part} == {"fake", "genuine"}  # every fold has both classes
        for i in part:
            assert seen.setdefault(items[i], f) == f  # an item's copies all sit in one fold
    # A stratified random split would have put copies of some item on both sides.
    rng = np.random.default_rng(0)
    val = set(rng.permutation(len(samples))[: len(samples) // 5].tolist())
    sides = {it: {i in val for i, x in enumerate(items) if x == it} for it in set(items)}
    assert any(len(s) == 2 for s in sides.values())


def test_hash_distance_and_series_rule() -> None:
    rng = np.random.default_rng(1)
    a = _scene(rng)
    h = np.stack([average_hash(a), average_hash(_perturb(a, rng)), average_hash(_scene(rng))])
    assert int((h[0] != h[1]).sum()) <= 20 < int((h[0] != h[2]).sum())
    assert series_of(Path("x/B0049_0001.jpg")) == "B0049" and series_of(Path("IMG1234.jpg")) == "IMG1234"
    # One series within one class is one object; a prefix shared by both classes joins nothing.
    far = np.stack([average_hash(_scene(rng)) for _ in range(4)])
    assert group_ids(far, ["B1", "B1", "B2", "B3"], ["a", "a", "a", "b"]) == [0, 0, 1, 2]
    assert len(set(group_ids(far, ["nike"] * 4, ["a", "a", "b", "b"]))) == 4


def test_undecodable_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageDecodeError, match="broken"):
        hash_file(bad)


def test_out_of_fold_figures_do_not_reward_memorised_duplicates() -> None:
    """Labels random per item, each item photographed 4 times: only memorising can score above chance.

    A random split scores the memorised copies (about 1.0); the grouped out-of-fold figure stays
    near chance, which is the truth about new items.
    """
    rng = np.random.default_rng(2)
    items, copies, dim = 60, 4, 128
    centres = rng.standard_normal((items, dim)).astype(np.float32)
    x = np.repeat(centres, copies, axis=0) + 0.05 * rng.standard_normal((items * copies, dim)).astype(
        np.float32
    )
    y = np.repeat(rng.integers(0, 2, items), copies).astype(np.int64)
    groups = np.repeat(np.arange(items), copies).tolist()
    owners = np.arange(len(y), dtype=np.int64)
    names = ["ab"[int(v)] for v in y]
    grouped = out_of_fold_logits(x, owners, y, grouped_folds(groups, names, 5), 2, 1e-3)
    shuffled = rng.permutation(len(y))
    random_folds = [sorted(shuffled[f::5].tolist()) for f in range(5)]
    leaky = out_of_fold_logits(x, owners, y, random_folds, 2, 1e-3)
    assert float((leaky.argmax(axis=1) == y).mean()) > 0.9
    assert calibrate(grouped, y, 0.99)["accuracy"] < 0.7


def test_head_records_grouped_validation_from_held_out_groups(tiny_manifest: Path, tmp_path: Path) -> None:
    _planted_set(tmp_path / "data")
    samples = scan_folder(tmp_path / "data")
    clf = Classifier.load(tiny_manifest)
    head = train_head(clf, samples, "camera", views=1, folds=4, quiet=True, categories=("footwear_clothing",))
    val = head.meta["validation"]
    assert val["groups"] == 16 and val["folds"] == 4 and val["samples"] == len(samples)
    assert head.meta["categories"] == ["footwear_clothing"] and head.meta["kind"] == "camera"
    assert head.reject_threshold == val["reject_threshold"] and head.temperature == val["temperature"]
    # The recorded accuracy is exactly that of predictions made without the predicted image's group.
    names = [s.label for s in samples]
    parts = grouped_folds(file_groups([s.path for s in samples], names), names, 4)
    x, owners = embed_samples(clf, samples, "camera", 1, 0)
    y = np.asarray([head.labels.index(n) for n in names], dtype=np.int64)
    oof = out_of_fold_logits(x, owners, y, parts, 2, float(val["l2"]))
    assert val["accuracy"] == pytest.approx(float((oof.argmax(axis=1) == y).mean()))
    # ... and that is not the accuracy on the training images themselves.
    plain = x[first_rows(owners, len(y))]
    in_sample = float((head.predict_proba(plain).argmax(axis=1) == y).mean())
    assert in_sample >= val["accuracy"]


def test_too_few_groups_is_a_clear_error(tiny_manifest: Path, tmp_path: Path) -> None:
    _planted_set(tmp_path / "data", items=1)
    with pytest.raises(DatasetError, match="two distinct groups"):
        train_head(
            Classifier.load(tiny_manifest), scan_folder(tmp_path / "data"), "camera", views=0, quiet=True
        )


def test_consecutive_photos_of_one_item_are_one_session() -> None:
    paths = [Path(f"d/fake/IMG_{n:04d}.jpg") for n in (1, 2, 3, 7)] + [Path("d/genuine/IMG_0004.jpg")]
    labels = ["fake"] * 4 + ["genuine"]
    emb = np.asarray([[1, 0], [0.9, 0.1], [0, 1], [1, 0], [1, 0]], dtype=np.float32)
    # 1-2 alike and consecutive; 2-3 consecutive but unlike; 7 not consecutive; the genuine one is
    # another class folder even though its number follows.
    assert session_pairs(paths, labels, emb) == [(0, 1)]
    hashes = np.stack([average_hash(_scene(np.random.default_rng(k))) for k in range(5)])
    assert group_ids(hashes, ["a", "b", "c", "d", "e"], labels, extra_pairs=[(0, 1)]) == [0, 0, 1, 2, 3]


def test_detail_head_reads_tiles_at_the_station(tiny_manifest: Path, tmp_path: Path) -> None:
    _planted_set(tmp_path / "data", items=4, copies=1)
    samples = scan_folder(tmp_path / "data")
    clf = Classifier.load(tiny_manifest)
    head = train_head(clf, samples, "camera", views=0, folds=2, quiet=True, detail=2)
    assert head.meta["detail_grid"] == 2
    path = tmp_path / "detail.npz"
    save_head(head, path)
    with_head = Classifier.load(tiny_manifest, head=path)
    image = samples[0].path.read_bytes()
    c = with_head.classify(image)
    # The verdict comes from the mean of the four tile embeddings, not from the plain view.
    tiles = with_head.detail_embedding(image, "camera", 2)
    expected = head.suspect_score(head.predict_proba(tiles[None])[0])
    assert c.counterfeit_score == pytest.approx(expected, abs=1e-6)
    big = load_image(image, "camera", 2 * with_head.size)
    assert [t.shape for t in detail_tiles(big, 2)] == [(with_head.size, with_head.size, 3)] * 4
