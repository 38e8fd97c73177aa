"""`parcelguard model dataset export`: labelled examples as a folder-per-class data set, grouped by parcel."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from server.schema import images, labelled_examples

SUFFIX = {"image/jpeg": ".jpg", "image/png": ".png", "image/bmp": ".bmp", "image/tiff": ".tif"}
# Written beside the class folders; `parcelguard model train` keeps each group on one side of every split.
GROUPS_FILE = "groups.csv"
MANIFEST_FILE = "examples.json"
_LABEL = re.compile(r"^[a-z0-9_]{1,64}$")


class DatasetExportError(ValueError):
    """The export cannot be written as asked (folder not empty, no examples, unsafe label)."""


def export_dataset(
    conn: Connection, out: Path, kind: str, labels: tuple[str, ...] = (), sources: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Write out/<label>/<group>_<sha256>.<ext>, groups.csv and examples.json; returns counts."""
    if out.exists() and any(out.iterdir()):
        raise DatasetExportError(f"{out} is not empty: export into a new folder")
    query = select(labelled_examples).where(labelled_examples.c.kind == kind).order_by(labelled_examples.c.id)
    if labels:
        query = query.where(labelled_examples.c.label.in_(labels))
    if sources:
        query = query.where(labelled_examples.c.source.in_(sources))
    rows = conn.execute(query).fetchall()
    if not rows:
        raise DatasetExportError(
            f"no labelled examples of kind {kind!r}" + (f" with labels {list(labels)}" if labels else "")
        )
    parcels: dict[str, str] = {}
    written: dict[str, dict[str, Any]] = {}
    missing = 0
    for row in rows:
        if not _LABEL.match(row.label):
            raise DatasetExportError(f"label {row.label!r} is not a safe folder name")
        image = conn.execute(
            select(images.c.data, images.c.content_type).where(images.c.sha256 == row.image_sha256)
        ).first()
        if image is None:
            missing += 1  # the station never uploaded it; nothing to learn from
            continue
        # One group per parcel; the name holds no '_' or '-' so the file-name series is the parcel too.
        group = parcels.setdefault(row.parcel, f"p{len(parcels) + 1:06d}")
        rel = f"{row.label}/{group}_{row.image_sha256[:16]}{SUFFIX.get(image.content_type, '.img')}"
        if rel in written:
            continue  # the same image from two sources with one label
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(image.data))
        written[rel] = {
            "file": rel,
            "label": row.label,
            "group": group,
            "parcel": row.parcel,
            "sha256": row.image_sha256,
            "category": row.category,
            "source": row.source,
            "case_id": row.case_id,
            "review_id": row.review_id,
            "site_id": row.site_id,
        }
    out.mkdir(parents=True, exist_ok=True)
    with (out / GROUPS_FILE).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "group"])
        writer.writerows([e["file"], e["group"]] for e in written.values())
    (out / MANIFEST_FILE).write_text(
        json.dumps(list(written.values()), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    per_label = Counter(e["label"] for e in written.values())
    return {
        "images": len(written),
        "groups": len(parcels),
        "per_label": dict(sorted(per_label.items())),
        "missing_images": missing,
    }
