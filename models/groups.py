"""Groups of images that must stay on one side of every split: near-duplicates and image series.

A random split of photos flatters a model: the same item photographed twice, or one photo saved
twice with a crop or a re-encode, lands on both sides and the "held-out" figure measures recall of
seen pictures. So every split (validation, cross-validation folds, calibration) is made by groups:

1. Near-duplicates: the 16x16 average hash (greyscale, Lanczos resize, bit = pixel > mean); two
   images whose hashes differ in at most `MAX_HAMMING` of 256 bits are one group (connected
   components by union-find, so chains of near-duplicates join too).
2. Image series: the file-name prefix (`B0049` of `B0049_0001.jpg`), one object or session. A prefix
   shared by images of different classes is a naming scheme rather than one object (`nike_0001.jpg`
   in both the fake and the genuine folder), so it does not join anything.
3. Photo sessions: one item is usually photographed several times in a row, so files of one class
   folder numbered one after the other (`IMG_0417.jpg`, `IMG_0418.jpg`) are one group unless the
   pictures are plainly different (backbone embeddings less similar than `SESSION_SIMILARITY`).
   Average hashes miss these (another angle of the same shoe is not a near-duplicate): on the
   sneaker photos, hash groups alone left 866 groups for 79 photographed items and a cross-validated
   accuracy of 0.86 that held-out items do not reach; with sessions, 0.63, close to what whole
   items held out give (0.61).

4. Named groups: a data folder may list each file's group in `groups.csv` (columns file, group),
   as `parcelguard model dataset export` does with the parcel an image was taken of; files of one
   named group are one group.

Over-grouping is the safe error: it only makes folds coarser, never lets an item be on both sides.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from models.preprocess import ImageDecodeError, decode_grey

HASH_SIDE = 16
MAX_HAMMING = 20
# Cosine similarity of plain-view embeddings below which consecutive files are two sessions: the
# median between different items of one shoe model is about 0.40, within one item about 0.49.
SESSION_SIMILARITY = 0.4
GROUPS_FILE = "groups.csv"
_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def labels(self) -> list[int]:
        """Component id per element, numbered 0.. in order of first appearance."""
        ids: dict[int, int] = {}
        return [ids.setdefault(self.find(i), len(ids)) for i in range(len(self.parent))]


def average_hash(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """256-bit average hash of an RGB or grey uint8 image."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_LANCZOS4).astype(np.float32)
    return np.asarray((small > small.mean()).reshape(-1), dtype=np.bool_)


def hash_file(path: Path) -> npt.NDArray[np.bool_]:
    """Average hash of an image file, decoded at reduced size (the hash only needs 16x16 pixels)."""
    try:
        grey = decode_grey(path.read_bytes(), 4 * HASH_SIDE)
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"{path}: {exc}", exc.reason) from exc
    return average_hash(grey)


