"""Access control on both engines: the role x endpoint matrix, sessions with CSRF, login limits, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from edge.cli import main as cli_main
from server.db import normalise_url

ROLES = ("anonymous", "operator", "officer", "supervisor", "admin", "station")
ANY = frozenset(ROLES) - {"anonymous"}
# Who may use each endpoint; everyone else must get 401 (no credentials) or 403.
MATRIX: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/api/v1/sync"): frozenset({"station"}),
    ("PUT", "/api/v1/images/{sha256}"): frozenset({"station"}),
    ("GET", "/api/v1/orders/poll"): frozenset({"station"}),
    ("POST", "/api/v1/senders/import"): frozenset({"officer", "admin"}),
    ("POST", "/api/v1/manifests/import"): frozenset({"officer", "admin"}),
    ("POST", "/api/v1/watchlist"): frozenset({"officer", "admin"}),
    ("GET", "/api/v1/watchlist"): frozenset({"officer", "admin", "supervisor"}),
    ("PATCH", "/api/v1/watchlist/{entry_id}"): frozenset({"officer", "admin"}),
    ("POST", "/api/v1/orders"): frozenset({"officer", "admin"}),
    ("GET", "/api/v1/orders"): frozenset({"officer", "admin", "supervisor", "operator"}),
    ("GET", "/api/v1/reports/daily"): frozenset({"supervisor", "admin"}),
    ("GET", "/api/v1/reviews"): frozenset({"officer", "supervisor", "admin"}),
    ("GET", "/api/v1/reviews/{item_id}"): frozenset({"officer", "supervisor", "admin"}),
    ("POST", "/api/v1/reviews/{item_id}/claim"): frozenset({"officer"}),
    ("POST", "/api/v1/reviews/{item_id}/unclaim"): frozenset({"officer"}),
    ("POST", "/api/v1/reviews/{item_id}/decision"): frozenset({"officer"}),
    ("GET", "/api/v1/images/{sha256}"): frozenset({"officer", "supervisor", "admin", "station"}),
    ("POST", "/api/v1/auth/logout"): ANY,
    ("GET", "/api/v1/auth/me"): ANY,
    ("GET", "/api/v1/users"): frozenset({"admin"}),
    ("POST", "/api/v1/users"): frozenset({"admin"}),
    ("POST", "/api/v1/users/{username}/tokens"): frozenset({"admin"}),
    ("POST", "/api/v1/users/{username}/deactivate"): frozenset({"admin"}),
    ("GET", "/api/v1/stations"): frozenset({"admin"}),
    ("POST", "/api/v1/stations"): frozenset({"admin"}),
    ("POST", "/api/v1/stations/{station_id}/revoke"): frozenset({"admin"}),
    ("GET", "/api/v1/senders/{token}"): frozenset({"officer", "supervisor", "admin"}),
    ("POST", "/api/v1/senders/{token}/reveal"): frozenset({"officer"}),
    ("GET", "/api/v1/audit"): frozenset({"admin"}),
    ("GET", "/api/v1/audit/verify"): frozenset({"admin"}),
    ("PUT", "/api/v1/models/{name}/{version}"): frozenset({"admin"}),
    ("POST", "/api/v1/models/{name}/{version}/mode"): frozenset({"admin"}),
    ("GET", "/api/v1/models"): frozenset({"station", "admin", "officer"}),
    ("GET", "/api/v1/models/gallery"): frozenset({"station", "admin", "officer"}),
    ("GET", "/api/v1/models/{name}/{version}/blob"): frozenset({"station", "admin", "officer"}),
}
PUBLIC = {("POST", "/api/v1/auth/login")}
PATH_VALUES = {
    "sha256": "0" * 64,
    "token": "0" * 64,
    "entry_id": "nope",
    "item_id": "1",
    "username": "nobody",
    "station_id": "nobody",
    "name": "m",
    "version": "1",
}
QUERY = {"/api/v1/orders/poll": "?timeout=0", "/api/v1/reports/daily": "?date=2026-01-01"}


def test_every_endpoint_is_in_the_matrix(server: Any) -> None:
    paths = server.client.app.openapi()["paths"]
    api = {(m.upper(), p) for p, ops in paths.items() for m in ops if p.startswith("/api/")}
    assert api == set(MATRIX) | PUBLIC


def test_role_matrix(server: Any) -> None:
    headers: dict[str, dict[str, str]] = {"anonymous": {}, "admin": server.admin, "station": server.station_a}
    for role in ("operator", "officer", "supervisor"):
        headers[role] = server.user(f"u-{role}", role, ["*"])
    failures = []
    for (method, path), allowed in sorted(MATRIX.items()):
        url = path.format(**PATH_VALUES) + QUERY.get(path, "")
        for role in ROLES:
            r = server.client.request(method, url, headers=headers[role])
            status = r.status_code
            assert status < 500, (method, path, role, r.text)
            if status >= 400:
                assert list(r.json()) == ["error"], (method, path, role, r.text)
            if role == "anonymous":
                ok = status == 401
            elif role in allowed:
                ok = status not in (401, 403)
            else:
                ok = status == 403
            if not ok:
                failures.append(f"{method} {path} as {role}: {status}")
    assert failures == []


def test_session_cookie_csrf_and_login_limit(server: Any) -> None:
    server.user("sue", "supervisor", ["site1"])
    with TestClient(server.client.app, base_url="https://testserver") as browser:
        bad = browser.post("/api/v1/auth/login", json={"username": "sue", "password": "wrong password"})
        assert bad.status_code == 401 and "pg_session" not in bad.cookies
        ok = browser.post("/api/v1/auth/login", json={"username": "sue", "password": "a long password 123"})
        assert ok.status_code == 200
        csrf = ok.json()["csrf_token"]
        assert "httponly" in ok.headers["set-cookie"].lower() and "secure" in ok.headers["set-cookie"].lower()
        assert browser.get("/api/v1/auth/me").json()["role"] == "supervisor"
        assert browser.get("/api/v1/reports/daily?date=2026-01-01&site=site1").status_code == 200
        assert browser.get("/api/v1/reports/daily?date=2026-01-01&site=site2").status_code == 403
        no_csrf = browser.post("/api/v1/auth/logout")
        assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf"
        assert browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert browser.get("/api/v1/auth/me").status_code == 401
        limit = server.settings.auth.login_max_failures
        codes = [
            browser.post("/api/v1/auth/login", json={"username": "sue", "password": f"guess {i}"}).status_code
            for i in range(limit + 1)
        ]
        assert codes[-1] == 429 and 429 not in codes[: limit - 1]
        right = browser.post(
            "/api/v1/auth/login", json={"username": "sue", "password": "a long password 123"}
        )
        assert right.status_code == 429


def test_revoked_station_token_stops_working(server: Any) -> None:
    c = server.client
    assert c.get("/api/v1/orders/poll?timeout=0", headers=server.station_a).status_code == 200
    moved = {"station_id": "st-a", "site_id": "site1", "line_id": "line9"}
    new = c.post("/api/v1/stations", json=moved, headers=server.admin)
    assert new.status_code == 201
    assert c.get("/api/v1/orders/poll?timeout=0", headers=server.station_a).status_code == 401
    fresh = {"Authorization": f"Bearer {new.json()['token']}"}
    assert c.get("/api/v1/orders/poll?timeout=0", headers=fresh).status_code == 200
    assert c.post("/api/v1/stations/st-a/revoke", headers=server.admin).json()["revoked"] == 1
    assert c.get("/api/v1/orders/poll?timeout=0", headers=fresh).status_code == 401


def test_audit_chain_detects_edits_and_deletions(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    c = server.client
    for i in range(3):
        order = {"scope": "waybill", "waybill": f"WB00000{i}", "reason": "r"}
        assert c.post("/api/v1/orders", json=order, headers=server.admin).status_code == 201
    assert c.get("/api/v1/audit/verify", headers=server.admin).json()["ok"]
    s = server.settings
    monkeypatch.setenv("PARCELGUARD_SECRET_KEY", s.secret_key.get_secret_value())
    monkeypatch.setenv("PARCELGUARD_HMAC_KEY", s.hmac_key.get_secret_value())
    monkeypatch.setenv("PARCELGUARD_ENCRYPTION_KEY", s.encryption_key.get_secret_value())
    config = tmp_path / "server.toml"
    config.write_text(f"[server]\ndatabase_url = '{s.database_url}'\n")
    assert cli_main(["audit", "verify", "--config", str(config)]) == 0
    engine = sqlalchemy.create_engine(normalise_url(s.database_url))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE audit_log SET detail = '{}' WHERE n = 5"))
    problems = c.get("/api/v1/audit/verify", headers=server.admin).json()["problems"]
    assert problems == ["entry 5: content was changed"]
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM audit_log WHERE n = 3"))
    problems = c.get("/api/v1/audit/verify", headers=server.admin).json()["problems"]
    assert "entry 3: missing (next entry is 4)" in problems
    engine.dispose()
    assert cli_main(["audit", "verify", "--config", str(config)]) == 1
    assert "BROKEN" in capsys.readouterr().out
