"""Audit checkpoints outside the database on both engines: a cut tail, with `audit_head` lowered to
match, shows against the checkpoint folder and against an exported checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from edge.cli import main as cli_main
from server import admin
from server.app import create_app
from server.audit_checkpoint import (
    Checkpoint,
    checkpoint_path,
    dump_checkpoint,
    latest_checkpoint,
    read_checkpoint_file,
    verify_with_checkpoints,
)
from server.db import Database, normalise_url
from server.settings import ServerSettings, generate_key

KEY_ENV = ("PARCELGUARD_SECRET_KEY", "PARCELGUARD_HMAC_KEY", "PARCELGUARD_ENCRYPTION_KEY")


@pytest.fixture
def settings(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServerSettings:
    for name in KEY_ENV:
        monkeypatch.setenv(name, generate_key())
    return ServerSettings(database_url=db_url, audit={"checkpoint_dir": tmp_path / "checkpoints"})


@pytest.fixture
def config(settings: ServerSettings, tmp_path: Path) -> str:
    path = tmp_path / "server.toml"
    path.write_text(
        f"[server]\ndatabase_url = '{settings.database_url}'\n"
        f"[server.audit]\ncheckpoint_dir = '{settings.audit.checkpoint_dir}'\n"
    )
    return str(path)


def _add_users(settings: ServerSettings, *names: str) -> None:
    for name in names:  # one audit entry each
        admin.create_user(settings, name, "a long password 123", "officer", ["site1"])


def _sql(settings: ServerSettings, statement: str) -> None:
    engine = sqlalchemy.create_engine(normalise_url(settings.database_url))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(statement))
    engine.dispose()


def _cut_tail(settings: ServerSettings, keep: int) -> None:
    """What someone with write access to the database does: drop the newest entries, lower the head."""
    _sql(settings, f"DELETE FROM audit_scope WHERE n > {keep}")
    _sql(settings, f"DELETE FROM audit_log WHERE n > {keep}")
    _sql(settings, f"UPDATE audit_head SET count = {keep} WHERE id = 1")


def _verify(settings: ServerSettings, use_folder: bool = True) -> list[str]:
    db = Database(settings.database_url)
    try:
        folder = settings.audit.checkpoint_dir if use_folder else None
        return verify_with_checkpoints(db, settings.secret_key.get_secret_value(), folder).problems
    finally:
        db.dispose()


def test_a_cut_tail_shows_against_the_checkpoint(
    settings: ServerSettings, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_users(settings, "a1", "a2", "a3", "a4", "a5", "a6")
    assert cli_main(["audit", "verify", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "intact" in out and "checkpoint written" in out
    folder = settings.audit.checkpoint_dir
    assert folder is not None
    secret = settings.secret_key.get_secret_value()
    latest, problems = latest_checkpoint(secret, folder)
    assert problems == [] and latest is not None and latest.count == 6
    _cut_tail(settings, 4)
    # The chain alone is a valid, shorter chain: only the checkpoint shows the cut.
    assert _verify(settings, use_folder=False) == []
    problems = _verify(settings)
    assert len(problems) == 1 and "chain ends at entry 4" in problems[0] and "tail was cut" in problems[0]
    assert cli_main(["audit", "verify", "--config", config]) == 1
    assert "tail was cut" in capsys.readouterr().err
    # A broken chain is never checkpointed: the latest still says 6.
    assert latest_checkpoint(secret, folder)[0] == latest
    # The server goes on appending from the cut: past the checkpoint the hash at entry 6 differs.
    _add_users(settings, "b1", "b2", "b3")
    problems = _verify(settings)
    assert len(problems) == 1 and "entry 6 differs" in problems[0]
    assert cli_main(["audit", "checkpoint", "--out", str(folder / "x.json"), "--config", config]) == 2
    assert latest_checkpoint(secret, folder)[0] == latest


def test_an_exported_checkpoint_shows_a_cut_after_the_folder_is_wiped(
    settings: ServerSettings, config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_users(settings, "a1", "a2", "a3")
    exported = tmp_path / "operator" / "audit-head.json"
    assert cli_main(["audit", "checkpoint", "--out", str(exported), "--config", config]) == 0
    assert "3 entries" in capsys.readouterr().out
    cp = read_checkpoint_file(settings.secret_key.get_secret_value(), exported)
    assert cp.count == 3
    _cut_tail(settings, 1)
    folder = settings.audit.checkpoint_dir
    assert folder is not None
    for path in folder.iterdir():  # whoever cut the tail also reached the folder
        path.unlink()
    assert cli_main(["audit", "verify", "--config", config]) == 0  # nothing left to hold it against
    assert cli_main(["audit", "verify", "--checkpoint", str(exported), "--config", config]) == 1
    assert "chain ends at entry 1" in capsys.readouterr().err
    # Exported under another server's key: refused, not trusted.
    other = tmp_path / "other.json"
    other.write_text(dump_checkpoint(generate_key(), Checkpoint(1, cp.head_hash, cp.at)))
    assert cli_main(["audit", "verify", "--checkpoint", str(other), "--config", config]) == 2
    assert "signature does not match" in capsys.readouterr().err


def test_forged_and_damaged_checkpoints_are_reported(settings: ServerSettings) -> None:
    _add_users(settings, "a1", "a2")
    folder = settings.audit.checkpoint_dir
    assert folder is not None
    secret = settings.secret_key.get_secret_value()
    folder.mkdir()
    real = Checkpoint(2, "0" * 64, "2026-12-01T00:00:00+00:00")
    # Signed with another key: a forger without the secret cannot lower or raise the anchor.
    checkpoint_path(folder, Checkpoint(9, "0" * 64, real.at)).write_text(
        dump_checkpoint(generate_key(), Checkpoint(9, "0" * 64, real.at))
    )
    # Edited after signing.
    edited = json.loads(dump_checkpoint(secret, real))
    edited["count"] = 1
    checkpoint_path(folder, Checkpoint(1, "", "")).write_text(json.dumps(edited))
    checkpoint_path(folder, Checkpoint(3, "", "")).write_bytes(b"\xff\xfe not json")
    checkpoint_path(folder, Checkpoint(4, "", "")).write_text('{"count": "x"}')
    problems = _verify(settings)
    assert sum("signature does not match" in p for p in problems) == 2
    assert sum("not an audit checkpoint" in p for p in problems) == 2
    assert len(problems) == 4
    # Signed by this server, but the hash at entry 2 is not the chain's: reported as a rewrite.
    checkpoint_path(folder, real).write_text(dump_checkpoint(secret, real))
    assert any("entry 2 differs" in p for p in _verify(settings))


def test_the_running_server_checkpoints_at_start_every_round_and_at_stop(settings: ServerSettings) -> None:
    folder = settings.audit.checkpoint_dir
    assert folder is not None
    secret = settings.secret_key.get_secret_value()
    _add_users(settings, "a1")
    app = create_app(settings)
    with TestClient(app):
        assert latest_checkpoint(secret, folder)[0].count == 1  # type: ignore[union-attr]
        _add_users(settings, "a2", "a3")
        worker = app.state.audit_checkpoints
        assert worker.run_once().count == 3  # one round of the thread, without waiting for it
        _add_users(settings, "a4")
    assert latest_checkpoint(secret, folder)[0].count == 4  # type: ignore[union-attr]
    assert sorted(p.name for p in folder.iterdir()) == [f"audit-checkpoint-{n:012d}.json" for n in (1, 3, 4)]
    # After a cut the worker refuses to anchor the shorter chain, and says so.
    _cut_tail(settings, 2)
    app = create_app(settings)
    with TestClient(app):
        assert app.state.audit_checkpoints.run_once() is None
    assert latest_checkpoint(secret, folder)[0].count == 4  # type: ignore[union-attr]


def test_the_api_check_reports_a_cut_tail(settings: ServerSettings) -> None:
    _add_users(settings, "b1", "b2", "b3")
    admin.create_user(settings, "root", "a long password 123", "admin", ["*"])
    token = admin.create_api_token(settings, "root")
    app = create_app(settings)
    with TestClient(app) as client:
        auth = {"authorization": f"Bearer {token}"}
        assert client.get("/api/v1/audit/verify", headers=auth).json()["ok"] is True
        app.state.audit_checkpoints.run_once()
        _cut_tail(settings, 2)
        body = client.get("/api/v1/audit/verify", headers=auth).json()
    assert body["ok"] is False and body["problems"]