def near_duplicate_pairs(
    hashes: npt.NDArray[np.bool_], max_distance: int = MAX_HAMMING
) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose hashes differ in at most `max_distance` bits."""
    bits = hashes.astype(np.int16)
    # Hamming distance of all pairs from one matrix product: d = a + b - 2 a.b for 0/1 vectors.
    ones = bits.sum(axis=1)
    dist = ones[:, None] + ones[None, :] - 2 * (bits @ bits.T)
    i, j = np.nonzero(np.triu(dist <= max_distance, k=1))
    return list(zip(i.tolist(), j.tolist(), strict=True))


def series_of(path: Path) -> str:
    """File-name series: the stem up to the first '_' or '-' (the whole stem when it has neither)."""
    stem = path.stem
    for sep in ("_", "-"):
        if sep in stem:
            return stem.split(sep, 1)[0]
    return stem


def session_pairs(
    paths: Sequence[Path],
    labels: Sequence[str],
    embeddings: npt.NDArray[np.float32],
    min_similarity: float = SESSION_SIMILARITY,
) -> list[tuple[int, int]]:
    """Index pairs of consecutively numbered files (same folder, same name around the number, same
    class) whose embeddings are at least `min_similarity` alike."""
    keyed: dict[tuple[str, str, str, str], dict[int, int]] = {}
    for i, (path, label) in enumerate(zip(paths, labels, strict=True)):
        m = _NUMBERED.match(path.stem)
        if m is not None:
            keyed.setdefault((str(path.parent), label, m.group(1), m.group(3)), {})[int(m.group(2))] = i
    norm = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    pairs: list[tuple[int, int]] = []
    for numbers in keyed.values():
        for number, i in numbers.items():
            j = numbers.get(number + 1)
            if j is not None and float(norm[i] @ norm[j]) >= min_similarity:
                pairs.append((i, j))
    return pairs


def group_ids(
    hashes: npt.NDArray[np.bool_],
    series: Sequence[str],
    labels: Sequence[str],
    max_distance: int = MAX_HAMMING,
    extra_pairs: Sequence[tuple[int, int]] = (),
) -> list[int]:
    """Group id per image: near-duplicate components joined with single-class file-name series
    (and with `extra_pairs`, e.g. photo sessions)."""
    n = len(series)
    uf = UnionFind(n)
    for i, j in [*near_duplicate_pairs(hashes, max_distance), *extra_pairs]:
        uf.union(i, j)
    classes_of: dict[str, set[str]] = {}
    for s, label in zip(series, labels, strict=True):
        classes_of.setdefault(s, set()).add(label)
    first: dict[str, int] = {}
    for i, s in enumerate(series):
        if len(classes_of[s]) == 1:
            uf.union(first.setdefault(s, i), i)
    return uf.labels()


def grouped_folds(groups: Sequence[int], labels: Sequence[str], folds: int, seed: int = 0) -> list[list[int]]:
    """Indices split into `folds` parts by whole groups, each part getting a share of every class.

    Groups are dealt largest first to the part that holds fewest images of the group's main class,
    so the parts come out near equal in size and class mix even when group sizes vary a lot.
    """
    rng = np.random.default_rng(seed)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    order = list(members)
    rng.shuffle(order)
    order.sort(key=lambda g: -len(members[g]))
    classes = sorted(set(labels))
    load = np.zeros((folds, len(classes)))
    parts: list[list[int]] = [[] for _ in range(folds)]
    for g in order:
        idx = members[g]
        main = classes.index(max(classes, key=lambda c: sum(labels[i] == c for i in idx)))
        f = int(np.argmin(load[:, main] * 1000 + load.sum(axis=1)))
        parts[f].extend(idx)
        for i in idx:
            load[f, classes.index(labels[i])] += 1
    return [sorted(p) for p in parts]


def read_named_groups(root: Path) -> dict[Path, str]:
    """The `groups.csv` of a data folder (file relative to the folder, group), or {} when it has none."""
    listed = root / GROUPS_FILE
    if not listed.is_file():
        return {}
    with listed.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"file", "group"} <= set(rows[0]):
        raise ValueError(f"{listed}: needs the columns file and group")
    return {(root / r["file"]).resolve(): r["group"] for r in rows if r.get("file") and r.get("group")}


def named_pairs(names: Sequence[str | None]) -> list[tuple[int, int]]:
    """Index pairs joining every file of a named group to its first file."""
    first: dict[str, int] = {}
    pairs: list[tuple[int, int]] = []
    for i, name in enumerate(names):
        if name is not None and first.setdefault(name, i) != i:
            pairs.append((first[name], i))
    return pairs


def file_groups(
    paths: Sequence[Path],
    labels: Sequence[str],
    embeddings: npt.NDArray[np.float32] | None = None,
    max_distance: int = MAX_HAMMING,
    named: Sequence[str | None] = (),
) -> list[int]:
    """Group id per image file (see `group_ids`), with photo sessions when plain-view embeddings are given
    and the named groups of `named` (one name or None per file)."""
    hashes = np.stack([hash_file(p) for p in paths]) if paths else np.zeros((0, HASH_SIDE**2), bool)
    sessions = session_pairs(paths, labels, embeddings) if embeddings is not None else []
    return group_ids(
        hashes, [series_of(p) for p in paths], labels, max_distance, [*sessions, *named_pairs(named)]
    )
