"""Barcode reading in images: two engines behind a preprocessing ladder with a time budget and limits."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from scanner_drivers.barcodes import engines as engines
from scanner_drivers.barcodes import variants as variants
from scanner_drivers.barcodes.engines import EngineRead, GreyImage
from scanner_drivers.barcodes.evidence import Evidence
from scanner_drivers.barcodes.image import BarcodeImageError, decode_image, to_grey
from scanner_drivers.barcodes.structure import looks_featureless
from scanner_drivers.barcodes.variants import Affine
from scanner_drivers.barcodes.workers import WorkerPool
from scanner_drivers.types import Code

__all__ = [
    "DEFAULT_LADDER",
    "BarcodeImageError",
    "BarcodeResult",
    "BarcodeSettings",
    "load_image",
    "prepare",
    "read_barcodes",
]

log = logging.getLogger(__name__)

StepName = Literal[
    "zxing/raw",
    "zxing/contrast",
    "zxing/adaptive",
    "zxing/fixed",
    "zxing/upscale-contrast",
    "zxing/upscale",
    "zxing/rotate45",
    "zxing/rotate22",
    "zxing/rotate-22",
    "zxing/denoise",
    "zxing/invert",
    "pyzbar/raw",
    "pyzbar/downscale",
    "pyzbar/sharpen",
    "pyzbar/upscale-contrast",
    "pyzbar/invert",
    "pyzbar/threshold",
]

# Ordered by what photographed labels most often need, cheap before dear: local contrast, the second
# engine, diagonal turns (linear codes are scanned along rows and columns only), scale, inversion
# (zxing-cpp's own try_invert misses light-on-dark linear codes), thresholding, then upscaling.
DEFAULT_LADDER: tuple[StepName, ...] = (
    "zxing/raw",
    "zxing/contrast",
    "pyzbar/raw",
    "zxing/rotate45",
    "zxing/rotate22",
    "zxing/rotate-22",
    "pyzbar/downscale",
    "zxing/invert",
    "zxing/adaptive",
    "zxing/fixed",
    "zxing/upscale-contrast",
    "pyzbar/sharpen",
    "pyzbar/upscale-contrast",
    "zxing/upscale",
    "pyzbar/invert",
)


class BarcodeSettings(BaseModel):
    """How images are decoded: limits, time budget and the ladder of preprocessing steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_ms: float = Field(
        50.0,
        gt=0,
        description="CPU-time budget per image in milliseconds, image decoding included: the processor "
        "time of the threads that decode the image and run the ladder (time.thread_time), so a busy "
        "machine does not shorten the ladder; no step starts once it is spent (a running step "
        "finishes; the first step always runs)",
    )
    deadline_ms: float = Field(
        250.0,
        ge=0,
        description="hard limit per image in milliseconds of real (wall-clock) time, the safety net "
        "behind the CPU budget: the caller gets the codes accepted so far and a step still running "
        "is abandoned to finish in the background; 0 runs every step to its end in the caller's "
        "thread. An image small enough that one zxing-cpp pass is bounded well inside it (see "
        "inline_pixels) has its first step run in the caller's thread, and is handed to a worker "
        "thread only when the ladder must go on",
    )
    max_bytes: int = Field(64 * 1024 * 1024, gt=0, description="largest encoded image accepted, in bytes")
    max_pixels: int = Field(
        40_000_000,
        gt=0,
        description="largest image accepted, width x height; bounds memory and the time of one step",
    )
    max_work_pixels: int = Field(
        4_000_000,
        gt=0,
        description="upscaling and turning steps are skipped when their output would exceed this many pixels",
    )
    ladder: tuple[StepName, ...] = Field(
        DEFAULT_LADDER,
        min_length=1,
        description="preprocessing steps tried in order until the codes read are settled (verify_steps "
        "may be moved ahead while a retail code is in doubt)",
    )
    engines: tuple[Literal["zxing-cpp", "pyzbar"], ...] = Field(
        ("zxing-cpp", "pyzbar"),
        min_length=1,
        description="engines the ladder may use; steps of an engine not listed are skipped",
    )
    min_linear_lines: float = Field(
        5.0,
        ge=0,
        description="pixels a zxing-cpp linear read must span across its bars to be trusted alone; "
        "thinner reads are kept only when another step or engine reads the same code",
    )
    verify_steps: tuple[StepName, ...] = Field(
        ("zxing/upscale-contrast", "zxing/upscale"),
        description="ladder steps tried next, in this order, while a retail code (EAN/UPC) has been "
        "seen but is not settled (unconfirmed, thin or contested); steps not in the ladder are not run. "
        "A zxing-cpp step run so uses only its retail decoders (listed as STEP+retail in "
        "steps_tried) and stays in the ladder, to run with every decoder when its turn comes",
    )
    settled_rows: float = Field(
        20.0,
        ge=0,
        description="pixel rows of the image a linear code's agreeing reads must span, with no rival "
        "text on its bars, for the ladder to stop at it; a thinner or contested read lets the ladder go "
        "on, since a later step may outweigh it",
    )
    contest_ratio: float = Field(
        3.0,
        ge=1,
        description="when reads of one linear code disagree, the text kept must outweigh all the others "
        "together this many times (weights are scan rows); otherwise the code is dropped as misread",
    )
    pyzbar_weight: float = Field(
        2.0,
        ge=0,
        description="scan rows a pyzbar linear read counts for when weighing disagreeing reads (pyzbar "
        "reports no detection height, and its linear reads are never trusted alone)",
    )
    give_up_after: int = Field(
        3,
        ge=0,
        description="ladder steps after which an image is given up when no step has read anything at "
        "all (not even a doubtful read) and no region of it has the close-packed grid-aligned edges "
        "of a code (see barcodes.structure); the default's three steps are both engines on the image "
        "as it is and zxing-cpp on its contrast-evened copy; 0 never gives up early",
    )
    pyzbar_linear_alone: bool = Field(
        False,
        description="trust a pyzbar linear read without a second read; off because zbar misreads "
        "worn retail codes with high quality scores, so its linear reads must be confirmed",
    )


