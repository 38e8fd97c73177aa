"""The edge's classifier: verified ONNX backbone + goods categories + optional head and gallery.

Shadow mode needs nothing special: the edge loads a second `Classifier` from another manifest and
records its results without acting on them. Manifests carry distinct `version` strings, and every
`Classification` names the version that produced it, so live and shadow results never mix up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.categories import GOODS_CATEGORIES, IMAGENET_LABELS_SHA256, category_matrix, labels_sha256
from models.gallery import Gallery, load_gallery
from models.heads import Head, l2_normalise, load_head, softmax
from models.manifest import Manifest, ModelLoadError, read_manifest, verified_model_path
from models.preprocess import ImageDecodeError, detail_tiles, load_image, normalise

__all__ = ["Classification", "Classifier", "GalleryMatch", "ImageDecodeError", "ModelLoadError"]

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]
WARMUP_RUNS = 3


@dataclass(frozen=True)
class GalleryMatch:
    ref_id: str
    similarity: float
    label: str


@dataclass(frozen=True)
class Classification:
    category: str
    category_prob: float
    counterfeit_score: float | None
    gallery: tuple[GalleryMatch, ...]
    uncertain: bool
    model_version: str
    label: str | None


def make_session(model_path: Path, threads: int) -> object:
    """An onnxruntime session sized for a small box shared with the rest of the station.

    One intra-op thread by default, no inter-op pool, and no spinning: spinning worker threads
    would keep a core busy between parcels and starve the scanner and sorter threads.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
        raise ModelLoadError(f"model file {model_path} cannot be loaded by onnxruntime: {exc}") from exc


def _check_io(session: object, manifest: Manifest, path: Path) -> None:
    inputs = session.get_inputs()  # type: ignore[attr-defined]
    if len(inputs) != 1 or inputs[0].name != manifest.input.name:
        raise ModelLoadError(
            f"{path}: model inputs {[i.name for i in inputs]} are not [{manifest.input.name!r}]"
        )
    actual = list(inputs[0].shape)
    declared = manifest.input.shape
    if len(actual) != len(declared) or manifest.input.layout != "NCHW" or len(declared) != 4:
        raise ModelLoadError(f"{path}: model input shape {actual} does not match the manifest's {declared}")
    for got, want in zip(actual[1:], declared[1:], strict=True):
        if got != want:
            raise ModelLoadError(
                f"{path}: model input shape {actual} does not match the manifest's {declared}"
            )
    if declared[1] != 3 or declared[2] != declared[3]:
        raise ModelLoadError(f"{path}: input shape {declared} is not a square 3-channel image")
    outputs = {o.name: o.shape for o in session.get_outputs()}  # type: ignore[attr-defined]
    for spec in (manifest.embedding, manifest.logits):
        if spec.name not in outputs or outputs[spec.name][-1] != spec.dim:
            raise ModelLoadError(f"{path}: output {spec.name!r} of width {spec.dim} not found in {outputs}")
    if len(manifest.labels) != manifest.logits.dim:
        raise ModelLoadError(f"{path}: {len(manifest.labels)} labels for {manifest.logits.dim} logits")
    if labels_sha256(manifest.labels) != manifest.labels_sha256:
        raise ModelLoadError(f"{path}: the labels do not match their labels_sha256")
    if manifest.labels_sha256 != IMAGENET_LABELS_SHA256:
        raise ModelLoadError(
            f"{path}: labels are not the ImageNet-1k list the goods-category table was written for"
        )
    if len(manifest.input.mean) != 3 or len(manifest.input.std) != 3 or min(manifest.input.std) <= 0:
        raise ModelLoadError(f"{path}: input mean/std must be three values with std > 0")


def _check_companion(what: str, dim: int, backbone: str, spec: Manifest) -> None:
    """A head or gallery must fit the model's embedding width; another backbone version is worth a warning.

    Only a warning, because a shadow model is loaded with the live model's head and gallery on purpose.
    """
    if dim != spec.embedding.dim:
        raise ModelLoadError(
            f"{what} expects {dim}-d embeddings, model {spec.version} gives {spec.embedding.dim}"
        )
    if backbone != spec.version:
        log.warning("%s was made with model %s, now used with %s", what, backbone, spec.version)


