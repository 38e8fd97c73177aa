"""Command group: `parcelguard barcodes decode PATH...` and `parcelguard bench barcodes DIR`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from scanner_drivers.barcodes.reader import BarcodeImageError, BarcodeResult, BarcodeSettings, read_barcodes

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK = 0
EXIT_SOME_FAILED = 2


def register(commands: SubParsers, bench: SubParsers) -> None:
    group = commands.add_parser("barcodes", help="read barcodes in image files")
    actions = group.add_subparsers(dest="barcodes_command", metavar="ACTION", required=True)
    decode = actions.add_parser("decode", help="decode the barcodes in one or more images")
    decode.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files")
    decode.add_argument("--json", action="store_true", help="print one JSON object per image")
    _add_settings_arguments(decode)
    decode.set_defaults(func=decode_command)

    run = bench.add_parser(
        "barcodes", help="compare the project's reader with bare pyzbar and zxing-cpp on sample images"
    )
    run.add_argument("dir", type=Path, metavar="DIR", help="folder of sample sets (N.png with N.txt)")
    run.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (JSON); default bench-results/barcodes-<UTC time>.json",
    )
    run.add_argument("--limit", type=int, default=None, help="use only the first N images")
    run.add_argument(
        "--half",
        choices=("A", "B"),
        default=None,
        help="only one half of the sets: A = sets numbered odd (ean13-1, qrcode-3, ...) or unnumbered, "
        "B = sets numbered even; tune on one half, judge on the other",
    )
    run.add_argument(
        "--select", default=None, metavar="GLOB", help="only the sets whose folder name matches GLOB"
    )
    _add_settings_arguments(run)
    run.set_defaults(func=bench_command)


def _add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--budget-ms", type=float, default=None, help="CPU-time budget per image in ms (default 50)"
    )
    parser.add_argument(
        "--engine",
        action="append",
        choices=("zxing-cpp", "pyzbar"),
        default=None,
        help="engine to use (repeat for several; default both)",
    )


def _settings(args: argparse.Namespace) -> BarcodeSettings:
    values: dict[str, Any] = {}
    if args.budget_ms is not None:
        values["budget_ms"] = args.budget_ms
    if args.engine:
        values["engines"] = tuple(args.engine)
    return BarcodeSettings(**values)


def result_object(path: str, result: BarcodeResult) -> dict[str, Any]:
    """The JSON shape of one decoded image; text is the content as encoded."""
    return {
        "path": path,
        "codes": [
            {
                "text": code.text,
                "symbology": code.symbology,
                "engine": code.engine,
                "position": list(code.position) if code.position else None,
            }
            for code in result.codes
        ],
        "ms": round(result.ms, 3),
        "step": result.step,
    }


def decode_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    settings = _settings(args)
    failed = 0
    for path in args.paths:
        # One bad file must not hide the others: report it and go on.
        try:
            data = path.read_bytes()
            result = read_barcodes(data, settings)
        except (BarcodeImageError, OSError) as exc:
            failed += 1
            if args.json:
                error = {"code": "bad_image", "message": str(exc)}
                print(
                    json.dumps({"path": str(path), "codes": [], "error": error}, ensure_ascii=False), file=out
                )
            else:
                print(f"{path}: error: {exc}", file=out)
            continue
        if args.json:
            # ensure_ascii=False keeps the text as encoded; JSON itself must escape control characters.
            print(json.dumps(result_object(str(path), result), ensure_ascii=False), file=out)
        elif not result.codes:
            print(f"{path}: no code ({result.ms:.1f} ms)", file=out)
        else:
            for code in result.codes:
                print(
                    f"{path}: {code.symbology} [{code.engine}] {code.text!r} ({result.ms:.1f} ms)", file=out
                )
    return EXIT_SOME_FAILED if failed else EXIT_OK


def bench_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from scanner_drivers.tools.barcode_bench import format_table, run_bench, write_results

    out = out or sys.stdout
    results = run_bench(args.dir, _settings(args), limit=args.limit, half=args.half, select=args.select)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = args.out or Path("bench-results") / f"barcodes-{stamp}.json"
    write_results(results, target)
    print(format_table(results), file=out)
    print(f"results written to {target}", file=out)
    return EXIT_OK
