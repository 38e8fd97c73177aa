"""The classification stage: runs the live (and optional shadow) classifier on a parcel's images."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from edge.config import ClassifierConfig
from edge.decide import ImageView
from edge.wire import ClassificationWire, GalleryMatchWire
from scanner_drivers.image_gate import ImageRefused

if TYPE_CHECKING:
    from models.classifier import Classification, Classifier

log = logging.getLogger(__name__)

StageState = Literal["on", "off", "error"]


@dataclass(frozen=True)
class StageResult:
    state: StageState
    wire: tuple[ClassificationWire, ...]
    views: tuple[ImageView, ...]


def _to_wire(sha: str, c: Classification, shadow: bool) -> ClassificationWire:
    return ClassificationWire(
        image_sha256=sha,
        category=c.category,
        category_prob=min(1.0, max(0.0, float(c.category_prob))),
        counterfeit_score=None if c.counterfeit_score is None else min(1.0, max(0.0, c.counterfeit_score)),
        gallery=[
            GalleryMatchWire(ref_id=g.ref_id, similarity=g.similarity, label=g.label) for g in c.gallery
        ],
        uncertain=c.uncertain,
        model_version=c.model_version,
        shadow=shadow,
    )


class ClassifierStage:
    """Loads the models at start (a load failure stops the station with a clear error)."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        self.enabled = cfg.enabled
        self.kinds = frozenset(cfg.kinds)
        self.threads = cfg.threads
        self.live: Classifier | None = None
        self.shadow: Classifier | None = None
        # What the live model was loaded from; model updates replace one part at a time.
        self.paths: dict[str, Path | None] = {
            "manifest": cfg.manifest,
            "head": cfg.head,
            "gallery": cfg.gallery,
        }
        if not cfg.enabled:
            return
        from models.classifier import Classifier

        assert cfg.manifest is not None  # the config validator guarantees it
        self.live = Classifier.load(cfg.manifest, head=cfg.head, gallery=cfg.gallery, threads=cfg.threads)
        if cfg.shadow_manifest is not None:
            self.shadow = Classifier.load(
                cfg.shadow_manifest, head=cfg.head, gallery=cfg.gallery, threads=cfg.threads
            )

    def swap(self, paths: dict[str, Path | None], shadow: bool) -> None:
        """Load a classifier from `paths` (verified as at start) and make it the live or the shadow one.

        Raises ValueError when it does not load; the running classifiers are untouched then.
        """
        from models.classifier import Classifier

        manifest = paths.get("manifest")
        if manifest is None:
            raise ValueError("no model manifest to load")
        new = Classifier.load(
            manifest, head=paths.get("head"), gallery=paths.get("gallery"), threads=self.threads
        )
        if shadow:
            self.shadow = new
        else:
            self.live = new
            self.paths = dict(paths)

    @property
    def heads_summary(self) -> str:
        """Which heads are live for which image kinds and goods categories; other images get no verdict."""
        if self.live is None:
            return "no counterfeit head"
        return self.live.head_summary

    @property
    def describe(self) -> str:
        if self.live is None:
            return "classifier off"
        text = f"classifier on ({self.live.version}); {self.heads_summary}"
        if self.shadow is not None:
            text += f", shadow {self.shadow.version}"
        return text

    def run(self, images: list[tuple[str, str, bytes]]) -> StageResult:
        """`images` are (sha256, kind, bytes); one bad image marks the stage as in error for the parcel."""
        if self.live is None:
            return StageResult("off", (), ())
        state: StageState = "on"
        wire: list[ClassificationWire] = []
        views: list[ImageView] = []
        for sha, kind, data in images:
            if kind not in self.kinds:
                continue
            try:
                c = self.live.classify(data, kind=kind)
            except (ImageRefused, ValueError) as exc:  # the image gate's refusal, or a model's ValueError
                log.warning("image %s not classified: %s", sha[:12], exc)
                state = "error"
                continue
            wire.append(_to_wire(sha, c, shadow=False))
            best = max((g.similarity for g in c.gallery), default=None)
            # Only a trained head's rejection means "cannot tell if counterfeit"; a category guess
            # below its floor (an X-ray under the ImageNet mapping) is just no category evidence.
            head_unsure = c.uncertain and c.counterfeit_score is not None
            category = c.category if not c.uncertain else "other"
            views.append(ImageView(category, c.category_prob, c.counterfeit_score, best, head_unsure, kind))
            if self.shadow is not None:
                try:
                    wire.append(_to_wire(sha, self.shadow.classify(data, kind=kind), shadow=True))
                except (ImageRefused, ValueError) as exc:
                    log.warning("shadow model failed on %s: %s", sha[:12], exc)
        return StageResult(state, tuple(wire), tuple(views))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
