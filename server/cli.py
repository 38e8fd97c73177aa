"""`parcelguard server ...` and `parcelguard audit verify|checkpoint`: run, migrate, users, stations,
imports, audit."""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from server.errors import ServerStartError
from server.settings import ServerSettings, load_server_settings

DEFAULT_CONFIG = Path("config/server.toml")


def _settings(args: argparse.Namespace) -> ServerSettings:
    return load_server_settings(Path(args.config))


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A database that cannot be reached becomes one line naming `database_url`, not a traceback."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from server.preflight import database_errors

        settings_url = _settings(args).database_url
        return database_errors(settings_url, lambda: func(args))

    return run


def _run(args: argparse.Namespace) -> int:
    import logging.config

    import uvicorn

    from server.app import create_app
    from server.asgi import CONFIG_ENV, MIGRATED_ENV
    from server.logformat import logging_config
    from server.preflight import bind_port, check_environment

    settings = _settings(args)
    log_config = logging_config(args.log_format)
    logging.config.dictConfig(log_config)
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: must be at least 1")
    if args.workers > 1 and not settings.database_url.startswith("postgresql"):
        # One SQLite file takes one writer at a time: several processes would only queue on its lock.
        raise ValueError(f"--workers {args.workers} needs PostgreSQL; this server's database is SQLite")
    # Port first: it is the cheapest check and the most common clash on a shared machine.
    sock = bind_port(args.host, args.port)
    if args.workers > 1:
        sock.close()  # the workers bind it themselves; it was free a moment ago
        # Connects and migrates once, here, before the workers start; they then skip their own migration.
        check_environment(settings)
        if settings.auto_migrate:
            os.environ[MIGRATED_ENV] = "1"
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
        uvicorn.run(
            "server.asgi:app_from_environment",
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_config=log_config,
        )
        return 0
    try:
        check_environment(settings)
        server = uvicorn.Server(uvicorn.Config(create_app(settings), log_config=log_config))
        print(f"serving on http://{args.host}:{sock.getsockname()[1]}", flush=True)
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise ServerStartError("the server stopped during start; the lines above say why")
    return 0