# The most processor time one zxing-cpp pass (try_rotate, try_downscale, try_invert) was measured to take
# per pixel: a one-pixel checkerboard, the image with the most edges along every scan direction (uniform
# noise takes about 150 ns, photographed labels 10-30 ns). A step costs at most this much per pixel.
ZXING_WORST_NS_PER_PIXEL = 300.0
# The share of the deadline that the first step may take at worst when it runs in the caller's thread,
# where the deadline cannot cut it short: half, so that even at its worst and at twice its CPU time in
# wall time on a loaded machine the caller still hears back by the deadline.
INLINE_DEADLINE_SHARE = 0.5
# Appended to a verify step's name in steps_tried when it ran with the retail decoders only.
VERIFY_SUFFIX = "+retail"
# Steps cheap and bounded enough to run in the caller's thread: zxing-cpp on the image as it is, or on
# a same-size variant.
_INLINE_PREPS = frozenset({"raw", "contrast", "fixed", "invert", "adaptive", "denoise", "sharpen"})


def inline_pixels(settings: BarcodeSettings) -> int:
    """The largest image whose first step runs in the caller's thread: one zxing-cpp pass over it takes
    at most INLINE_DEADLINE_SHARE of the deadline at ZXING_WORST_NS_PER_PIXEL."""
    return int(settings.deadline_ms * 1e6 * INLINE_DEADLINE_SHARE / ZXING_WORST_NS_PER_PIXEL)


@dataclass(frozen=True)
class BarcodeResult:
    """What one image gave: the codes, the time spent and how the ladder went."""

    codes: tuple[Code, ...]
    ms: float
    # The step after which the codes returned were first as returned, None when nothing was accepted.
    step: str | None
    steps_tried: tuple[str, ...]
    budget_spent: bool
    # A step was still running at the deadline and was abandoned (its reads are not included).
    overran: bool = False
    # Processor time the budget counted: decoding the image and the steps run (until the deadline).
    cpu_ms: float = 0.0
    # The ladder stopped early: nothing read and nothing code-like in the image (give_up_after).
    gave_up: bool = False


# ---------------------------------------------------------------- preprocessing


def prepare(step: StepName, grey: GreyImage, settings: BarcodeSettings) -> tuple[GreyImage, Affine] | None:
    """The variant of the image one step decodes, with its coordinate map; None when it does not apply."""
    return variants.prepare(step, grey, max_work_pixels=settings.max_work_pixels)


def _decode_step(
    step: StepName, variant: GreyImage, settings: BarcodeSettings, *, retail_only: bool = False
) -> list[EngineRead]:
    engine, prep = step.split("/", 1)
    if engine == "pyzbar":
        return engines.read_pyzbar(variant, linear_alone=settings.pyzbar_linear_alone)
    return engines.read_zxing(
        variant,
        binarizer="fixed" if prep == "fixed" else "local",
        min_linear_lines=settings.min_linear_lines,
        formats=engines.RETAIL_FORMATS if retail_only else None,
        # zxing-cpp's own inversion of the inverted image is the raw step over again.
        try_invert=False if prep == "invert" else None,
    )