def detail_grid(head: Head | None) -> int:
    """Tiles per side of a head's detail view (1: the plain view only)."""
    return int(head.meta.get("detail_grid", 1)) if head is not None else 1


def head_speaks(head: Head, kind: str | None, category: str | None = None) -> bool:
    """A head speaks only for what it was trained on: its image kind (a camera head knows no X-rays)
    and, when it lists goods categories, images placed in one of them (a footwear head says nothing
    about a watch). `category` None means the category is not asked about."""
    trained_on = head.meta.get("kind")
    if kind is not None and trained_on is not None and trained_on != kind:
        return False
    categories = head.meta.get("categories") or []
    return category is None or not categories or category in categories


class Classifier:
    """Load once at start (verifies everything, warms up), then `classify` each image."""

    def __init__(
        self, manifest: Manifest, session: object, head: Head | None, gallery: Gallery | None
    ) -> None:
        self.manifest = manifest
        self.session = session
        self.head = head
        self.gallery = gallery
        self.size = int(manifest.input.shape[2])
        self.mean = np.asarray(manifest.input.mean, dtype=np.float32)
        self.inv_std = (1.0 / np.asarray(manifest.input.std, dtype=np.float32)).astype(np.float32)
        self.categories = category_matrix()
        self.outputs = [manifest.embedding.name, manifest.logits.name]

    @classmethod
    def load(
        cls, manifest: Path, head: Path | None = None, gallery: Path | None = None, threads: int = 1
    ) -> Classifier:
        manifest = Path(manifest)
        spec = read_manifest(manifest)
        model_path = verified_model_path(spec, manifest)
        session = make_session(model_path, threads)
        _check_io(session, spec, manifest)
        loaded_head = load_head(Path(head)) if head is not None else None
        loaded_gallery = load_gallery(Path(gallery)) if gallery is not None else None
        if loaded_head is not None:
            _check_companion("head", loaded_head.dim, str(loaded_head.meta.get("backbone", "")), spec)
        if loaded_gallery is not None:
            _check_companion("gallery", loaded_gallery.dim, loaded_gallery.backbone, spec)
        clf = cls(spec, session, loaded_head, loaded_gallery)
        clf.warm_up()
        log.info("classifier %s loaded (%s, %d thread(s))", clf.version, model_path.name, threads)
        return clf

    @property
    def version(self) -> str:
        parts = [self.manifest.version]
        if self.head is not None:
            parts.append(self.head.version)
        if self.gallery is not None:
            parts.append(self.gallery.version)
        return "+".join(parts)

    @property
    def head_summary(self) -> str:
        """Which images the head gives a counterfeit verdict on, in a few words (health board, logs)."""
        if self.head is None:
            return "no counterfeit head"
        kind = self.head.meta.get("kind") or "any"
        categories = self.head.meta.get("categories") or []
        scope = ", ".join(str(c) for c in categories) if categories else "any goods category"
        return f"head {self.head.version}: {kind} images, {scope}"

    def warm_up(self) -> None:
        """First runs allocate buffers and pick kernels; do that at start, not on the first parcel."""
        blank = np.zeros((1, 3, self.size, self.size), dtype=np.float32)
        for _ in range(WARMUP_RUNS):
            self.run(blank)

    def run(self, batch: F32) -> tuple[F32, F32]:
        """Bare inference: (embeddings, logits) for a preprocessed NCHW batch."""
        emb, logits = self.session.run(self.outputs, {self.manifest.input.name: batch})  # type: ignore[attr-defined]
        return np.asarray(emb, dtype=np.float32), np.asarray(logits, dtype=np.float32)

    def preprocess(self, image: bytes | npt.NDArray[np.generic], kind: str = "camera") -> F32:
        return normalise(load_image(image, kind, self.size), self.mean, self.inv_std)

    def embed(self, images: list[F32]) -> F32:
        """Embeddings for preprocessed tensors, batched (training and gallery building)."""
        return self.run(np.concatenate(images))[0]

    def classify(self, image: bytes | npt.NDArray[np.generic], kind: str = "camera") -> Classification:
        """One image (encoded bytes, or an RGB/grey array) -> one Classification."""
        emb, logits = self.run(self.preprocess(image, kind))
        head_emb: F32 | None = None
        grid = detail_grid(self.head)
        if grid > 1 and self.head_in_scope(logits[0], kind):
            # Detail views cost grid * grid more inferences, paid only by images the head is asked about.
            head_emb = self.detail_embedding(image, kind, grid)
        return self.interpret(emb[0], logits[0], kind, head_emb)

    def detail_embedding(self, image: bytes | npt.NDArray[np.generic], kind: str, grid: int) -> F32:
        """Mean of the unit embeddings of grid x grid tiles of the image at grid times the resolution."""
        big = load_image(image, kind, grid * self.size)
        return self.embed_detail_square(big, grid)

    def embed_detail_square(self, big: npt.NDArray[np.uint8], grid: int) -> F32:
        tiles = [normalise(tile, self.mean, self.inv_std) for tile in detail_tiles(big, grid)]
        return np.asarray(l2_normalise(self.embed(tiles)).mean(axis=0), dtype=np.float32)

    def applies_head(self, kind: str | None, category: str | None = None) -> bool:
        """Whether the loaded head speaks on an image of this kind and category (see `head_speaks`)."""
        return self.head is not None and head_speaks(self.head, kind, category)

    def category_of(self, logits: F32) -> tuple[str, float, bool]:
        """(goods category, its probability, below the model's floor) from one image's ImageNet logits."""
        cat_probs = softmax(logits) @ self.categories
        cat = int(cat_probs.argmax())
        prob = float(cat_probs[cat])
        return GOODS_CATEGORIES[cat], prob, prob < self.manifest.thresholds.category_min_prob

    def head_in_scope(self, logits: F32, kind: str | None, head: Head | None = None) -> bool:
        """Would the head (the loaded one, or `head`) be asked about this image? An image of no
        confident category is out of a category-bound head's scope: no verdict rather than a guess."""
        head = head if head is not None else self.head
        if head is None:
            return False
        category, _, unsure = self.category_of(logits)
        return head_speaks(head, kind, "uncertain" if unsure else category)

    def interpret(
        self, embedding: F32, logits: F32, kind: str | None = None, head_embedding: F32 | None = None
    ) -> Classification:
        """Category, head and gallery evidence from one image's raw outputs (`head_embedding`: the
        detail-view embedding for a head that wants one)."""
        category, category_prob, uncertain = self.category_of(logits)
        label: str | None = None
        score: float | None = None
        if self.head is not None and self.head_in_scope(logits, kind):
            probs = self.head.predict_proba((embedding if head_embedding is None else head_embedding)[None])[
                0
            ]
            top = int(probs.argmax())
            label = self.head.labels[top]
            score = self.head.suspect_score(probs)
            # With a head, the head's own reject rule decides: it was tuned for a target precision.
            uncertain = float(probs[top]) < self.head.reject_threshold
        matches: tuple[GalleryMatch, ...] = ()
        if self.gallery is not None:
            matches = tuple(
                GalleryMatch(e.ref_id, round(sim, 6), e.label)
                for e, sim in self.gallery.nearest(embedding, self.manifest.thresholds.gallery_top_k, kind)
            )
        return Classification(
            category=category,
            category_prob=category_prob,
            counterfeit_score=score,
            gallery=matches,
            uncertain=uncertain,
            model_version=self.version,
            label=label,
        )

    def top_classes(
        self, image: bytes | npt.NDArray[np.generic], k: int = 5, kind: str = "camera"
    ) -> list[tuple[str, float]]:
        """The k most probable ImageNet classes (short names) for a sanity check."""
        probs = softmax(self.run(self.preprocess(image, kind))[1][0])
        top = np.argsort(-probs)[:k]
        return [(self.manifest.labels[i].split(",")[0], round(float(probs[i]), 4)) for i in top]
