"""`parcelguard server ...` and `parcelguard audit verify` on both engines, secrets from the environment."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edge.cli import main
from server.app import create_app
from server.settings import generate_key, load_server_settings


@pytest.fixture
def config(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("PARCELGUARD_SECRET_KEY", "PARCELGUARD_HMAC_KEY", "PARCELGUARD_ENCRYPTION_KEY"):
        monkeypatch.setenv(name, generate_key())
    path = tmp_path / "server.toml"
    path.write_text(f"[server]\ndatabase_url = '{db_url}'\nlog_requests = true\n")
    return path


def test_admin_commands(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config)
    assert main(["server", "migrate", "--config", cfg]) == 0
    monkeypatch.setenv("PARCELGUARD_NEW_PASSWORD", "a long password 123")
    assert main(["server", "user", "add", "ada", "--role", "admin", "--token", "--config", cfg]) == 0
    admin_token = capsys.readouterr().out.strip().splitlines()[-1]
    assert admin_token.startswith("pgu_")
    assert main(["server", "user", "add", "ada", "--role", "admin", "--config", cfg]) == 2  # duplicate
    assert main(["server", "station", "add", "st-1", "--site", "hub", "--line", "l1", "--config", cfg]) == 0
    station_token = capsys.readouterr().out.strip()
    senders = tmp_path / "senders.csv"
    senders.write_text(
        "id_type,id_number,name,verified\nresident_id,11010519491231002X,Li,true\nresident_id,1,X,true\n"
    )
    assert main(["server", "import", "senders", str(senders), "--config", cfg]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["imported"] == 1 and out["rejected"][0]["row"] == 2
    manifests = tmp_path / "manifests.json"
    manifests.write_text(json.dumps([{"waybill": "WB123456", "sender_id_type": "resident_id",
                                      "sender_id_number": "11010519491231002X"}]))  # fmt: skip
    assert main(["server", "import", "manifests", str(manifests), "--config", cfg]) == 0
    assert main(["server", "import", "manifests", str(tmp_path / "missing.json"), "--config", cfg]) == 3
    assert main(["audit", "verify", "--config", cfg]) == 0
    assert "intact" in capsys.readouterr().out
    with TestClient(create_app(load_server_settings(config))) as client:
        me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {admin_token}"})
        assert me.json()["role"] == "admin"
        reply = client.post(
            "/api/v1/sync", json={"station_id": "st-1", "boot_id": "b", "events": []},
            headers={"Authorization": f"Bearer {station_token}"},
        )  # fmt: skip
        assert [m["waybill"] for m in reply.json()["registry"]["manifests"]] == ["WB123456"]
    assert main(["server", "station", "revoke", "st-1", "--config", cfg]) == 0


def test_request_log_has_no_query_or_body(config: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="server.app")
    with TestClient(create_app(load_server_settings(config))) as client:
        client.get("/api/v1/auth/me?secret=11010519491231002X")
    assert "GET /api/v1/auth/me -> 401" in caplog.text and "11010519491231002X" not in caplog.text
