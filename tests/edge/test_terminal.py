"""Operator terminal in process: page, assets, parcels, confirmations, health and the live stream."""

from __future__ import annotations

import io
import json
import socket
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from edge.agent import EdgeAgent
from edge.config import DevicesConfig, EdgeConfig, StationConfig, TerminalConfig, TerminalOperator
from edge.decide import Reason
from edge.health import HealthBoard
from edge.terminal import TerminalServer, create_terminal_app
from edge.web.alarm import alarm_wav
from edge.web.i18n import LANGUAGES, table

LogIn = Callable[..., str]

W_GOOD, W_BLACK = "EE123456785CN", "RR473124829GB"


def build_agent(
    tmp_path: Path,
    lines: list[str],
    seed: Callable[..., None],
    operators: list[TerminalOperator],
    terminal: dict[str, Any] | None = None,
    **devices: Any,
) -> EdgeAgent:
    replay = tmp_path / "reads.jsonl"
    replay.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id="S1", site_id="SITE", line_id="L1", data_dir=tmp_path / "edge"),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0", **devices),
        terminal=TerminalConfig(
            language="zh", port=0, operators=operators, allowed_hosts=["testserver"], **(terminal or {})
        ),
    )
    agent = EdgeAgent(cfg)
    seed(agent.store)
    return agent


def read(*codes: str) -> str:
    return json.dumps({"codes": list(codes)})


@pytest.fixture
def agent(
    tmp_path: Path, seed_registry: Callable[..., None], terminal_operators: list[TerminalOperator]
) -> Iterator[EdgeAgent]:
    a = build_agent(
        tmp_path,
        [read(W_GOOD), read(W_BLACK), read()],
        seed_registry,
        terminal_operators,
        camera="images:///nowhere",
    )
    a.start()
    assert a.scanner.join(10)
    assert a.drain(10)
    yield a
    a.stop()


@pytest.fixture
def client(agent: EdgeAgent, log_in: LogIn) -> TestClient:
    http = TestClient(create_terminal_app(agent))
    log_in(http)
    return http


def parcel_id(agent: EdgeAgent, waybill: str) -> str:
    return next(e.tracking_id for e in agent.store.events(100) if e.type == "parcel" and e.waybill == waybill)


def assert_error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return str(body["error"]["message"])


def test_page_language_default_switch_and_assets(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'lang="zh-CN"' in page.text and "安检操作终端" in page.text
    en = client.get("/?lang=en")
    assert 'lang="en"' in en.text and "Operator terminal" in en.text
    assert "pg_lang=en" in en.headers["set-cookie"]
    # The cookie keeps the choice; a language we do not have falls back to the configured default.
    assert "Operator terminal" in client.get("/").text
    client.cookies.set("pg_lang", "xx")
    assert "安检操作终端" in client.get("/?lang=fr").text
    for path, kind in [
        ("/static/terminal.js", "javascript"),
        ("/static/terminal.css", "text/css"),
        ("/static/icon.svg", "svg"),
    ]:
        resp = client.get(path)
        assert resp.status_code == 200 and kind in resp.headers["content-type"]
    # Every asset the page names is served by the app itself: no CDN, nothing from the internet.
    assert "http://" not in page.text and "https://" not in page.text
    sound = client.get("/alarm.wav")
    assert sound.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(sound.content)) as w:
        assert w.getnchannels() == 1 and 0.3 < w.getnframes() / w.getframerate() < 1.0


def test_recent_parcels_newest_first_with_alert_flag(client: TestClient, agent: EdgeAgent) -> None:
    body = client.get("/api/parcels").json()
    got = [(p["waybill"], p["decision"], p["alert"]) for p in body["parcels"]]
    assert got == [(None, "HOLD", False), (W_BLACK, "PULL", True), (W_GOOD, "CLEAR", False)]
    pull = body["parcels"][1]
    assert pull["reasons"] == [Reason.SENDER_BLACKLISTED.value] and pull["divert"] == "NOT_SENT"
    assert pull["chute"] == "P1" and pull["actions"] == [] and pull["age_s"] >= 0
    assert len(client.get("/api/parcels?limit=1").json()["parcels"]) == 1
    assert_error(client.get("/api/parcels?limit=0"), 422, "invalid_request")
    assert_error(client.get("/api/parcels?limit=abc"), 422, "invalid_request")


