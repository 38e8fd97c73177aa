"""X-ray hot folder driven by a fake clock: completeness, never twice, quarantine, dual energy, DICOM."""

from __future__ import annotations

import queue
from pathlib import Path

import cv2
import numpy as np
import pytest

from scanner_drivers.types import DeviceUrlError, ImageCapture
from scanner_drivers.xray.hotfolder import HotFolderDriver, parse_folder_url
from scanner_drivers.xray.image_files import ImageFileError, check_image_bytes


class Rec:
    def __init__(self) -> None:
        self.shots: list[tuple[ImageCapture, ...]] = []
        self.status: list[tuple[bool, str]] = []
        self.rejects: list[tuple[str, str]] = []

    def shot(self, s: tuple[ImageCapture, ...]) -> None:
        self.shots.append(s)

    def on_status(self, _d: str, up: bool, detail: str) -> None:
        self.status.append((up, detail))

    def reject(self, name: str, reason: str) -> None:
        self.rejects.append((name, reason))

    @property
    def names(self) -> list[list[str]]:
        return [[c.name for c in s] for s in self.shots]


def _driver(folder: Path, query: str = "") -> tuple[HotFolderDriver, Rec]:
    d = HotFolderDriver(f"folder://{folder}" + (f"?{query}" if query else ""))
    r = Rec()
    d.bind(r.shot, r.on_status, r.reject)
    return d, r


def _png(path: Path, depth: type = np.uint8) -> bytes:
    img: np.ndarray = (np.arange(64 * 48).reshape(48, 64) % 250).astype(depth)
    if depth is np.uint16:
        img = img * 200
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


def test_takes_a_file_once_it_is_stable_and_never_twice(tmp_path: Path) -> None:
    d, r = _driver(tmp_path, "settle_ms=500")
    data = _png(tmp_path / "0001.png")
    d.poll(0.0)
    d.poll(0.4)
    assert r.shots == []
    d.poll(0.6)
    assert r.names == [["0001.png"]]
    shot = r.shots[0][0]
    assert shot.kind == "xray" and shot.data == data and shot.content_type == "image/png"
    assert (tmp_path / "done" / "0001.png").exists() and not (tmp_path / "0001.png").exists()
    d.poll(5.0)
    assert len(r.shots) == 1
    assert r.status == [(True, "watching")]


def test_a_growing_file_waits_until_it_stops_growing(tmp_path: Path) -> None:
    full = _png(tmp_path / "scan.png")
    (tmp_path / "scan.png").write_bytes(full[:40])
    d, r = _driver(tmp_path, "settle_ms=500")
    d.poll(0.0)
    (tmp_path / "scan.png").write_bytes(full)
    d.poll(0.6)  # size changed: the clock starts again
    assert r.shots == []
    d.poll(1.0)
    assert r.shots == []
    d.poll(1.2)
    assert r.names == [["scan.png"]] and r.rejects == []


def test_renamed_into_place_with_no_settle_time(tmp_path: Path) -> None:
    d, r = _driver(tmp_path, "settle_ms=0")
    (tmp_path / "a.png.part").write_bytes(_png(tmp_path / "src.png"))
    (tmp_path / "src.png").rename(tmp_path / "elsewhere.bin")
    d.poll(0.0)
    assert r.shots == []
    (tmp_path / "a.png.part").rename(tmp_path / "a.png")
    d.poll(0.0)
    assert r.names == [["a.png"]]


@pytest.mark.parametrize("name", ["x.jpg", "x.bmp", "x.tif", "x16.tif", "x16.png"])
def test_formats_including_16_bit(tmp_path: Path, name: str) -> None:
    d, r = _driver(tmp_path, "settle_ms=0")
    data = _png(tmp_path / name, np.uint16 if "16" in name else np.uint8)
    d.poll(0.0)
    assert r.shots[0][0].data == data
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    assert decoded.dtype == (np.uint16 if "16" in name else np.uint8)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.png", b""),
        ("noise.png", b"\x89PNG\r\n\x1a\nnot really"),
        ("text.jpg", b"hello"),
        (
            "bomb.png",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x00\x00\x00\x01\x00\x00\x08\x00\x00\x00\x00",
        ),
        ("fake.dcm", b"DICM but not really"),
    ],
)
def test_corrupt_files_are_quarantined_and_reported(tmp_path: Path, name: str, content: bytes) -> None:
    d, r = _driver(tmp_path, "settle_ms=0")
    (tmp_path / name).write_bytes(content)
    _png(tmp_path / "good.png")
    d.poll(0.0)
    assert r.names == [["good.png"]]
    assert [n for n, _ in r.rejects] == [name]
    assert (tmp_path / "quarantine" / name).exists()
    assert (tmp_path / "quarantine" / f"{name}.reason.txt").read_text().strip() == r.rejects[0][1]
    d.poll(1.0)
    assert len(r.rejects) == 1


