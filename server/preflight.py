"""Checks of the server's environment before it serves: database, folders and port, each failure one line."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from server.db import make_engine, migrate
from server.errors import ServerStartError
from server.settings import ServerSettings

T = TypeVar("T")


def shown_url(url: str) -> str:
    """The database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def _cause(exc: BaseException) -> str:
    # Drivers write several lines (libpq adds hints); the first one says what happened.
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()
    return first[0].strip() if first else type(orig).__name__


def database_errors(url: str, action: Callable[[], T]) -> T:
    """Run `action`; a database that cannot be reached or used becomes one ServerStartError naming the key."""
    try:
        return action()
    except SQLAlchemyError as exc:
        cause = _cause(exc)
        if "no such table" in cause or "UndefinedTable" in type(getattr(exc, "orig", exc)).__name__:
            cause += "; the schema is missing: run `parcelguard server migrate` first"
        raise ServerStartError(f"database_url {shown_url(url)}: {cause}") from exc


def check_database(settings: ServerSettings) -> None:
    """Connect (and migrate when `auto_migrate`) so that a bad database stops the start, not a request."""

    def probe() -> None:
        engine = make_engine(settings.database_url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
        if settings.auto_migrate:
            migrate(settings.database_url)

    database_errors(settings.database_url, probe)


def check_writable(folder: Path, key: str) -> None:
    """Create `folder` if needed and write a file into it; a failure names the configuration key."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ServerStartError(f"{key} {folder}: cannot write there ({exc.strerror or exc})") from exc


def bind_port(host: str, port: int) -> socket.socket:
    """Take the listening socket before anything starts, so a port in use is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        raise ServerStartError(
            f"--host {host} --port {port}: cannot listen there ({getattr(exc, 'strerror', None) or exc});"
            " check --host, or choose another port with --port"
        ) from exc
    return sock


def check_environment(settings: ServerSettings) -> None:
    """Everything `server run` needs besides its port."""
    check_database(settings)
    if settings.audit.checkpoint_dir is not None:
        check_writable(settings.audit.checkpoint_dir, "audit.checkpoint_dir")