def test_confirm_goes_into_the_record_and_the_outbox(client: TestClient, agent: EdgeAgent) -> None:
    tid = parcel_id(agent, W_BLACK)
    outbox = agent.store.outbox_size()
    resp = client.post("/api/confirm", json={"tracking_id": tid, "action": "pulled"})
    assert resp.status_code == 201
    ev = resp.json()["event"]
    assert ev["type"] == "operator" and ev["waybill"] == W_BLACK and ev["operator"] == "op7"
    resp = client.post(
        "/api/confirm", json={"tracking_id": tid, "action": "open_box", "result": "counterfeit: 12 pairs"}
    )
    assert resp.status_code == 201
    stored = [e for e in agent.store.events(100) if e.type == "operator"]
    assert [(e.action, e.result) for e in stored] == [("pulled", ""), ("open_box", "counterfeit: 12 pairs")]
    # Who did it comes from the login, for every confirmation.
    assert {e.operator for e in stored} == {"op7"}
    assert agent.store.outbox_size() == outbox + 2
    queued = {row.key for row in agent.store.pending_outbox(1000)}
    assert {e.key for e in stored} <= queued
    row = next(p for p in client.get("/api/parcels").json()["parcels"] if p["tracking_id"] == tid)
    assert row["alert"] is False and [a["action"] for a in row["actions"]] == ["pulled", "open_box"]


def test_bad_confirmations_are_refused_and_record_nothing(client: TestClient, agent: EdgeAgent) -> None:
    tid = parcel_id(agent, W_BLACK)
    before = agent.store.outbox_size()
    msg = assert_error(
        client.post("/api/confirm", json={"tracking_id": "S1-b1-999", "action": "pulled"}),
        404,
        "unknown_parcel",
    )
    assert "S1-b1-999" in msg
    assert_error(
        client.post("/api/confirm", content=b"{not json", headers={"content-type": "application/json"}),
        422,
        "invalid_request",
    )
    assert_error(
        client.post("/api/confirm", data={"tracking_id": tid, "action": "pulled"}),
        415,
        "unsupported_media_type",
    )
    msg = assert_error(
        client.post("/api/confirm", json={"tracking_id": tid, "action": "kicked"}), 422, "invalid_request"
    )
    assert msg.startswith("action")
    assert_error(client.post("/api/confirm", json={"action": "pulled"}), 422, "invalid_request")
    assert_error(client.post("/api/confirm", json=[1, 2]), 422, "invalid_request")
    assert_error(
        client.post("/api/confirm", json={"tracking_id": tid, "action": "pulled", "who": "x"}),
        422,
        "invalid_request",
    )
    assert_error(
        client.post("/api/confirm", json={"tracking_id": tid, "action": "open_box", "result": "  "}),
        422,
        "invalid_request",
    )
    assert_error(
        client.post("/api/confirm", json={"tracking_id": tid, "action": "open_box", "result": "x" * 2001}),
        422,
        "invalid_request",
    )
    assert_error(
        client.post("/api/confirm", json={"tracking_id": tid, "action": "pulled", "result": "x" * 20000}),
        413,
        "too_large",
    )
    assert_error(client.get("/api/confirm"), 405, "method_not_allowed")
    assert_error(client.get("/api/nothing-here"), 404, "not_found")
    assert agent.store.outbox_size() == before
    assert not [e for e in agent.store.events(100) if e.type == "operator"]


def test_health_tiles_turn_red_when_a_device_stops_or_goes_quiet(
    client: TestClient, agent: EdgeAgent
) -> None:
    tiles = {d["name"]: d for d in client.get("/api/health").json()["devices"]}
    # The replay ended, so the scanner reported itself down; the configured camera's folder is missing.
    assert tiles["scanner"]["state"] == "down" and tiles["scanner"]["detail"] == "replay finished"
    assert tiles["camera"]["state"] == "down" and "nowhere" in tiles["camera"]["detail"]
    assert tiles["xray"]["state"] == "not_configured" and tiles["sorter"]["state"] == "not_configured"
    assert tiles["model"]["state"] == "up"
    agent.on_status("fake://reads.jsonl", True, "replay started")
    assert client.get("/api/health").json()["devices"][0]["state"] == "up"
    now = [100.0]
    agent.health = HealthBoard(clock=lambda: now[0])
    agent.health.register("camera", quiet_after_s=2.0, up=True)
    tiles = {d["name"]: d for d in client.get("/api/health").json()["devices"]}
    assert tiles["camera"]["state"] == "up"
    now[0] += 3.0
    tiles = {d["name"]: d for d in client.get("/api/health").json()["devices"]}
    assert tiles["camera"]["state"] == "quiet"
    body = client.get("/api/health").json()
    assert body["sync"]["state"] == "not_configured" and body["outbox"] == agent.store.outbox_size()