def test_truncated_jpeg_is_quarantined(tmp_path: Path) -> None:
    full = _png(tmp_path / "cut.jpg")
    (tmp_path / "cut.jpg").write_bytes(full[: len(full) // 2])
    d, r = _driver(tmp_path, "settle_ms=0")
    d.poll(0.0)
    assert r.shots == [] and "truncated" in r.rejects[0][1]


def test_dual_energy_pairs_and_a_lonely_half(tmp_path: Path) -> None:
    d, r = _driver(tmp_path, "settle_ms=0&dual=1&high=_HE&low=_LE&pair_wait_ms=1000")
    _png(tmp_path / "0007_LE.png")
    d.poll(0.0)
    assert r.shots == []
    _png(tmp_path / "0007_HE.png")
    _png(tmp_path / "0008_he.png")
    d.poll(0.1)
    assert r.names == [["0007_HE.png", "0007_LE.png"]]
    assert [c.kind for c in r.shots[0]] == ["xray", "xray_low"]
    d.poll(1.2)
    assert r.names[-1] == ["0008_he.png"]
    assert "partner never arrived" in r.rejects[0][1]


def test_keep_mode_remembers_across_restarts(tmp_path: Path) -> None:
    _png(tmp_path / "k.png")
    d, r = _driver(tmp_path, "settle_ms=0&after=keep")
    d.poll(0.0)
    assert r.names == [["k.png"]] and (tmp_path / "k.png").exists()
    d2, r2 = _driver(tmp_path, "settle_ms=0&after=keep")
    d2.poll(0.0)
    assert r2.shots == []
    # The machine writes a new image under the same name: that is a new file.
    _png(tmp_path / "k.png", np.uint16)
    d2.poll(1.0)
    assert r2.names == [["k.png"]]


def test_damaged_state_file_does_not_stop_the_folder(tmp_path: Path) -> None:
    (tmp_path / ".parcelguard-taken.json").write_text("{not json")
    _png(tmp_path / "k.png")
    d, r = _driver(tmp_path, "settle_ms=0&after=keep")
    d.poll(0.0)
    assert r.names == [["k.png"]]


def test_dicom_is_read_with_pydicom(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    pixels = (np.arange(32 * 40).reshape(32, 40) * 37 % 4096).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(tmp_path / "bag.dcm", enforce_file_format=True)
    d, r = _driver(tmp_path, "settle_ms=0")
    d.poll(0.0)
    capture = r.shots[0][0]
    assert capture.name == "bag.dcm" and capture.content_type == "image/png"
    back = cv2.imdecode(np.frombuffer(capture.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back is not None
    assert back.dtype == np.uint16 and np.array_equal(back, pixels)


def test_missing_folder_is_down_then_up(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    d, r = _driver(folder, "settle_ms=0")
    d.poll(0.0)
    d.poll(0.2)
    folder.mkdir()
    d.poll(0.4)
    assert [up for up, _ in r.status] == [False, True]


def test_thread_mode_delivers(tmp_path: Path) -> None:
    got: queue.Queue[tuple[ImageCapture, ...]] = queue.Queue()
    d = HotFolderDriver(f"folder://{tmp_path}?settle_ms=0&poll_ms=20")
    d.start(got.put, lambda *_a: None)
    try:
        _png(tmp_path / "t.png")
        assert got.get(timeout=10)[0].name == "t.png"
    finally:
        d.stop()
        assert d.join(5)


def test_image_check_rejects_garbage_directly() -> None:
    with pytest.raises(ImageFileError):
        check_image_bytes(b"\x00" * 100, "zeros.png")


@pytest.mark.parametrize(
    "url",
    [
        "folder://relative/path",
        "folder://host/var/spool",
        "folder:///x?pattern=",
        "folder:///x?settle_ms=-1",
        "folder:///x?after=shred",
        "folder:///x?dual=1&high=_H&low=_h",
        "folder:///x?kind=ultrasound",
        "folder:///x?colour=1",
        "file:///x",
    ],
)
def test_bad_folder_urls(url: str) -> None:
    with pytest.raises(DeviceUrlError):
        parse_folder_url(url)


def test_a_file_that_cannot_be_moved_is_reported_once_and_not_emitted(tmp_path: Path) -> None:
    (tmp_path / "done").write_text("in the way")
    (tmp_path / "quarantine").write_text("in the way too")
    _png(tmp_path / "stuck.png")
    (tmp_path / "bad.png").write_bytes(b"junk")
    d, r = _driver(tmp_path, "settle_ms=0")
    d.poll(0.0)
    d.poll(1.0)
    assert r.shots == []
    assert sorted(n for n, _ in r.rejects) == ["bad.png", "stuck.png"]
    assert "cannot move" in dict(r.rejects)["stuck.png"]


def test_fake_xray_machine_feeds_the_hot_folder(tmp_path: Path) -> None:
    from scanner_drivers.xray.fake_xray import FakeXrayMachine

    machine = FakeXrayMachine(tmp_path, dual=True)
    d, r = _driver(tmp_path, "settle_ms=0&dual=1")
    machine.scan(token="EA123456785CN")
    machine.scan()
    d.poll(0.0)
    assert r.names == [
        ["XR000001_EA123456785CN_H.png", "XR000001_EA123456785CN_L.png"],
        ["XR000002_H.png", "XR000002_L.png"],
    ]
    assert r.rejects == []
    with pytest.raises(ValueError):
        FakeXrayMachine(tmp_path, ext="gif")
