"""`parcelguard model quantize`: static int8 (QDQ) quantisation of the backbone, shippable calibration."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.manifest import read_manifest, verified_model_path, write_manifest
from models.preprocess import load_image, normalise

log = logging.getLogger(__name__)


def calibration_tensors(mean: npt.NDArray[np.float32], inv_std: npt.NDArray[np.float32]) -> list[Any]:
    """Inputs for activation ranges: the bundled sample photos as camera and as X-ray views, plus flips.

    Only images the product may ship are used, so the quantised model can be rebuilt anywhere.
    """
    from models.build import IMAGE_SIZE, sample_photos

    tensors = []
    for photo in sample_photos().values():
        for kind in ("camera", "xray"):
            square = load_image(photo, kind, IMAGE_SIZE)
            for view in (square, square[:, ::-1], square[::-1]):
                tensors.append(normalise(np.ascontiguousarray(view), mean, inv_std))
    return tensors


def quantize_int8(manifest_path: Path, out_dir: Path, version: str) -> Path:
    """Write `<name>_int8.onnx` and its manifest next to the fp32 model's; returns the manifest path."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from models.build import make_manifest

    spec = read_manifest(manifest_path)
    fp32 = verified_model_path(spec, manifest_path)
    mean = np.asarray(spec.input.mean, dtype=np.float32)
    inv_std = 1.0 / np.asarray(spec.input.std, dtype=np.float32)
    tensors = calibration_tensors(mean, inv_std)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items: Iterator[Any] = iter(tensors)

        def get_next(self) -> dict[str, Any] | None:
            item = next(self.items, None)
            return None if item is None else {spec.input.name: item}

    out_dir.mkdir(parents=True, exist_ok=True)
    prepared = out_dir / f"{fp32.stem}_prep.onnx"
    target = out_dir / f"{fp32.stem}_int8.onnx"
    quant_pre_process(str(fp32), str(prepared))
    try:
        quantize_static(
            str(prepared),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        prepared.unlink(missing_ok=True)
    manifest = make_manifest(target, version, "int8", {"calibration_images": len(tensors)})
    manifest.provenance["quantisation"] = (
        f"onnxruntime static QDQ int8 (per-channel weights, uint8 activations) of {fp32.name} "
        f"sha256 {spec.sha256}, calibrated on {len(tensors)} views of the bundled sample photos"
    )
    path = out_dir / f"{fp32.stem}_int8.manifest.json"
    write_manifest(manifest, path)
    log.info("int8 model written to %s", target)
    return path
