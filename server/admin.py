"""Administrative operations on the server's database, used by the CLI and in process by the demo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from server.accounts import (
    add_user,
    has_live_station_token,
    issue_user_token,
    revoke_station_tokens,
    upsert_station,
)
from server.audit import AuditReport
from server.audit_checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    current_head,
    take_checkpoint,
    verify_with_checkpoints,
    write_checkpoint_file,
)
from server.db import Database, migrate, utcnow
from server.errors import UserError
from server.privacy import Privacy
from server.registry import import_rows, parse_rows
from server.retention_run import RetentionReport, apply_retention, plan_retention
from server.scope import record, station_site, user_sites
from server.settings import ServerSettings

ADMIN_ACTOR = "admin-cli"


def _db(settings: ServerSettings) -> Database:
    return Database(settings.database_url)


def migrate_database(settings: ServerSettings) -> None:
    migrate(settings.database_url)


def create_user(settings: ServerSettings, username: str, password: str, role: str, sites: list[str]) -> None:
    """Add a user with an argon2-hashed password, a role and the sites it may see (["*"]: all)."""
    db = _db(settings)
    try:
        with db.write() as conn:
            add_user(conn, username, password, role, sites)
            record(
                conn,
                settings.secret_key.get_secret_value(),
                ADMIN_ACTOR,
                "user_add",
                username,
                sites,
                {"role": role, "sites": sites},
            )
    finally:
        db.dispose()


def create_api_token(settings: ServerSettings, username: str) -> str:
    """A new bearer token for an existing user."""
    db = _db(settings)
    try:
        with db.write() as conn:
            token = issue_user_token(conn, settings.secret_key.get_secret_value(), username)
            sites = user_sites(conn, username) or ["*"]
            record(conn, settings.secret_key.get_secret_value(), ADMIN_ACTOR, "token_issue", username, sites)
        return token
    finally:
        db.dispose()


def register_station(
    settings: ServerSettings, station_id: str, site_id: str, line_id: str, rotate: bool = True
) -> str:
    """Create (or move) a station and return its bearer token; earlier tokens of the station stop working.
    With `rotate` false a station that still holds a live token is refused (UserError) and keeps it."""
    db = _db(settings)
    try:
        with db.write() as conn:
            if not rotate and has_live_station_token(conn, station_id):
                # A second `station add` by mistake would silently cut a running station off.
                raise UserError(
                    f"station {station_id} is already registered and its token is live; add --rotate to"
                    " issue a new token (the running station stops syncing until it gets it), or"
                    f" `parcelguard server station revoke {station_id}` first"
                )
            before = station_site(conn, station_id) or site_id
            token = upsert_station(conn, settings.secret_key.get_secret_value(), station_id, site_id, line_id)
            record(
                conn,
                settings.secret_key.get_secret_value(),
                ADMIN_ACTOR,
                "station_register",
                station_id,
                {site_id, before},
                {"site": site_id, "line": line_id},
            )
        return token
    finally:
        db.dispose()


def revoke_station(settings: ServerSettings, station_id: str) -> int:
    db = _db(settings)
    try:
        with db.write() as conn:
            sites = [station_site(conn, station_id) or "*"]
            n = revoke_station_tokens(conn, station_id)
            record(
                conn, settings.secret_key.get_secret_value(), ADMIN_ACTOR, "station_revoke", station_id, sites
            )
        return n
    finally:
        db.dispose()


def import_file(
    settings: ServerSettings, kind: Literal["senders", "manifests"], path: Path
) -> dict[str, Any]:
    """Import a CSV (.csv) or JSON (.json) file of sender records or manifests."""
    ctype = "application/json" if path.suffix.lower() == ".json" else "text/csv"
    rows = parse_rows(path.read_bytes(), ctype)
    db = _db(settings)
    privacy = Privacy(settings.hmac_key.get_secret_value(), settings.encryption_key.get_secret_value())
    try:
        with db.write() as conn:
            out = import_rows(conn, privacy, kind, rows)
            record(
                conn,
                settings.secret_key.get_secret_value(),
                ADMIN_ACTOR,
                f"import_{kind}",
                path.name,
                ["*"],
                {"imported": out["imported"], "rejected": len(out["rejected"])},
            )
        return out
    finally:
        db.dispose()


def check_audit(
    settings: ServerSettings, checkpoints: Sequence[Path] = ()
) -> tuple[AuditReport, Path | None]:
    """Verify the chain, also against the configured checkpoint folder and exported checkpoint
    files; when it holds, checkpoint it into the folder. Returns the report and the file written."""
    db = _db(settings)
    secret = settings.secret_key.get_secret_value()
    folder = settings.audit.checkpoint_dir
    try:
        report = verify_with_checkpoints(db, secret, folder, checkpoints)
        if not report.ok or folder is None:
            return report, None
        try:
            cp = take_checkpoint(db, secret, folder)
        except CheckpointError as exc:  # the chain changed for the worse since the check
            return AuditReport(report.entries, [str(exc)], report.checked_against), None
        return report, checkpoint_path(folder, cp)
    finally:
        db.dispose()


def export_checkpoint(settings: ServerSettings, out: Path) -> Checkpoint:
    """Verify the chain (as `check_audit`) and write a signed checkpoint of its head to `out`, for
    the operator to keep off the server; refused (CheckpointError) when the chain is broken."""
    report, _ = check_audit(settings)
    if not report.ok:
        raise CheckpointError("audit chain is broken, not checkpointed: " + "; ".join(report.problems))
    db = _db(settings)
    secret = settings.secret_key.get_secret_value()
    try:
        with db.read() as conn:
            cp = current_head(conn)
    finally:
        db.dispose()
    write_checkpoint_file(secret, cp, out)
    return cp


def run_retention(
    settings: ServerSettings, dry_run: bool, classes: list[str] | None = None, actor: str = ADMIN_ACTOR
) -> RetentionReport:
    """Apply the retention policy once (or, dry, count what it would delete without changing anything)."""
    db = _db(settings)
    try:
        if dry_run:
            return plan_retention(db, settings, utcnow(), classes)
        return apply_retention(db, settings, actor, classes)
    finally:
        db.dispose()
