"""The classification stage: runs the live (and optional shadow) classifier on a parcel's images."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, wait
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


class StageLate(TimeoutError):
    """The images could not all be classified before the parcel's divert point."""


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
        # Told the seconds each image took to classify (the station's metrics set it).
        self.on_latency: Callable[[float], None] = lambda _s: None
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

    def run(
        self,
        images: list[tuple[str, str, bytes]],
        pool: Executor | None = None,
        timeout_s: float | None = None,
    ) -> StageResult:
        """`images` are (sha256, kind, bytes); one bad image marks the stage as in error for the parcel.

        With a `pool`, the images are classified at once (onnxruntime frees the GIL while it runs);
        StageLate is raised when they are not all done within `timeout_s`. Errors other than a
        refused image (ValueError) propagate: the caller holds the parcel.
        """
        live = self.live
        if live is None:
            return StageResult("off", (), ())
        todo = [(sha, kind, data) for sha, kind, data in images if kind in self.kinds]
        if pool is None or (len(todo) <= 1 and timeout_s is None):
            parts = [self._timed(live, self.shadow, sha, kind, data) for sha, kind, data in todo]
        else:
            shadow = self.shadow
            futures = [pool.submit(self._timed, live, shadow, sha, kind, data) for sha, kind, data in todo]
            _done, pending = wait(futures, timeout=timeout_s)
            if pending:
                for fut in pending:
                    fut.cancel()
                raise StageLate(f"{len(pending)} of {len(futures)} images not classified in time")
            parts = [fut.result() for fut in futures]
        state: StageState = "error" if any(p is None for p in parts) else "on"
        wire = [w for p in parts if p is not None for w in p[0]]
        views = [p[1] for p in parts if p is not None]
        return StageResult(state, tuple(wire), tuple(views))

    def _timed(
        self, live: Classifier, shadow: Classifier | None, sha: str, kind: str, data: bytes
    ) -> tuple[list[ClassificationWire], ImageView] | None:
        t0 = time.perf_counter()
        try:
            return self._one(live, shadow, sha, kind, data)
        finally:
            self.on_latency(time.perf_counter() - t0)

    @staticmethod
    def _one(
        live: Classifier, shadow: Classifier | None, sha: str, kind: str, data: bytes
    ) -> tuple[list[ClassificationWire], ImageView] | None:
        """One image's wire records and view; None when the model refused the image."""
        try:
            c = live.classify(data, kind=kind)
        except (ImageRefused, ValueError) as exc:  # the image gate's refusal, or a model's ValueError
            log.warning("image %s not classified: %s", sha[:12], exc)
            return None
        wire = [_to_wire(sha, c, shadow=False)]
        best = max((g.similarity for g in c.gallery), default=None)
        # Only a trained head's rejection means "cannot tell if counterfeit"; a category guess
        # below its floor (an X-ray under the ImageNet mapping) is just no category evidence.
        head_unsure = c.uncertain and c.counterfeit_score is not None
        category = c.category if not c.uncertain else "other"
        view = ImageView(category, c.category_prob, c.counterfeit_score, best, head_unsure, kind)
        if shadow is not None:
            try:
                wire.append(_to_wire(sha, shadow.classify(data, kind=kind), shadow=True))
            except (ImageRefused, ValueError) as exc:
                log.warning("shadow model failed on %s: %s", sha[:12], exc)
        return wire, view


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
