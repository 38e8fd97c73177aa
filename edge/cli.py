"""The `parcelguard` command: one dispatcher over the command groups of every part of the product."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

# This is the product's one entry point, so it is the one place allowed to reach every package;
# each group lives with the code it drives and exposes `register(commands, bench)`.
COMMAND_GROUPS = (
    "edge.commands",
    "edge.line_bench",
    "scanner_drivers.tools.barcodes_cli",
    "scanner_drivers.tools.devices_cli",
    "models.cli",
    "server.cli",
)

EXIT_USAGE = 2
EXIT_IO = 3
EXIT_INTERRUPTED = 130


def _version() -> str:
    try:
        return version("parcelguard")
    except PackageNotFoundError:
        # Run from a source tree that was never installed.
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parcelguard",
        description="Parcel screening for postal and courier security checkpoints.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--version", action="version", version=f"parcelguard {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench_parser = commands.add_parser("bench", help="run a benchmark and write its results")
    bench = bench_parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for name in COMMAND_GROUPS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(commands, bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Per-request and per-migration chatter drowns what an operator needs to see.
        for noisy in ("httpx", "alembic", "uvicorn.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except ValueError as exc:
        # Config, scenario and input errors: the message already names what is wrong.
        print(f"parcelguard: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"parcelguard: error: {exc}", file=sys.stderr)
        return EXIT_IO
    return code


if __name__ == "__main__":
    sys.exit(main())