def test_translations_cover_every_reason_and_both_languages() -> None:
    for reason in Reason:
        assert f"reason_{reason.value}" in table("en")
    for lang in LANGUAGES:
        words = table(lang)
        assert all(words.values())
    with pytest.raises(ValueError, match="unknown language"):
        table("fr")
    with pytest.raises(ValueError):
        alarm_wav(beeps=0)


def sse_events(lines: Iterator[str], want: int) -> list[tuple[str, dict[str, Any], str | None]]:
    out: list[tuple[str, dict[str, Any], str | None]] = []
    kind, data, item_id = "", "", None
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line.startswith("id: "):
            item_id = line[4:]
        elif line == "" and kind:
            out.append((kind, json.loads(data), item_id))
            kind, data, item_id = "", "", None
            if len(out) >= want:
                break
    return out


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_live_stream_push_replay_disconnect_and_limit(
    tmp_path: Path,
    seed_registry: Callable[..., None],
    terminal_operators: list[TerminalOperator],
    log_in: LogIn,
) -> None:
    agent = build_agent(tmp_path, [read(W_GOOD)], seed_registry, terminal_operators)
    server = TerminalServer(agent, "127.0.0.1", 0)
    server.start()
    streams = server.app.state.streams
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            log_in(http)
            with http.stream("GET", "/api/stream") as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                lines = resp.iter_lines()
                first = sse_events(lines, 1)
                assert first[0][0] == "snapshot" and first[0][1]["station"] == "S1"
                agent.feed.publish({"type": "alert", "kind": "pull", "tracking_id": "t1", "waybill": W_BLACK})
                got = [e for e in sse_events(lines, 3) if e[0] == "alert"]
                assert got and got[0][1]["waybill"] == W_BLACK and got[0][2] is not None
                last_id = int(got[0][2] or 0)
                assert streams.open == 1
            # The client went away: the stream ends and its feed subscription is dropped.
            wait_for(lambda: streams.open == 0)
            agent.feed.publish({"type": "operator", "event": {"tracking_id": "t1"}})
            # Reconnecting with Last-Event-ID replays what was missed, in order.
            with http.stream("GET", "/api/stream", headers={"Last-Event-ID": str(last_id)}) as resp:
                kinds = [e[0] for e in sse_events(resp.iter_lines(), 1)]
                assert kinds == ["operator"]
            wait_for(lambda: streams.open == 0)
            streams.limit = 1
            with http.stream("GET", "/api/stream") as resp:
                # Keep the line iterator referenced: dropping it would close this stream.
                held = resp.iter_lines()
                sse_events(held, 1)
                refused = http.get("/api/stream")
                assert_error(refused, 503, "too_many_streams")
                # Stopping the server with a stream still open ends the stream instead of hanging.
                server.stop()
                assert not server._thread or not server._thread.is_alive()
    finally:
        server.stop()
        agent.stop()


def test_port_in_use_is_a_clear_oserror(
    tmp_path: Path, seed_registry: Callable[..., None], terminal_operators: list[TerminalOperator]
) -> None:
    agent = build_agent(tmp_path, [], seed_registry, terminal_operators)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OSError, match=r"cannot listen on 127\.0\.0\.1"):
            TerminalServer(agent, "127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
        agent.stop()


def test_terminal_health_carries_the_cause_and_the_raw_detail(client: TestClient, agent: EdgeAgent) -> None:
    agent.health.report("camera", False, "[Errno 111] Connection refused")
    agent.health.sync_failed('HTTP 401: {"error":{"code":"unauthorized","message":"bad token"}}')
    body = client.get("/api/health").json()
    tiles = {d["name"]: d for d in body["devices"]}
    assert tiles["camera"]["cause"] == "cause_refused"
    assert "Connection refused" in tiles["camera"]["detail"]
    assert tiles["model"]["cause"] is None  # an up tile keeps its own words
    assert body["sync"]["cause"] == "cause_auth"
    # The panel shows the sentence and keeps the raw text as the tooltip.
    script = (Path(__file__).parents[2] / "edge" / "web" / "static" / "terminal.js").read_text(
        encoding="utf-8"
    )
    assert "span.title = raw" in script and "detailOf(d.cause, d.detail" in script
