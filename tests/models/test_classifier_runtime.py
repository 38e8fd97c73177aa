"""Runtime classifier on a tiny generated ONNX model: loading checks, preprocessing, bad images."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.classifier import Classification, Classifier, ImageDecodeError, ModelLoadError
from models.preprocess import load_image, normalise, sniff_size

SIZE = 32


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def _photo(h: int = 60, w: int = 90) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_load_and_classify_bytes_and_arrays(tiny_manifest: Path) -> None:
    clf = Classifier.load(tiny_manifest)
    img = _photo()
    for data in (_png(img), _jpeg(img), img[:, :, ::-1].copy()):
        c = clf.classify(data, kind="camera")
        assert isinstance(c, Classification)
        assert 0.0 <= c.category_prob <= 1.0
        assert c.counterfeit_score is None and c.label is None and c.gallery == ()
        assert c.model_version == clf.version == "tiny-1"
    for kind in ("xray", "xray_low"):
        assert clf.classify(_png(img), kind=kind).model_version == "tiny-1"


def test_png_bytes_and_rgb_array_give_the_same_tensor(tiny_manifest: Path) -> None:
    clf = Classifier.load(tiny_manifest)
    rgb = _photo()
    from_bytes = clf.preprocess(_png(rgb[:, :, ::-1].copy()), "camera")
    from_array = clf.preprocess(rgb, "camera")
    np.testing.assert_allclose(from_bytes, from_array, atol=1e-6)


def test_camera_preprocessing_is_centre_crop_and_normalisation() -> None:
    img = np.zeros((40, 80, 3), dtype=np.uint8)
    img[:, 20:60] = 200  # the centre 40x40 square is bright, the sides dark
    square = load_image(img, "camera", SIZE)
    assert square.shape == (SIZE, SIZE, 3)
    assert square.min() == 200  # crop kept only the centre
    mean = np.array([127.5, 127.5, 127.5], dtype=np.float32)
    inv = np.full(3, 1 / 127.5, dtype=np.float32)
    tensor = normalise(square, mean, inv)
    assert tensor.shape == (1, 3, SIZE, SIZE) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor, (200 - 127.5) / 127.5, atol=1e-6)
    # Unequal std takes the numpy path; both paths agree.
    inv2 = np.array([1 / 127.5, 1 / 127.5, 1 / 127.4], dtype=np.float32)
    np.testing.assert_allclose(normalise(square, mean, inv2)[:, :2], tensor[:, :2], atol=1e-6)


def test_xray_preprocessing_pads_with_background_and_keeps_the_object() -> None:
    img = np.full((20, 60), 230, dtype=np.uint8)  # bright beam background
    img[5:15, 5:55] = 20  # a long dark object reaching near both ends
    square = load_image(img, "xray", 60)
    assert square.shape == (60, 60, 3)
    assert square[0, 0, 0] == 230  # padding uses the background
    assert square[30, 8, 0] < 60 and square[30, 52, 0] < 60  # both ends of the object survive


def test_sixteen_bit_xray_is_stretched_not_crushed() -> None:
    raw = np.full((50, 50), 1000, dtype=np.uint16)
    raw[10:40, 10:40] = 3000  # uses a small part of the 16-bit range, as raw detectors do
    square = load_image(_png(raw), "xray", SIZE)
    assert square.max() > 200 and square.min() < 50


def test_bad_images_are_clear_errors(tiny_manifest: Path) -> None:
    clf = Classifier.load(tiny_manifest)
    good = _png(_photo())
    cases: dict[str, object] = {
        "empty": b"",
        "corrupt": b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
        "truncated jpeg": _jpeg(_photo())[:40],
        "not an image": b"hello, this is text",
        "too small": _png(np.zeros((2, 2, 3), np.uint8)),
        "empty array": np.zeros((0, 0, 3), np.uint8),
        "five channels": np.zeros((20, 20, 5), np.uint8),
        "nan floats": np.full((20, 20), np.nan, np.float32),
        "not bytes": "a string",
    }
    # A PNG whose header claims 100000 x 100000 pixels: refused before any decoding.
    huge = bytearray(good)
    huge[16:24] = struct.pack(">II", 100_000, 100_000)
    cases["huge png header"] = bytes(huge)
    for name, data in cases.items():
        with pytest.raises(ImageDecodeError):
            clf.classify(data, kind="camera")  # type: ignore[arg-type]
        assert name  # keeps the case name visible in a failure traceback
    with pytest.raises(ImageDecodeError, match="kind"):
        clf.classify(good, kind="thermal")


def test_huge_jpeg_header_is_refused_before_decoding() -> None:
    data = bytearray(_jpeg(_photo()))
    size = sniff_size(bytes(data))
    assert size == (90, 60)
    # Patch the SOF frame size to 20000 x 20000.
    pos = 2
    while not (0xC0 <= data[pos + 1] <= 0xC3):
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    data[pos + 5 : pos + 9] = struct.pack(">HH", 20000, 20000)
    with pytest.raises(ImageDecodeError, match="larger than"):
        load_image(bytes(data), "camera", SIZE)


def test_greyscale_sixteen_bit_alpha_and_float_images_work(tiny_manifest: Path) -> None:
    clf = Classifier.load(tiny_manifest)
    grey = np.random.default_rng(2).integers(0, 256, (40, 50), dtype=np.uint8)
    deep = grey.astype(np.uint16) * 257
    rgba = np.dstack([_photo(40, 50), np.full((40, 50), 255, np.uint8)])
    for data in (
        _png(grey),
        _jpeg(grey),
        _png(deep),
        _png(rgba),
        deep,
        grey.astype(np.float32) / 255,
        grey[:, :, None],
    ):
        for kind in ("camera", "xray"):
            assert clf.classify(data, kind=kind).category


def test_cmyk_jpeg_is_decoded() -> None:
    pil = pytest.importorskip("PIL.Image")
    rgb = np.zeros((40, 60, 3), dtype=np.uint8)
    rgb[:, :, 0] = 220  # red
    buf = io.BytesIO()
    pil.fromarray(rgb).convert("CMYK").save(buf, format="JPEG", quality=95)
    square = load_image(buf.getvalue(), "camera", SIZE)
    r, g, b = (float(square[:, :, i].mean()) for i in range(3))
    assert r > 150 and g < 80 and b < 80, (r, g, b)


def test_manifest_that_lies_about_the_input_shape(manifest_factory: Callable[..., Path]) -> None:
    path = manifest_factory("liar", **{"input.shape": ["batch", 3, 64, 64]})
    with pytest.raises(ModelLoadError, match="input shape"):
        Classifier.load(path)


def test_sha_mismatch_missing_file_and_bad_json(
    manifest_factory: Callable[..., Path], tmp_path: Path
) -> None:
    path = manifest_factory("tampered")
    model = path.parent / "tampered.onnx"
    model.write_bytes(model.read_bytes() + b"\x00")
    with pytest.raises(ModelLoadError, match="sha256"):
        Classifier.load(path)
    model.unlink()
    with pytest.raises(ModelLoadError, match="does not exist"):
        Classifier.load(path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        Classifier.load(tmp_path / "nowhere.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelLoadError, match="JSON"):
        Classifier.load(bad)
    extra = json.loads(manifest_factory("extra").read_text())
    extra["surprise"] = 1
    bad.write_text(json.dumps(extra))
    with pytest.raises(ModelLoadError, match="invalid"):
        Classifier.load(bad)


def test_wrong_labels_are_refused(manifest_factory: Callable[..., Path]) -> None:
    from models.build import read_labels
    from models.categories import labels_sha256

    labels = read_labels()
    short = labels[:-1]
    with pytest.raises(ModelLoadError, match="labels"):
        Classifier.load(manifest_factory("short", labels=short, labels_sha256=labels_sha256(short)))
    swapped = [labels[1], labels[0], *labels[2:]]
    with pytest.raises(ModelLoadError, match="ImageNet"):
        Classifier.load(manifest_factory("swapped", labels=swapped, labels_sha256=labels_sha256(swapped)))
    with pytest.raises(ModelLoadError, match="labels_sha256"):
        Classifier.load(manifest_factory("unpinned", labels=swapped))


def test_wrong_output_width_is_refused(manifest_factory: Callable[..., Path]) -> None:
    with pytest.raises(ModelLoadError, match="embedding"):
        Classifier.load(manifest_factory("wide", **{"embedding.dim": 16}))
