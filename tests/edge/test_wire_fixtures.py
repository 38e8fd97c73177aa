"""Recorded wire messages: each parses under contract v1, round-trips, and the server still accepts them."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from edge.wire import ErrorReply, OrdersPollReply, SyncReply, SyncRequest
from server import admin
from server.app import create_app
from server.settings import ServerSettings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wire"
MODELS: dict[str, type[BaseModel]] = {
    "sync_request.json": SyncRequest,
    "sync_reply.json": SyncReply,
    "orders_poll_reply.json": OrdersPollReply,
    "error_reply.json": ErrorReply,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fixture_parses_and_round_trips(name: str) -> None:
    raw = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    model = MODELS[name].model_validate(raw)
    again = MODELS[name].model_validate_json(model.model_dump_json())
    assert again == model


def test_every_event_type_is_recorded() -> None:
    req = SyncRequest.model_validate_json((FIXTURES / "sync_request.json").read_text(encoding="utf-8"))
    assert {e.type for e in req.events} == {"parcel", "order_status", "operator", "device_status"}
    assert [e.seq for e in req.events] == sorted(e.seq for e in req.events)


def test_every_fixture_has_a_model() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(MODELS)


def test_server_accepts_the_recorded_batch_once(tmp_path: Path) -> None:
    settings = ServerSettings(
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        secret_key=secrets.token_urlsafe(32),
        hmac_key=secrets.token_urlsafe(32),
        encryption_key=secrets.token_urlsafe(32),
    )
    with TestClient(create_app(settings)) as client:
        token = admin.register_station(settings, "S1", "SITE1", "L1")
        body = (FIXTURES / "sync_request.json").read_bytes()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        first = SyncReply.model_validate_json(
            client.post("/api/v1/sync", content=body, headers=headers).content
        )
        assert len(first.accepted) == len(json.loads(body)["events"])
        again = SyncReply.model_validate_json(
            client.post("/api/v1/sync", content=body, headers=headers).content
        )
        assert again.accepted == [] and sorted(again.duplicates) == sorted(first.accepted)
        bad = client.post("/api/v1/sync", content=b'{"version": 1}', headers=headers)
        assert bad.status_code == 422
        assert set(ErrorReply.model_validate_json(bad.content).error.model_dump()) == {"code", "message"}
