"""A data folder's groups.csv joins files into one group: exported examples stay grouped by parcel."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.classifier import Classifier
from models.groups import file_groups, grouped_folds, read_named_groups
from models.train import DatasetError, scan_folder, train_head
from server.cases.dataset import export_dataset
from server.db import Database, migrate
from server.schema import images, labelled_examples


def _scene(seed: int) -> bytes:
    """A picture of random blocks: its average hash is its own, so no two scenes are near-duplicates."""
    rng = np.random.default_rng(seed)
    blocks = (rng.integers(0, 2, (8, 8, 1)) * 150 + rng.integers(0, 90, (8, 8, 3))).astype(np.uint8)
    ok, data = cv2.imencode(".png", cv2.resize(blocks, (96, 96), interpolation=cv2.INTER_NEAREST))
    assert ok
    return data.tobytes()


def _database(tmp_path: Path, parcels: dict[str, tuple[str, int]]) -> Database:
    """A server database holding `parcels` (name -> label, images): each image a labelled example."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(url)
    db = Database(url)
    now = datetime.now(UTC).isoformat()
    with db.write() as conn:
        for n, (parcel, (label, count)) in enumerate(parcels.items()):
            for i in range(count):
                data = _scene(100 * n + i)
                sha = hashlib.sha256(data).hexdigest()
                conn.execute(
                    images.insert().values(
                        sha256=sha, content_type="image/png", size=len(data), data=data, created_at=now
                    )
                )
                conn.execute(
                    labelled_examples.insert().values(
                        image_sha256=sha, kind="camera", category="footwear_clothing", label=label,
                        source="case", case_id=n + 1, parcel=parcel, site_id="site1", created_at=now,
                    )
                )  # fmt: skip
    return db


def test_exported_examples_are_grouped_by_parcel(tmp_path: Path) -> None:
    parcels = {f"st-a:t{n}": ("counterfeit" if n % 2 else "genuine", 3) for n in range(6)}
    db = _database(tmp_path, parcels)
    with db.read() as conn:
        counts = export_dataset(conn, tmp_path / "data", "camera")
        with pytest.raises(ValueError, match="not empty"):
            export_dataset(conn, tmp_path / "data", "camera")
        with pytest.raises(ValueError, match="no labelled examples"):
            export_dataset(conn, tmp_path / "none", "xray")
    db.dispose()
    assert counts == {
        "images": 18,
        "groups": 6,
        "per_label": {"counterfeit": 9, "genuine": 9},
        "missing_images": 0,
    }
    samples = scan_folder(tmp_path / "data")
    assert len(samples) == 18 and len({s.group for s in samples}) == 6
    # Distinct pictures: only the named groups join them, three images per parcel.
    groups = file_groups(
        [s.path for s in samples], [s.label for s in samples], named=[s.group for s in samples]
    )
    assert len(set(groups)) == 6
    for part in grouped_folds(groups, [s.label for s in samples], 3):
        held = {samples[i].group for i in part}
        assert all(samples[i].group in held for i in range(18) if samples[i].group in held)
        assert sum(1 for s in samples if s.group in held) == len(part)


def test_train_reads_the_groups_file(tiny_manifest: Path, tmp_path: Path) -> None:
    """One parcel per class: too few groups to validate, though the pictures are all different."""
    db = _database(tmp_path, {"st-a:t1": ("counterfeit", 4), "st-a:t2": ("genuine", 4)})
    with db.read() as conn:
        export_dataset(conn, tmp_path / "data", "camera")
    db.dispose()
    # Names that say nothing (the parcel is named in the file only), so that groups.csv alone groups them.
    data = tmp_path / "data"
    rows = ["file,group"]
    for n, (rel, group) in enumerate(sorted(read_named_groups(data).items())):
        letters = (
            hashlib.sha256(str(n).encode()).hexdigest().translate(str.maketrans("0123456789", "ghijklmnop"))
        )
        plain = rel.with_name(
            letters[:10] + rel.suffix
        )  # no number, no series: nothing joins them but the file
        rel.rename(plain)
        rows.append(f"{plain.relative_to(data)},{group}")
    (data / "groups.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    clf = Classifier.load(tiny_manifest)
    with pytest.raises(DatasetError, match="two distinct groups"):
        train_head(clf, scan_folder(tmp_path / "data"), "camera", views=0, quiet=True)
    # Without the file, each distinct picture is its own group and training goes ahead.
    (tmp_path / "data" / "groups.csv").unlink()
    head = train_head(clf, scan_folder(tmp_path / "data"), "camera", views=0, quiet=True, folds=2)
    assert head.meta["validation"]["groups"] == 8


def test_a_broken_groups_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "groups.csv").write_text("name,team\nx,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"groups\.csv: needs the columns file and group"):
        read_named_groups(tmp_path)
    with pytest.raises(DatasetError, match=r"groups\.csv"):
        scan_folder(tmp_path)
    assert read_named_groups(tmp_path / "a") == {}
