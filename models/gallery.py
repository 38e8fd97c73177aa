"""The counterfeit reference gallery: embeddings of confirmed counterfeits, searched by cosine similarity."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.heads import l2_normalise
from models.manifest import ModelLoadError
from models.sealed import read_sealed, write_sealed

F32 = npt.NDArray[np.float32]
GALLERY_FORMAT = "parcelguard-gallery-1"


class GalleryError(ValueError):
    """A gallery edit is not possible: duplicate or unknown reference id, wrong embedding width."""


@dataclass(frozen=True)
class GalleryEntry:
    ref_id: str
    label: str
    source: str
    added_utc: str
    kind: str = "camera"  # image kind of the reference: only images of that kind are compared with it


@dataclass(frozen=True)
class Gallery:
    """Reference embeddings (unit length, one row per entry) and what each one is."""

    embeddings: F32
    entries: tuple[GalleryEntry, ...]
    backbone: str  # model version the embeddings were made with
    sha256: str = ""

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def version(self) -> str:
        return f"gallery-{len(self.entries)}-{self.sha256[:12]}"

    @classmethod
    def empty(cls, dim: int, backbone: str) -> Gallery:
        return cls(np.zeros((0, dim), dtype=np.float32), (), backbone)

    def nearest(self, embedding: F32, k: int, kind: str | None = None) -> list[tuple[GalleryEntry, float]]:
        """The k most similar references (of the given image kind), best first, with cosine similarity."""
        if kind is None:
            rows = np.arange(len(self.entries))
        else:
            rows = np.asarray([i for i, e in enumerate(self.entries) if e.kind == kind], dtype=np.int64)
        if len(rows) == 0 or k <= 0:
            return []
        sims = self.embeddings[rows] @ l2_normalise(embedding.reshape(-1))
        k = min(k, len(rows))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(self.entries[rows[i]], float(sims[i])) for i in top]

    def add(self, embedding: F32, ref_id: str, label: str, source: str, kind: str = "camera") -> Gallery:
        if any(e.ref_id == ref_id for e in self.entries):
            raise GalleryError(f"reference {ref_id!r} is already in the gallery")
        vec = l2_normalise(embedding.reshape(1, -1))
        if vec.shape[1] != self.dim:
            raise GalleryError(f"embedding has {vec.shape[1]} values, the gallery holds {self.dim}")
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        entry = GalleryEntry(ref_id, label, source, now, kind)
        return Gallery(np.vstack([self.embeddings, vec]), (*self.entries, entry), self.backbone)

    def remove(self, ref_id: str) -> Gallery:
        keep = [i for i, e in enumerate(self.entries) if e.ref_id != ref_id]
        if len(keep) == len(self.entries):
            raise GalleryError(f"reference {ref_id!r} is not in the gallery")
        return Gallery(self.embeddings[keep], tuple(self.entries[i] for i in keep), self.backbone)


def _arrays(gallery: Gallery) -> dict[str, npt.NDArray[Any]]:
    table = [[e.ref_id, e.label, e.source, e.added_utc, e.kind] for e in gallery.entries]
    meta = {"format": GALLERY_FORMAT, "backbone": gallery.backbone}
    return {
        "embeddings": gallery.embeddings.astype(np.float32),
        "entries": np.asarray(json.dumps(table)),
        "meta": np.asarray(json.dumps(meta, sort_keys=True)),
    }


def save_gallery(gallery: Gallery, path: Path) -> str:
    """Write atomically (temp file + rename) so a crash mid-write never leaves half a gallery."""
    return write_sealed(path, _arrays(gallery))


def load_gallery(path: Path) -> Gallery:
    arrays, stored = read_sealed(path, "gallery")
    try:
        meta = json.loads(str(arrays["meta"]))
        table = json.loads(str(arrays["entries"]))
        entries = tuple(GalleryEntry(*map(str, row)) for row in table)
        embeddings = arrays["embeddings"].astype(np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"gallery file {path} lacks a field or has a bad one: {exc}") from exc
    if embeddings.ndim != 2 or embeddings.shape[0] != len(entries):
        raise ModelLoadError(f"gallery file {path}: {embeddings.shape} embeddings for {len(entries)} entries")
    return Gallery(embeddings, entries, str(meta.get("backbone", "")), stored)
