"""Fixtures for the classifier tests: a tiny generated ONNX backbone with a valid manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

TINY_SIZE = 32
TINY_DIM = 8


def make_tiny_onnx(path: Path, size: int = TINY_SIZE, dim: int = TINY_DIM, seed: int = 0) -> None:
    """image [N,3,size,size] -> 1x1 conv -> ReLU -> global pool -> embedding [N,dim] -> logits [N,1000]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    conv_w = rng.standard_normal((dim, 3, 1, 1)).astype(np.float32)
    conv_b = rng.standard_normal(dim).astype(np.float32) * 0.1
    fc_w = rng.standard_normal((dim, 1000)).astype(np.float32)
    fc_b = np.zeros(1000, dtype=np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["embedding"], axis=1),
        helper.make_node("Gemm", ["embedding", "fc_w", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])],
        [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000]),
        ],
        initializer=[
            numpy_helper.from_array(conv_w, "conv_w"),
            numpy_helper.from_array(conv_b, "conv_b"),
            numpy_helper.from_array(fc_w, "fc_w"),
            numpy_helper.from_array(fc_b, "fc_b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_tiny_manifest(folder: Path, version: str = "tiny-1", **changes: object) -> Path:
    """A tiny model plus a manifest; `changes` override manifest fields to make it lie."""
    from models.build import make_manifest

    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{version}.onnx"
    make_tiny_onnx(model)
    manifest = make_manifest(model, version, "fp32", {})
    raw = manifest.model_dump()
    raw["input"]["shape"] = ["batch", 3, TINY_SIZE, TINY_SIZE]
    raw["embedding"]["dim"] = TINY_DIM
    for key, value in changes.items():
        target = raw
        *parents, leaf = key.split(".")
        for part in parents:
            target = target[part]
        target[leaf] = value
    path = folder / f"{version}.manifest.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


@pytest.fixture
def tiny_manifest(tmp_path: Path) -> Path:
    return write_tiny_manifest(tmp_path / "model")


@pytest.fixture
def manifest_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(version: str = "tiny-x", **changes: object) -> Path:
        return write_tiny_manifest(tmp_path / f"m{next(counter)}", version, **changes)

    return make
