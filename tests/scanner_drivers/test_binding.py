"""Image binding by sequence, time window and file-name token, on a fake clock; missing images reported."""

from __future__ import annotations

import pytest

from scanner_drivers.binding import BindingConfigError, ImageBinder
from scanner_drivers.types import Code, ImageCapture, ScanRead


def _read(at: float, *texts: str) -> ScanRead:
    codes = tuple(Code(t, "unknown", "scanner") for t in texts)
    return ScanRead(device="test", codes=codes, at_utc="2026-01-01T00:00:00+00:00", at_monotonic=at)


def _img(name: str) -> ImageCapture:
    return ImageCapture(kind="xray", data=b"x", name=name, at_utc="2026-01-01T00:00:00+00:00")


def test_sequence_binds_in_order_and_reports_the_read_whose_image_never_came() -> None:
    b = ImageBinder("sequence", wait_s=2.0, before_s=0.5)
    b.add_read(_read(10.0, "A"))
    b.add_read(_read(11.0, "B"))
    b.add_shot(_img("1.png"), at_monotonic=10.4)
    res = b.poll(10.5)
    assert [(x.read.codes[0].text, x.images[0].name) for x in res.bound] == [("A", "1.png")]
    res = b.poll(13.1)
    assert [(x.read.codes[0].text, x.status) for x in res.bound] == [("B", "missing image")]
    assert b.pending() == (0, 0)


def test_sequence_does_not_shift_after_a_stale_shot() -> None:
    b = ImageBinder("sequence", wait_s=2.0, before_s=0.5)
    b.add_shot(_img("stale.png"), at_monotonic=1.0)
    b.add_read(_read(10.0, "A"))
    b.add_shot(_img("a.png"), at_monotonic=10.2)
    res = b.poll(10.3)
    assert [o.images[0].name for o in res.orphans] == ["stale.png"]
    assert res.bound[0].images[0].name == "a.png"


def test_window_picks_the_nearest_read() -> None:
    b = ImageBinder("window", wait_s=3.0, before_s=0.5, after_s=1.5)
    b.add_read(_read(10.0, "A"))
    b.add_read(_read(11.0, "B"))
    b.add_shot(_img("b.png"), at_monotonic=11.2)
    b.add_shot(_img("a.png"), at_monotonic=10.1)
    res = b.poll(11.5)
    assert sorted((x.read.codes[0].text, x.images[0].name) for x in res.bound) == [
        ("A", "a.png"),
        ("B", "b.png"),
    ]


def test_window_waits_when_a_later_read_could_be_nearer() -> None:
    b = ImageBinder("window", wait_s=3.0, before_s=0.5, after_s=2.0)
    b.add_read(_read(10.0, "A"))
    b.add_shot(_img("late.png"), at_monotonic=11.8)
    assert b.poll(11.9).bound == []
    b.add_read(_read(12.0, "B"))
    res = b.poll(12.1)
    assert [(x.read.codes[0].text, x.images[0].name) for x in res.bound] == [("B", "late.png")]
    res = b.poll(13.1)
    assert [(x.read.codes[0].text, x.status) for x in res.bound] == [("A", "missing image")]


def test_window_shot_outside_every_window_is_an_orphan() -> None:
    b = ImageBinder("window", wait_s=1.0, before_s=0.2, after_s=0.5)
    b.add_read(_read(10.0, "A"))
    b.add_shot(_img("far.png"), at_monotonic=20.0)
    res = b.poll(21.3)
    assert [o.images[0].name for o in res.orphans] == ["far.png"]
    assert [x.status for x in res.bound] == ["missing image"]


def test_token_in_the_file_name_binds_regardless_of_order() -> None:
    b = ImageBinder("token", wait_s=5.0)
    b.add_shot((_img("XR_EA123456785CN_H.png"), _img("XR_EA123456785CN_L.png")), at_monotonic=1.0)
    b.add_shot(_img("0007.png"), at_monotonic=1.0)
    b.add_read(_read(2.0, "1Z999AA10123456784"))
    b.add_read(_read(2.1, "EA123456785CN"))
    res = b.poll(2.2)
    assert [(x.read.codes[0].text, len(x.images)) for x in res.bound] == [("EA123456785CN", 2)]
    assert [o.reason for o in res.orphans] == ["no token in the file name"]
    res = b.flush()
    assert [(x.read.codes[0].text, x.status) for x in res.bound] == [("1Z999AA10123456784", "missing image")]


def test_no_read_waits_and_is_reported_too() -> None:
    b = ImageBinder("token", wait_s=1.0)
    b.add_read(_read(0.0))
    res = b.poll(1.0)
    assert res.bound[0].read.no_read and res.bound[0].status == "missing image"


def test_uses_its_clock_when_not_told_the_time() -> None:
    now = [100.0]
    b = ImageBinder("sequence", wait_s=1.0, clock=lambda: now[0])
    b.add_read(_read(100.0, "A"))
    b.add_shot(_img("a.png"))
    assert b.poll().bound[0].status == "bound"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "psychic"},
        {"mode": "window", "wait_s": -1.0},
        {"mode": "token", "token_pattern": "("},
        {"mode": "token", "token_pattern": "[A-Z]+"},
    ],
)
def test_bad_binder_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(BindingConfigError):
        ImageBinder(**kwargs)  # type: ignore[arg-type]