# ---------------------------------------------------------------- the ladder


_warned_no_pyzbar = False


def _usable_steps(settings: BarcodeSettings) -> list[StepName]:
    global _warned_no_pyzbar
    wanted = set(settings.engines)
    if "pyzbar" in wanted and not engines.pyzbar_available():
        # One warning, not one per image: the line keeps reading with the other engine.
        if not _warned_no_pyzbar:
            log.warning("pyzbar is configured but libzbar cannot be loaded; reading with zxing-cpp only")
            _warned_no_pyzbar = True
        wanted.discard("pyzbar")
    names = {"zxing": engines.ENGINE_ZXING, "pyzbar": engines.ENGINE_PYZBAR}
    return [step for step in settings.ladder if names[step.split("/", 1)[0]] in wanted]


def load_image(image: bytes | npt.NDArray[np.generic], settings: BarcodeSettings) -> GreyImage:
    """Encoded bytes or a pixel array to 8-bit grey, refusing what is over the settings' limits."""
    if isinstance(image, bytes | bytearray):
        return decode_image(bytes(image), max_bytes=settings.max_bytes, max_pixels=settings.max_pixels)
    if isinstance(image, str | os.PathLike):
        raise BarcodeImageError(f"got a path ({image!s}); pass the image's bytes or its pixels")
    return to_grey(np.asarray(image), max_pixels=settings.max_pixels)


class _LadderRun:
    """One image's walk down the ladder; may run in a worker thread the caller stops waiting for."""

    def __init__(
        self, grey: GreyImage, settings: BarcodeSettings, cpu_clock: Callable[[], float], spent_s: float
    ) -> None:
        self.grey = grey
        self.settings = settings
        # A per-thread CPU clock, read only in the thread running the steps; the time already spent
        # (decoding, or steps run in another thread) is carried in spent_s.
        self.cpu_clock = cpu_clock
        self.spent_s = spent_s
        self.todo = _usable_steps(settings)
        # Verify steps already run with the retail decoders only.
        self.verified: set[StepName] = set()
        self.finished = False
        self.lock = threading.Lock()
        self.evidence = Evidence(
            settled_rows=settings.settled_rows,
            contest_ratio=settings.contest_ratio,
            pyzbar_weight=settings.pyzbar_weight,
        )
        self.accepted: list[EngineRead] = []
        self.tried: list[str] = []
        self.winner: str | None = None
        self.budget_spent = False
        self.gave_up = False
        self.abandoned = False
        self.error: BaseException | None = None

    def run(self, max_steps: int | None = None) -> None:
        """Go down the ladder in the calling thread; stop after max_steps steps tried (the ladder is
        then not finished and may go on in another thread) or at its end."""
        mark = self.cpu_clock()
        try:
            self._run(mark, max_steps)
        except BaseException as exc:  # handed to the caller's thread, which raises it
            self.error = exc
            self.finished = True
        finally:
            with self.lock:
                if not self.abandoned:
                    self.spent_s += self.cpu_clock() - mark

    def _next_step(self, todo: list[StepName]) -> tuple[StepName, bool]:
        """The step to run next, and whether it runs as a retail verification."""
        # A retail code in doubt (unconfirmed, thin, or with a rival text on its bars) is most often
        # a bar-width misjudgement at two pixels or so per module: a magnified view settles it
        # soonest, before the budget runs out on steps that would only repeat the same misreading.
        if self.evidence.retail_in_doubt():
            for step in self.settings.verify_steps:
                if step not in todo or step in self.verified:
                    continue
                if step.startswith("zxing/"):
                    # Only retail decoders can confirm or contest a retail read, and on a magnified
                    # image they cost a quarter of all of them; the step stays in the ladder for the
                    # other symbologies.
                    self.verified.add(step)
                    return step, True
                return todo.pop(todo.index(step)), False
        return todo.pop(0), False

    def _run(self, mark: float, max_steps: int | None) -> None:
        budget_s = self.settings.budget_ms / 1000.0
        todo = self.todo
        ran = 0
        while todo:
            if max_steps is not None and ran >= max_steps:
                return
            if self.tried and self.spent_s + self.cpu_clock() - mark >= budget_s:
                self.budget_spent = self.finished = True
                return
            step, verifying = self._next_step(todo)
            prepared = prepare(step, self.grey, self.settings)
            if prepared is None:
                continue
            ran += 1
            label = step + VERIFY_SUFFIX if verifying else step
            with self.lock:
                if self.abandoned:
                    return
                self.tried.append(label)
            variant, affine = prepared
            decoded = _decode_step(step, variant, self.settings, retail_only=verifying)
            reads = [variants.to_original(r, affine) for r in decoded]
            with self.lock:
                # A step that finishes after the caller gave up must not change what it was told.
                if self.abandoned:
                    return
                # Under the step's own name: its full run later repeats the same view, which the
                # weighing must count once.
                self.evidence.add(step, reads)
                accepted = self.evidence.accepted()
                if [r.text for r in accepted] != [r.text for r in self.accepted]:
                    self.winner = label if accepted else None
                self.accepted = accepted
                if self.evidence.settled():
                    self.finished = True
                    return
                seen = self.evidence.seen_any()
            # Measured once, outside the lock (it takes about as long as one step), and only for
            # images where nothing was read: the steps left differ in scale, angle and contrast,
            # and none of them makes a code out of an image with no edges like one.
            if (
                not seen
                and len(self.tried) == self.settings.give_up_after
                and todo
                and looks_featureless(self.grey)
            ):
                self.gave_up = self.finished = True
                return
        self.finished = True

    def inline_first(self) -> bool:
        """Whether the first step may run in the caller's thread: a zxing-cpp step on a same-size
        variant of an image small enough that the step is bounded well inside the deadline."""
        if not self.todo:
            return False
        engine, prep = self.todo[0].split("/", 1)
        return engine == "zxing" and prep in _INLINE_PREPS and self.grey.size <= inline_pixels(self.settings)


