"""Running the server for real: probes, the metrics scrape, and the offline API viewer."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.db import normalise_url
from server.settings import generate_key
from tests.server.conftest import Server, batch, make_settings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_probes_answer_without_credentials(server: Server) -> None:
    c = server.client
    assert c.get("/healthz").json() == {"status": "alive"}
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_readyz_refuses_a_database_behind_the_shipped_migrations(server: Server) -> None:
    engine = sqlalchemy.create_engine(normalise_url(server.settings.database_url))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    r = server.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "not_ready" and "schema is at 0001" in r.json()["reason"]
    assert server.client.get("/healthz").status_code == 200


def test_readyz_and_metrics_refuse_an_unreachable_database(tmp_path: Any) -> None:
    # A path under a missing folder: SQLite cannot open it, so the database is unreachable.
    token = generate_key()
    url = f"sqlite:///{tmp_path / 'gone' / 'server.db'}"
    settings = make_settings(url, auto_migrate=False, metrics_token=token)
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["reason"].startswith("database unreachable")
        scrape = c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scrape.status_code == 503 and scrape.json()["error"]["code"] == "unavailable"


def test_metrics_need_the_scrape_token(server: Server) -> None:
    c = server.client
    off = c.get("/metrics", headers=server.admin)
    assert off.status_code == 403 and "PARCELGUARD_METRICS_TOKEN" in off.json()["error"]["message"]


def test_metrics_change_after_a_sync(db_url: str, parcel: Callable[..., dict[str, Any]]) -> None:
    from server import admin

    token = generate_key()
    settings = make_settings(db_url, metrics_token=token)
    station = admin.register_station(settings, "st-a", "site1", "line1")
    scrape = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": f"Bearer {generate_key()}"}).status_code == 403
        assert c.get("/metrics", headers={"Authorization": f"Bearer {station}"}).status_code == 403
        before = c.get("/metrics", headers=scrape)
        assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
        b = samples(before.text)
        assert b[("parcelguard_server_stations_known", ())] == 1
        # Registered but never heard from: offline until its first sync.
        assert b[("parcelguard_server_stations_offline", ())] == 1
        assert b[("parcelguard_server_station_online", (("site", "site1"), ("station", "st-a")))] == 0
        assert b[("parcelguard_server_ingest_batches_total", ())] == 0
        assert b[("parcelguard_server_review_items_open", (("state", "open"),))] == 0
        events = [parcel("st-a", 1), parcel("st-a", 2, decision="PULL")]
        # The repeated event is stored once and counted once.
        body = batch("st-a", [*events, events[0]])
        assert c.post("/api/v1/sync", json=body, headers={"Authorization": f"Bearer {station}"}).is_success
        a = samples(c.get("/metrics", headers=scrape).text)
        assert a[("parcelguard_server_ingest_batches_total", ())] == 1
        assert a[("parcelguard_server_ingest_events_total", (("type", "parcel"),))] == 2
        assert a[("parcelguard_server_review_items_open", (("state", "open"),))] == 1
        assert a[("parcelguard_server_orders_pending", ())] == 1
        assert a[("parcelguard_server_stations_offline", ())] == 0
        assert a[("parcelguard_server_station_online", (("site", "site1"), ("station", "st-a")))] == 1


def test_metrics_token_comes_from_the_environment_only(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.errors import ServerSettingsError
    from server.settings import load_server_settings

    for name in ("SECRET_KEY", "HMAC_KEY", "ENCRYPTION_KEY"):
        monkeypatch.setenv(f"PARCELGUARD_{name}", generate_key())
    config = tmp_path / "server.toml"
    config.write_text("[server]\nmetrics_token = 'x'\n")
    with pytest.raises(ServerSettingsError, match="PARCELGUARD_METRICS_TOKEN"):
        load_server_settings(config)
    config.write_text("[server]\n")
    monkeypatch.setenv("PARCELGUARD_METRICS_TOKEN", "short")
    with pytest.raises(ServerSettingsError, match="metrics_token"):
        load_server_settings(config)
    token = generate_key()
    monkeypatch.setenv("PARCELGUARD_METRICS_TOKEN", token)
    loaded = load_server_settings(config).metrics_token
    assert loaded is not None and loaded.get_secret_value() == token


def test_docs_work_offline(server: Server) -> None:
    c = server.client
    page = c.get("/docs")
    assert page.status_code == 200
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: *["']([^"']+)["']""", page.text)
    urls = [u for pair in refs for u in pair if u]
    assert urls and not [u for u in urls if re.match(r"^(https?:)?//", u)], urls
    for url in urls:
        r = c.get(url)
        assert r.status_code == 200, url
    js = c.get("/docs/assets/swagger-ui-bundle.js")
    assert js.headers["content-type"].startswith("text/javascript") and len(js.content) > 100_000
    assert c.get("/docs/assets/index.html").status_code == 404
    assert c.get("/docs/assets/..%2f..%2fsettings.py").status_code == 404
