"""Image uploads pass the image gate on their header: every crafted file is refused with the one JSON error
shape, honest images of each accepted type are stored."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

CRAFTED = Path(__file__).resolve().parent.parent / "fixtures" / "crafted" / "corpus.py"
CTYPES = {"jpg": "image/jpeg", "bmp": "image/bmp", "tif": "image/tiff"}


def _corpus() -> Any:
    spec = importlib.util.spec_from_file_location("crafted_corpus", CRAFTED)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES: list[tuple[str, bytes, str, str]] = _corpus().cases()


def _put(server: Any, data: bytes, ctype: str) -> Any:
    sha = hashlib.sha256(data).hexdigest()
    return server.client.put(
        f"/api/v1/images/{sha}", content=data, headers={**server.station_a, "Content-Type": ctype}
    )


def test_every_crafted_file_is_refused(server: Any) -> None:
    refused: dict[str, int] = {}
    for name, data, reason, filename in CASES:
        ctype = CTYPES.get(filename.rsplit(".", 1)[-1], "image/png")
        reply = _put(server, data, ctype)
        assert 400 <= reply.status_code < 500, (name, reply.status_code)
        error = reply.json()["error"]
        assert set(error) == {"code", "message"}
        if reply.status_code == 422 and error["code"] == "image_refused":
            assert f"({reason})" in error["message"] or "not accepted" in error["message"], error
        refused[name] = reply.status_code
    assert len(refused) == len(CASES)
    # Those whose leading bytes match the declared type are refused by the gate itself, not the magic check.
    assert sum(1 for code in refused.values() if code == 422) >= 30


@pytest.mark.parametrize(
    ("ext", "ctype"),
    [(".png", "image/png"), (".jpg", "image/jpeg"), (".bmp", "image/bmp"), (".tiff", "image/tiff")],
)
def test_honest_images_are_stored(server: Any, ext: str, ctype: str) -> None:
    image = (np.arange(48 * 64 * 3).reshape(48, 64, 3) % 251).astype(np.uint8)
    data = cv2.imencode(ext, image)[1].tobytes()
    reply = _put(server, data, ctype)
    assert reply.status_code == 201, reply.text
    assert reply.json()["stored"]


def test_a_png_sent_as_jpeg_is_refused(server: Any) -> None:
    data = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    assert _put(server, data, "image/jpeg").status_code == 415
