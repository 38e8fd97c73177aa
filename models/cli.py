"""`parcelguard model build|train|eval|record|crossval|quantize|demo|gallery`, `bench classifier`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from models.categories import GOODS_CATEGORIES as CATEGORY_NAMES

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DEFAULT_MANIFEST = ARTIFACTS / "efficientnet_lite0.manifest.json"
KINDS = ("camera", "xray", "xray_low")
GOODS_CATEGORIES = tuple(CATEGORY_NAMES)


def _load(args: argparse.Namespace, head: bool = False, gallery: bool = False) -> Any:
    from models.classifier import Classifier

    return Classifier.load(
        args.manifest,
        head=args.head if head else None,
        gallery=args.gallery if gallery else None,
        threads=args.threads,
    )


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=1, ensure_ascii=False))


def cmd_build(args: argparse.Namespace) -> int:
    from models.build import build

    print(build(args.out, args.version))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from models.heads import save_head
    from models.train import scan_folder, train_head

    clf = _load(args)
    samples = scan_folder(args.data)
    head = train_head(
        clf,
        samples,
        args.kind,
        views=args.views,
        folds=args.folds,
        target_precision=args.target_precision,
        suspect=tuple(args.suspect) or None,
        version=args.version,
        categories=tuple(args.category),
        detail=args.detail_grid,
    )
    data = {k: v for k, v in (("description", args.data_description), ("attribution", args.attribution)) if v}
    if data:
        head = replace(head, meta=dict(head.meta, data=data))
    digest = save_head(head, args.out)
    scope = f"{head.meta['kind']} images" + (
        f" of {', '.join(head.meta['categories'])}" if head.meta["categories"] else ""
    )
    print(
        f"head {head.version} ({', '.join(head.labels)}) for {scope} written to {args.out}, sha256 {digest}"
    )
    # Last line: the grouped validation figures as JSON, for scripts.
    print(json.dumps(dict(head.meta["validation"], sha256=digest)))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate_head
    from models.heads import load_head
    from models.train import scan_folder

    head, samples = load_head(args.head), scan_folder(args.data)
    clf = _load(args)
    result = evaluate_head(clf, head, samples, args.kind, args.target_precision)
    if args.json:
        _print_json(result)
    else:
        cov = result["coverage_at_precision"]
        ece = result["calibration"]["ece"]
        print(f"accuracy {result['accuracy']:.4f} on {result['samples']} images; ECE {ece:.4f}")
        print(f"majority baseline {result['majority_baseline']:.4f}; {result['groups']} image groups")
        own = cov["head_threshold_precision"]
        print(
            f"at the head's threshold {cov['head_threshold']:.4f}: "
            f"coverage {cov['head_threshold_coverage']:.4f}, precision {'-' if own is None else f'{own:.4f}'}"
        )
        print(f"best coverage at precision {cov['target_precision']} on this data: {cov['coverage']:.4f}")
        scope = result["station_scope"]
        print(f"the station would ask the head about {scope['in_scope']} of these images")
        for label, row in result["per_class"].items():
            print(
                f"  {label}: precision {row['precision']:.4f} recall {row['recall']:.4f} ({row['support']})"
            )
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from models.record import write_head_record

    print(write_head_record(args.head, args.out, args.eval, args.evaluated_on))
    return 0


def cmd_crossval(args: argparse.Namespace) -> int:
    from models.evaluate import crossval_groups
    from models.train import scan_folder

    clf = _load(args)
    samples = [s for d in args.data for s in scan_folder(d)]
    result = crossval_groups(
        clf,
        samples,
        args.kind,
        args.folds,
        args.views,
        args.target_precision,
        args.finetune_epochs,
        args.manifest,
    )
    if args.json:
        _print_json(result)
    else:
        print(
            f"groups held out: mean accuracy {result['mean_accuracy']:.4f}, "
            f"mean coverage at precision {args.target_precision}: {result['mean_coverage_at_precision']:.4f}"
        )
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from models.finetune import finetune_backbone
    from models.train import scan_folder

    samples = [s for d in args.data for s in scan_folder(d)]
    print(finetune_backbone(args.manifest, samples, args.kind, args.out, args.version, args.epochs))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from models.quantize import quantize_int8

    print(quantize_int8(args.manifest, args.out, args.version))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from models.demo import build_demo_assets

    for path in build_demo_assets(args.manifest, args.out):
        print(path)
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    from models.gallery import Gallery, load_gallery, save_gallery

    if args.gallery_cmd == "list":
        gallery = load_gallery(args.gallery)
        print(f"{gallery.version}: {len(gallery.entries)} references, model {gallery.backbone}")
        for e in gallery.entries:
            print(f"{e.ref_id}\t{e.label}\t{e.kind}\t{e.added_utc}\t{e.source}")
        return 0
    if args.gallery_cmd == "remove":
        gallery = load_gallery(args.gallery).remove(args.ref_id)
        save_gallery(gallery, args.gallery)
        print(f"removed {args.ref_id}; {len(gallery.entries)} references left")
        return 0
    clf = _load(args)
    gallery = (
        load_gallery(args.gallery)
        if args.gallery.exists()
        else Gallery.empty(clf.manifest.embedding.dim, clf.manifest.version)
    )
    if gallery.backbone != clf.manifest.version:
        raise ValueError(
            f"gallery {args.gallery} was built with model {gallery.backbone}, not {clf.manifest.version}"
        )
    emb = clf.embed([clf.preprocess(args.image.read_bytes(), args.kind)])[0]
    gallery = gallery.add(emb, args.ref_id, args.label, args.source or args.image.name, args.kind)
    save_gallery(gallery, args.gallery)
    print(f"added {args.ref_id}; {len(gallery.entries)} references")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from models.bench import run_bench

    result = run_bench(
        args.manifest,
        args.images,
        args.kind,
        args.runs,
        args.threads,
        args.out,
        args.head,
        args.gallery,
        args.compare,
    )
    json.dump(result["summary"], sys.stdout, indent=1)
    print()
    return 0


def _optional_path(text: str) -> Path | None:
    return None if text.lower() == "none" else Path(text)


def _common(p: argparse.ArgumentParser, threads: int = 2) -> None:
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="model manifest JSON")
    p.add_argument("--threads", type=int, default=threads, help="onnxruntime intra-op threads")


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    bench: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    model = commands.add_parser("model", help="build, train, evaluate and manage the goods classifier")
    sub = model.add_subparsers(dest="model_cmd", metavar="ACTION", required=True)

    p = sub.add_parser("build", help="export EfficientNet-Lite0 to ONNX and write its manifest (needs torch)")
    p.add_argument("--out", type=Path, default=ARTIFACTS)
    p.add_argument("--version", default="effnet-lite0-fp32-2026.11.1")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("train", help="train a head on a folder with one sub-folder per class")
    _common(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="head file to write (.npz)")
    p.add_argument("--kind", choices=KINDS, default="camera")
    p.add_argument("--views", type=int, default=3, help="augmented views per training image")
    p.add_argument(
        "--folds",
        type=int,
        default=5,
        help="grouped folds for validation and calibration (fewer if few groups)",
    )
    p.add_argument(
        "--target-precision",
        type=float,
        default=0.95,
        help="precision the reject threshold is set for, on grouped out-of-fold predictions",
    )
    p.add_argument(
        "--suspect", action="append", default=[], help="label that counts as counterfeit suspicion"
    )
    p.add_argument(
        "--category",
        action="append",
        default=[],
        choices=GOODS_CATEGORIES,
        help="goods category the head is for (repeatable); the station asks it about those images only",
    )
    p.add_argument(
        "--data-description", default="", help="what the training images are, for the head's record"
    )
    p.add_argument("--attribution", default="", help="credit and licence the training data require")
    p.add_argument(
        "--detail-grid",
        type=int,
        default=1,
        choices=(1, 2, 3),
        help="read NxN tiles at N times the resolution (N*N more inferences per photo asked about)",
    )
    p.add_argument("--version", default=None)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a head on a folder with one sub-folder per class")
    _common(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--head", type=Path, required=True)
    p.add_argument("--kind", choices=KINDS, default="camera")
    p.add_argument("--target-precision", type=float, default=0.95)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("record", help="write the JSON record that ships beside a head")
    p.add_argument("--head", type=Path, required=True)
    p.add_argument("--eval", type=Path, default=None, help="`model eval --json` output on held-out data")
    p.add_argument("--evaluated-on", default="", help="what that held-out data is")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_record)

    p = sub.add_parser(
        "crossval", help="hold out whole image groups (near-duplicates, file-name series) and measure"
    )
    _common(p)
    p.add_argument(
        "--data", type=Path, required=True, nargs="+", help="one or more class-folder roots, pooled"
    )
    p.add_argument("--kind", choices=KINDS, default="camera")
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--finetune-epochs", type=int, default=0, help="also fine-tune the backbone in each fold")
    p.add_argument("--views", type=int, default=3)
    p.add_argument("--target-precision", type=float, default=0.99)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_crossval)

    p = sub.add_parser(
        "finetune", help="fine-tune the backbone's last stages on labelled folders (needs torch)"
    )
    _common(p)
    p.add_argument(
        "--data", type=Path, required=True, nargs="+", help="one or more class-folder roots, pooled"
    )
    p.add_argument("--kind", choices=KINDS, default="camera")
    p.add_argument("--epochs", type=int, default=1, help="1 measured best; more over-fits and over-confides")
    p.add_argument("--out", type=Path, required=True, help="folder for the new ONNX file and manifest")
    p.add_argument("--version", required=True, help="version of the new backbone (must be new)")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("quantize", help="static int8 quantisation of a model, with its own manifest")
    _common(p)
    p.add_argument("--out", type=Path, default=ARTIFACTS)
    p.add_argument("--version", default="effnet-lite0-int8-2026.11.1")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("demo", help="build the demo head, gallery and images from generated pictures")
    _common(p)
    p.add_argument("--out", type=Path, default=ARTIFACTS / "demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("gallery", help="manage the counterfeit reference gallery")
    gsub = p.add_subparsers(dest="gallery_cmd", metavar="ACTION", required=True)
    g = gsub.add_parser("add", help="embed an image and add it as a reference")
    _common(g, threads=1)
    g.add_argument("--gallery", type=Path, required=True)
    g.add_argument("--image", type=Path, required=True)
    g.add_argument("--ref-id", required=True)
    g.add_argument("--label", required=True, help="what the reference is, e.g. counterfeit watch brand X")
    g.add_argument("--kind", choices=KINDS, default="camera")
    g.add_argument("--source", default="", help="who confirmed it (review id, rights holder)")
    g.set_defaults(func=cmd_gallery)
    g = gsub.add_parser("list", help="list the references")
    g.add_argument("--gallery", type=Path, required=True)
    g.set_defaults(func=cmd_gallery)
    g = gsub.add_parser("remove", help="remove a reference")
    g.add_argument("--gallery", type=Path, required=True)
    g.add_argument("--ref-id", required=True)
    g.set_defaults(func=cmd_gallery)

    p = bench.add_parser("classifier", help="bare onnxruntime inference vs the full classification")
    _common(p, threads=1)
    p.add_argument(
        "--images", type=Path, default=None, help="folder of images (default: bundled sample photos)"
    )
    p.add_argument("--kind", choices=KINDS, default="camera")
    p.add_argument("--runs", type=int, default=200)
    demo = ARTIFACTS / "demo"
    p.add_argument("--head", type=_optional_path, default=demo / "demo_head.npz", help="head file, or none")
    p.add_argument("--gallery", type=_optional_path, default=demo / "demo_gallery.npz", help="or none")
    p.add_argument("--compare", type=Path, default=None, help="second manifest timed in the same loop")
    p.add_argument("--out", type=Path, default=Path("bench-classifier.json"), help="results file (JSON)")
    p.set_defaults(func=cmd_bench)