_WORKERS = WorkerPool()


def read_barcodes(
    image: bytes | npt.NDArray[np.generic],
    settings: BarcodeSettings | None = None,
    *,
    cpu_clock: Callable[[], float] = time.thread_time,
    clock: Callable[[], float] = time.monotonic,
) -> BarcodeResult:
    """Read every barcode in an image, trying the ladder's steps until the codes found are settled.

    A code is accepted when its symbology has error correction (QR, Data Matrix, PDF417, Aztec),
    when a linear code was seen across enough scan lines, or when two steps or engines agree on it,
    and no rival text on the same bars comes close to it in weight (see barcode_evidence.Evidence).
    The ladder stops once every accepted code is settled (seen across settings.settled_rows rows,
    uncontested); otherwise it goes on while the budget lasts and returns what is accepted then.
    Doubtful or contested reads are dropped: a wrong waybill is worse than a no-read.

    No step starts once settings.budget_ms of processor time is spent, counted with cpu_clock (a
    per-thread CPU clock) in each thread that decodes the image or runs steps, so that other work
    on the machine does not eat the budget. With a deadline set, the ladder runs in a worker thread
    and the caller waits at most settings.deadline_ms of real time: a step still running then (an
    adversarial image) is abandoned, finishes in the background, and the caller gets the codes
    accepted so far. The first step of a small image (inline_pixels) runs in the caller's thread,
    which saves handing over to the worker (two thread wake-ups, dear on a busy machine) for the
    images most often read at once. clock times the call for BarcodeResult.ms.
    """
    settings = settings or BarcodeSettings()
    started = clock()
    real_start = time.monotonic()
    cpu_start = cpu_clock()
    grey = load_image(image, settings)
    ladder = _LadderRun(grey, settings, cpu_clock, cpu_clock() - cpu_start)
    overran = False
    if settings.deadline_ms <= 0:
        ladder.run()
    else:
        if ladder.inline_first():
            ladder.run(max_steps=1)
        if not ladder.finished:
            # The engines release the GIL, so the caller can stop waiting while a step runs on.
            remaining_s = settings.deadline_ms / 1000.0 - (time.monotonic() - real_start)
            # A first step that ran past the deadline in the caller's thread leaves nothing to wait for.
            finished = remaining_s > 0 and _WORKERS.run(ladder.run, remaining_s)
            with ladder.lock:
                if not finished:
                    ladder.abandoned = overran = True
        if overran:
            log.warning(
                "barcode ladder at step %s past the %.0f ms deadline; abandoned",
                ladder.tried[-1] if ladder.tried else "?",
                settings.deadline_ms,
            )
    if ladder.error is not None and not overran:
        raise ladder.error
    with ladder.lock:
        accepted = list(ladder.accepted)
        result = BarcodeResult(
            codes=tuple(
                Code(r.text, r.symbology, r.engine, engines.bounding_box(r.corners)) for r in accepted
            ),
            ms=(clock() - started) * 1000.0,
            step=ladder.winner,
            steps_tried=tuple(ladder.tried),
            budget_spent=ladder.budget_spent or overran,
            overran=overran,
            cpu_ms=ladder.spent_s * 1000.0,
            gave_up=ladder.gave_up,
        )
    return result
