"""`parcelguard model finetune`: adapt the backbone's last stages to a site's own labelled images.

A fine-tuned backbone is a new model with its own ONNX file, manifest and version: heads and
galleries must be rebuilt on it, and it can run in shadow mode before it goes live. Its ImageNet
logits keep the original classifier layer, so camera categories may drift; use it for the kinds
it was tuned on. It is only shippable when the images it was tuned on may be shipped.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from models.manifest import read_manifest, write_manifest
from models.preprocess import load_image, normalise
from models.train import Sample, augment

log = logging.getLogger(__name__)

# One epoch measured best on X-ray crops with whole series held out (accuracy 0.986 against 0.957
# for the frozen backbone, coverage at precision 0.99 0.979 against 0.913); four epochs over-fitted
# and made the head over-confident (coverage 0.49).
# Blocks from this index on (the last two stages, 192 and 320 channels) are trained, with the head
# convolution; earlier blocks keep their ImageNet weights. Fewer trainable layers: less to overfit
# on a few hundred images and about half the back-propagation cost on a CPU.
FIRST_TRAINED_BLOCK = 11


def finetune_network(
    samples: list[Sample],
    kind: str,
    epochs: int = 1,
    batch: int = 16,
    lr: float = 3e-4,
    seed: int = 0,
    threads: int = 2,
    quiet: bool = False,
) -> Any:
    """Fine-tune the pretrained network on `samples` (class-balanced cross-entropy); returned in eval mode."""
    import torch
    from torch import nn

    from models.build import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD
    from models.network import EMBEDDING_DIM, load_pretrained

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    labels = sorted({s.label for s in samples})
    y_all = np.asarray([labels.index(s.label) for s in samples], dtype=np.int64)
    squares = [load_image(s.path.read_bytes(), kind, IMAGE_SIZE) for s in samples]
    mean = np.asarray(PIXEL_MEAN, dtype=np.float32)
    inv_std = 1.0 / np.asarray(PIXEL_STD, dtype=np.float32)

    net = load_pretrained(IMAGE_SIZE)
    trained: list[nn.Parameter] = []
    for name, param in net.named_parameters():
        block = int(name.split(".")[1]) if name.startswith("_blocks.") else None
        train_it = (block is not None and block >= FIRST_TRAINED_BLOCK) or name.startswith(
            ("_conv_head", "_bn1.")
        )
        param.requires_grad_(train_it)
        if train_it:
            trained.append(param)
    classifier = nn.Linear(EMBEDDING_DIM, len(labels))
    optimiser = torch.optim.AdamW(
        [{"params": trained, "lr": lr}, {"params": classifier.parameters(), "lr": lr * 10}], weight_decay=1e-4
    )
    counts = np.bincount(y_all, minlength=len(labels)).astype(np.float32)
    weights = torch.from_numpy(len(y_all) / (len(labels) * np.maximum(counts, 1)))
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        net.train()
        for module in net.modules():  # batch statistics of 16 images are too noisy: keep ImageNet's
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        order = rng.permutation(len(samples))
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            x = np.concatenate([normalise(augment(squares[i], rng, kind), mean, inv_std) for i in idx])
            y = torch.from_numpy(y_all[idx])
            embedding, _ = net(torch.from_numpy(x))
            logits = classifier(embedding)
            loss = nn.functional.cross_entropy(logits, y, weight=weights)
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += len(idx)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += float(loss) * len(idx)
            if not quiet:
                print(
                    f"\repoch {epoch}/{epochs}: {total}/{len(order)} images",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
        if not quiet:
            summary = f"loss {loss_sum / total:.4f}, train accuracy {correct / total:.4f}"
            print(f"\repoch {epoch}/{epochs}: {summary}", file=sys.stderr, flush=True)
    net.eval()
    return net


def finetune_backbone(
    base_manifest: Path,
    samples: list[Sample],
    kind: str,
    out_dir: Path,
    version: str,
    epochs: int = 1,
    quiet: bool = False,
) -> Path:
    """Fine-tune, export to ONNX and write a manifest recording what it was tuned on; returns its path."""
    from models.build import export_onnx, make_manifest

    base = read_manifest(base_manifest)
    net = finetune_network(samples, kind, epochs=epochs, quiet=quiet)
    model_path = out_dir / f"{version}.onnx"
    export_onnx(model_path, net=net)
    tuned_on = {
        "images": len(samples),
        "per_label": {
            label: sum(s.label == label for s in samples) for label in sorted({s.label for s in samples})
        },
        "series": sorted({s.series for s in samples}),
        "kind": kind,
        "epochs": epochs,
        "trained_blocks_from": FIRST_TRAINED_BLOCK,
    }
    manifest = make_manifest(model_path, version, "fp32", {"fine_tuned_on": tuned_on})
    manifest.provenance["fine_tuned_from"] = f"{base.version} (sha256 {base.sha256})"
    path = out_dir / f"{version}.manifest.json"
    write_manifest(manifest, path)
    return path