def _keygen(_args: argparse.Namespace) -> int:
    from server.settings import SECRET_ENV, generate_key

    for env in SECRET_ENV.values():
        print(f"export {env}={generate_key()}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from server.admin import migrate_database

    migrate_database(_settings(args))
    print("database is up to date")
    return 0


def _user_add(args: argparse.Namespace) -> int:
    from server.admin import create_api_token, create_user

    password = os.environ.get("PARCELGUARD_NEW_PASSWORD") or getpass.getpass(
        f"password for {args.username}: "
    )
    settings = _settings(args)
    create_user(settings, args.username, password, args.role, args.sites.split(","))
    print(f"user {args.username} added ({args.role}, sites {args.sites})")
    if args.token:
        print(create_api_token(settings, args.username))
    return 0


def _station_add(args: argparse.Namespace) -> int:
    from server.admin import register_station

    token = register_station(_settings(args), args.station_id, args.site, args.line, rotate=args.rotate)
    print(token)
    return 0


def _station_revoke(args: argparse.Namespace) -> int:
    from server.admin import revoke_station

    n = revoke_station(_settings(args), args.station_id)
    print(f"revoked {n} token(s) of {args.station_id}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from server.admin import import_file

    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    out = import_file(_settings(args), args.kind, path)
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0 if not out["rejected"] else 1


def _links_run(args: argparse.Namespace) -> int:
    from server.db import Database
    from server.links.job import run_links

    db = Database(_settings(args).database_url)
    try:
        print(json.dumps(run_links(db, _settings(args))))
    finally:
        db.dispose()
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from server.admin import check_audit

    report, written = check_audit(_settings(args), [Path(p) for p in args.checkpoint])
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(
        f"{report.entries} audit entries, chain {'intact' if report.ok else 'BROKEN'}"
        f" (checked against {report.checked_against})"
    )
    if written is not None:
        print(f"checkpoint written: {written}")
    return 0 if report.ok else 1


def _audit_checkpoint(args: argparse.Namespace) -> int:
    from server.admin import export_checkpoint
    from server.preflight import check_writable

    out = Path(args.out)
    check_writable(out.parent, "--out")
    cp = export_checkpoint(_settings(args), out)
    print(f"{cp.describe()} written to {args.out}; keep it off this server")
    return 0


def _retention(args: argparse.Namespace) -> int:
    from server.admin import run_retention

    report = run_retention(_settings(args), args.dry_run, args.retention_class or None)
    print(json.dumps(report.as_dict(), ensure_ascii=False) if args.json else report.summary())
    return 1 if report.problems else 0


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="server TOML file (secrets from the environment)"
    )


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    bench: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    server = commands.add_parser("server", help="run and administer the central server")
    sub = server.add_subparsers(dest="server_command", metavar="ACTION", required=True)

    p = sub.add_parser("run", help="serve the API")
    _add_config(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on")
    p.add_argument("--workers", type=int, default=1, help="server processes (more than one needs PostgreSQL)")
    p.add_argument("--log-format", choices=["text", "json"], default="text", help="log line format")
    p.set_defaults(func=_run)

    p = sub.add_parser("keygen", help="print the three secrets as shell export lines, freshly generated")
    p.set_defaults(func=_keygen)

    p = sub.add_parser("migrate", help="bring the database schema up to date")
    _add_config(p)
    p.set_defaults(func=_guarded(_migrate))

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    p = user.add_parser("add", help="add a user (password from PARCELGUARD_NEW_PASSWORD or prompt)")
    _add_config(p)
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=["operator", "officer", "supervisor", "admin"])
    p.add_argument("--sites", default="*", help="comma-separated site ids, * for every site")
    p.add_argument("--token", action="store_true", help="also print a new API bearer token")
    p.set_defaults(func=_guarded(_user_add))

    station = sub.add_parser("station", help="manage stations").add_subparsers(
        dest="station_command", required=True
    )
    p = station.add_parser("add", help="register a station and print its token")
    _add_config(p)
    p.add_argument("station_id")
    p.add_argument("--site", required=True)
    p.add_argument("--line", required=True)
    p.add_argument(
        "--rotate",
        action="store_true",
        help="the station already has a token: issue a new one and revoke the old one",
    )
    p.set_defaults(func=_guarded(_station_add))
    p = station.add_parser("revoke", help="revoke a station's token")
    _add_config(p)
    p.add_argument("station_id")
    p.set_defaults(func=_guarded(_station_revoke))

    p = sub.add_parser("import", help="import sender records or manifests (CSV or JSON)")
    _add_config(p)
    p.add_argument("kind", choices=["senders", "manifests"])
    p.add_argument("file")
    p.set_defaults(func=_guarded(_import))

    p = sub.add_parser(
        "retention",
        help="delete what is past its retention period (per data class, legal holds kept); --dry-run counts",
    )
    _add_config(p)
    p.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument(
        "--class",
        dest="retention_class",
        action="append",
        default=[],
        metavar="CLASS",
        help="only this data class (repeatable): cleared_events, hit_events, station_events, hit_images,"
        " real_name, audit_log",
    )
    p.set_defaults(func=_guarded(_retention))

    p = sub.add_parser(
        "links", help="find split shipments (one review item per new cluster) and update sender risk, now"
    )
    _add_config(p)
    p.set_defaults(func=_guarded(_links_run))

    audit = commands.add_parser("audit", help="check the audit log").add_subparsers(
        dest="audit_command", required=True
    )
    p = audit.add_parser(
        "verify", help="verify the hash chain and its checkpoints, then checkpoint it; exit 1 when broken"
    )
    _add_config(p)
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="FILE",
        help="also hold the chain against this exported checkpoint (repeatable)",
    )
    p.set_defaults(func=_guarded(_audit_verify))
    p = audit.add_parser("checkpoint", help="verify the chain and export a signed checkpoint of its head")
    _add_config(p)
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the checkpoint")
    p.set_defaults(func=_guarded(_audit_checkpoint))

    _register_dataset(commands)
    # Evidence bundles: `parcelguard case ...` (server.case_cli).
    from server.case_cli import register_case

    register_case(commands)

    from server.bench_retention import register_bench_retention

    register_bench_retention(bench)
    try:
        from server.bench import register_bench  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name != "server.bench":
            raise
    else:
        register_bench(bench)
        # The officer's desk at volume; it builds on server.bench's fresh databases.
        from server.desk_bench import register_desk_bench

        register_desk_bench(bench)


# --- `parcelguard model dataset export`: the server's labelled examples as a training folder ----------


def _dataset_export(args: argparse.Namespace) -> int:
    from server.cases.dataset import export_dataset
    from server.db import Database

    db = Database(_settings(args).database_url)
    try:
        with db.read() as conn:
            counts = export_dataset(conn, Path(args.out), args.kind, tuple(args.label), tuple(args.source))
    finally:
        db.dispose()
    print(json.dumps(counts, ensure_ascii=False))
    return 0


def _register_dataset(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Under `model` (the classifier's commands), since its output is what `model train --data` reads."""
    model = commands.choices.get("model") or commands.add_parser("model", help="the goods classifier")
    found = [a for a in model._actions if isinstance(a, argparse._SubParsersAction)]
    sub = found[0] if found else model.add_subparsers(dest="model_command", required=True)
    dataset = sub.add_parser("dataset", help="labelled examples from officers' outcomes")
    p = dataset.add_subparsers(dest="dataset_command", required=True).add_parser(
        "export", help="write the labelled examples as a folder per class, grouped by parcel (groups.csv)"
    )
    _add_config(p)
    p.add_argument("--out", required=True, help="new or empty folder to write")
    p.add_argument("--kind", choices=["camera", "xray", "xray_low"], default="camera", help="image kind")
    p.add_argument("--label", action="append", default=[], help="only this label (repeatable); default all")
    p.add_argument(
        "--source",
        action="append",
        default=[],
        choices=["case", "open_box"],
        help="only this source (repeatable)",
    )
    p.set_defaults(func=_guarded(_dataset_export))
