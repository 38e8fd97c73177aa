"""Command group of the station: `edge run`, `edge hash-pin`, `config check`, `line simulate` and `demo`."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, TypeAlias

from edge.config import EdgeConfig, LineConfig, load_config, parse_config, read_toml
from edge.errors import ConfigError

log = logging.getLogger(__name__)

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def cmd_edge_run(args: argparse.Namespace) -> int:
    from edge.agent import EdgeAgent
    from edge.preflight import check_station_environment

    if args.log_format == "json":
        # One log shape for the whole product (this module is a composition root).
        from server.logformat import use_json_logs

        use_json_logs()
    cfg = load_config(EdgeConfig, Path(args.config))
    check_station_environment(cfg)
    agent = EdgeAgent(cfg)
    agent.start()
    log.info("station %s running: %s", cfg.station.id, agent.classifier.describe)
    terminal = None
    try:
        if cfg.terminal.enabled:
            # Inside the try: a terminal that refuses to start (no operators, unset PIN) stops the agent too.
            from edge.terminal import TerminalServer

            terminal = TerminalServer(
                agent, cfg.terminal.host, cfg.terminal.port, cfg.terminal.confirm_within_s
            )
            terminal.start()
            log.info("operator terminal at %s", terminal.url)
        _wait_for_signal()
    finally:
        if terminal is not None:
            terminal.stop()
        agent.stop()
    return 0


def detect_kind(data: dict[str, Any]) -> str:
    if "station" in data:
        return "edge"
    if "line_id" in data:
        return "line"
    return "server"


def check_config(path: Path, kind: str | None = None) -> str:
    """Validate one file of any kind; returns a one-line summary or raises ConfigError naming every key."""
    data = read_toml(path)
    kind = kind or detect_kind(data)
    if kind == "edge":
        cfg = parse_config(EdgeConfig, data, str(path))
        return f"{path}: valid edge configuration for station {cfg.station.id}"
    if kind == "line":
        line = parse_config(LineConfig, data, str(path))
        return f"{path}: valid line configuration for line {line.line_id}"
    settings = importlib.import_module("server.settings")
    try:
        settings.load_server_settings(path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return f"{path}: valid server configuration"


def cmd_config_check(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.files:
        try:
            print(check_config(Path(name), args.kind))
        except ConfigError as exc:
            failed += 1
            print(str(exc), file=sys.stderr)
    return 1 if failed else 0


def cmd_hash_pin(args: argparse.Namespace) -> int:
    """Reads a PIN (twice on a terminal, once from a pipe) and prints its argon2 hash for `pin_hash`."""
    import getpass

    from edge.web.sessions import hash_pin

    if sys.stdin.isatty():
        pin = getpass.getpass("PIN: ")
        if getpass.getpass("PIN again: ") != pin:
            raise ConfigError("the two PINs differ")
    else:
        pin = sys.stdin.readline().rstrip("\r\n")
    print(hash_pin(pin))
    return 0


def cmd_line_simulate(args: argparse.Namespace) -> int:
    from scanner_drivers.sorter.sim import SimulatedSorter

    line = load_config(LineConfig, Path(args.config))
    counter = {"n": 0}

    def miss(_tracking_id: str) -> bool:
        counter["n"] += 1
        return bool(line.miss_every) and counter["n"] % line.miss_every == 0

    sim = SimulatedSorter(protocol=line.protocol, miss=miss)
    url = sim.start()
    print(f"simulated sorter for line {line.line_id} listening at {url}", flush=True)
    try:
        _wait_for_signal()
    finally:
        sim.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import DemoOptions, run_demo

    opts = DemoOptions(
        parcels=args.parcels,
        exit_after=args.exit,
        port=args.port,
        workdir=Path(args.workdir) if args.workdir else None,
        classifier=not args.no_classifier,
        quiet=args.json,
    )
    summary = run_demo(opts)
    if args.json:
        print(json.dumps(summary, sort_keys=False))
    return 0 if summary.get("consistent", False) else 1


def register(commands: SubParsers, bench: SubParsers) -> None:
    edge = commands.add_parser("edge", help="run a checkpoint station")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True, metavar="ACTION")
    run = edge_sub.add_parser("run", help="run the station agent from a config file")
    run.add_argument("--config", required=True, help="edge TOML file (see config/edge.example.toml)")
    run.add_argument("--log-format", choices=["text", "json"], default="text", help="log line format")
    run.set_defaults(func=cmd_edge_run)
    pin = edge_sub.add_parser("hash-pin", help="print the argon2 hash of an operator PIN (read from stdin)")
    pin.set_defaults(func=cmd_hash_pin)

    config = commands.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate config files; every error names its key")
    check.add_argument("files", nargs="+", help="TOML files")
    check.add_argument("--kind", choices=["edge", "server", "line"], help="default: detected")
    check.set_defaults(func=cmd_config_check)

    line = commands.add_parser("line", help="sorting-line tools")
    line_sub = line.add_subparsers(dest="line_command", required=True, metavar="ACTION")
    sim = line_sub.add_parser("simulate", help="run a simulated sorter controller for dry runs")
    sim.add_argument("--config", required=True, help="line TOML file (see config/line.example.toml)")
    sim.set_defaults(func=cmd_line_simulate)

    demo = commands.add_parser("demo", help="server + simulated stations + a scenario of parcels")
    demo.add_argument("--parcels", type=int, default=300, help="parcels at the first station")
    demo.add_argument("--exit", action="store_true", help="exit when done instead of serving pages")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON line, last")
    demo.add_argument("--port", type=int, default=8600, help="server port (0: any free port)")
    demo.add_argument("--workdir", help="keep the demo's databases here (default: a temporary folder)")
    demo.add_argument("--no-classifier", action="store_true", help="run with the classifier switched off")
    demo.set_defaults(func=cmd_demo)
