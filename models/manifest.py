"""Model governance: the manifest every shipped model carries, and the checks made before it is used."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ModelLoadError(ValueError):
    """A model, head or gallery cannot be used: missing file, digest mismatch, wrong shape or labels."""


class InputSpec(BaseModel):
    """What the network expects as input, so preprocessing never has to guess."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="name of the ONNX input tensor")
    shape: list[int | str] = Field(
        description="input shape; the batch dimension may be a symbolic name, the others are fixed"
    )
    layout: str = Field(description="axis order of the input tensor, e.g. NCHW")
    color: str = Field(description="channel order fed to the network, e.g. RGB")
    dtype: str = Field(description="element type of the input tensor, e.g. float32")
    mean: list[float] = Field(description="per-channel value subtracted from 0-255 pixels")
    std: list[float] = Field(description="per-channel divisor applied after the mean is subtracted")


class OutputSpec(BaseModel):
    """One named output tensor and its width."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="name of the ONNX output tensor")
    dim: int = Field(description="width of the output (last axis)")


class Thresholds(BaseModel):
    """Decision thresholds that belong to the model rather than to a station's configuration."""

    model_config = ConfigDict(extra="forbid")

    category_min_prob: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="below this category probability (and with no head) the result is uncertain",
    )
    gallery_top_k: int = Field(3, ge=0, le=50, description="how many nearest gallery references to report")


class Manifest(BaseModel):
    """Everything the edge must know, and verify, about one exported backbone."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="model family, e.g. efficientnet-lite0-imagenet")
    version: str = Field(description="unique version string; shadow models must differ from the live one")
    file: str = Field(description="ONNX file name, relative to the manifest's folder")
    sha256: str = Field(description="sha256 of the ONNX file, hex")
    precision: str = Field(description="fp32 or int8")
    input: InputSpec = Field(description="input tensor specification")
    embedding: OutputSpec = Field(description="the pooled embedding output")
    logits: OutputSpec = Field(description="the ImageNet logits output")
    labels: list[str] = Field(description="one label per logit, in order")
    labels_sha256: str = Field(description="sha256 of the labels, one per line")
    thresholds: Thresholds = Field(default_factory=Thresholds, description="model-level thresholds")
    provenance: dict[str, Any] = Field(
        description="where the weights and the labels come from, and how built"
    )
    licence: str = Field(description="licence of the weights")
    evaluation: dict[str, Any] = Field(default_factory=dict, description="evaluation figures at build time")
    created_utc: str = Field(description="when the model was exported, UTC ISO 8601")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large models do not need to fit twice in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: Path) -> Manifest:
    """Parse and validate a manifest file; every problem becomes a ModelLoadError naming the file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"model manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"model manifest {path} is not readable JSON: {exc}") from exc
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ModelLoadError(f"model manifest {path} is invalid: {exc}") from exc


def write_manifest(manifest: Manifest, path: Path) -> None:
    path.write_text(json.dumps(manifest.model_dump(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def verified_model_path(manifest: Manifest, manifest_path: Path) -> Path:
    """The ONNX file the manifest names, after checking that it exists and its sha256 matches."""
    model_path = (manifest_path.parent / manifest.file).resolve()
    if not model_path.is_file():
        raise ModelLoadError(f"model file {model_path} named by {manifest_path} does not exist")
    actual = sha256_file(model_path)
    if actual != manifest.sha256:
        raise ModelLoadError(
            f"model file {model_path} has sha256 {actual[:16]}..., manifest {manifest_path} "
            f"expects {manifest.sha256[:16]}...: refusing a file that is not the published model"
        )
    return model_path
