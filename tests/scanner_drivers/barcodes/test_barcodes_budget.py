"""The reader's CPU-time budget and where its steps run, with fake per-thread CPU clocks."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
import zxingcpp

from scanner_drivers.barcodes.reader import BarcodeSettings, inline_pixels, read_barcodes

Grey = npt.NDArray[np.uint8]
TWO_STEPS = ("zxing/raw", "zxing/contrast")


class ThreadClock:
    """A fake per-thread CPU clock: each thread has its own reading, moved by its own step per look."""

    def __init__(self, step_s: float = 0.0, caller_step_s: float | None = None) -> None:
        self.caller = threading.get_ident()
        self.step_s = step_s
        self.caller_step_s = step_s if caller_step_s is None else caller_step_s
        self.now: dict[int, float] = {}
        self.readers: list[int] = []

    def __call__(self) -> float:
        ident = threading.get_ident()
        self.readers.append(ident)
        step = self.caller_step_s if ident == self.caller else self.step_s
        self.now[ident] = self.now.get(ident, 0.0) + step
        return self.now[ident]


class WallClock:
    """A wall clock racing ahead by a second per look, as on a machine too busy to schedule us."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def blank(side: int) -> Grey:
    return np.full((side, side), 255, np.uint8)


def code128() -> Grey:
    barcode = zxingcpp.create_barcode("PG1234567890CN", zxingcpp.BarcodeFormat.Code128)
    img = np.array(zxingcpp.write_barcode_to_image(barcode, scale=3), dtype=np.uint8)
    return np.ascontiguousarray(np.pad(img, 30, constant_values=255))


def test_wall_time_does_not_spend_the_budget() -> None:
    settings = BarcodeSettings(budget_ms=50, deadline_ms=0, give_up_after=0)
    result = read_barcodes(blank(200), settings, cpu_clock=ThreadClock(0.0), clock=WallClock())
    assert result.steps_tried == settings.ladder
    assert not result.budget_spent
    # The call still reports the wall time it took.
    assert result.ms >= 1000.0 and result.cpu_ms == 0.0


def test_cpu_time_spends_the_budget() -> None:
    settings = BarcodeSettings(budget_ms=50, deadline_ms=0, give_up_after=0)
    result = read_barcodes(blank(200), settings, cpu_clock=ThreadClock(0.020))
    assert 1 < len(result.steps_tried) < len(settings.ladder)
    assert result.budget_spent and result.cpu_ms >= 50.0


def test_a_small_image_read_at_once_never_leaves_the_callers_thread() -> None:
    clock = ThreadClock()
    result = read_barcodes(code128(), BarcodeSettings(ladder=TWO_STEPS), cpu_clock=clock)
    assert [c.text for c in result.codes] == ["PG1234567890CN"]
    assert result.steps_tried == ("zxing/raw",)
    assert set(clock.readers) == {clock.caller}


def test_a_small_image_goes_on_in_a_worker_when_the_first_step_is_not_enough() -> None:
    clock = ThreadClock()
    result = read_barcodes(blank(200), BarcodeSettings(ladder=TWO_STEPS), cpu_clock=clock)
    assert result.steps_tried == TWO_STEPS and not result.overran
    assert clock.caller in clock.readers and len(set(clock.readers)) == 2


def test_an_image_over_the_inline_bound_runs_every_step_in_a_worker() -> None:
    settings = BarcodeSettings(ladder=TWO_STEPS)
    side = int(inline_pixels(settings) ** 0.5) + 1
    clock = ThreadClock()
    result = read_barcodes(blank(side), settings, cpu_clock=clock)
    assert result.steps_tried == TWO_STEPS
    # Only the image decoding is timed in the caller's thread: its first two readings.
    assert clock.readers[:2] == [clock.caller, clock.caller]
    assert clock.caller not in clock.readers[2:]


def test_cpu_time_spent_in_the_callers_thread_counts_in_the_worker() -> None:
    # 30 ms per look in the caller's thread (decoding, then the first step), none in the worker: the
    # worker must still find the budget spent before the second step.
    clock = ThreadClock(step_s=0.0, caller_step_s=0.030)
    result = read_barcodes(blank(200), BarcodeSettings(budget_ms=50, ladder=TWO_STEPS), cpu_clock=clock)
    assert result.steps_tried == ("zxing/raw",)
    assert result.budget_spent and len(set(clock.readers)) == 2
    assert result.cpu_ms >= 50.0


def test_the_inline_bound_keeps_a_worst_case_step_inside_the_deadline() -> None:
    assert inline_pixels(BarcodeSettings()) >= 640 * 480  # the usual camera frame runs inline
    assert inline_pixels(BarcodeSettings(deadline_ms=25)) < 640 * 480
