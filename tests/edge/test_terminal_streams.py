"""Live streams under load: held streams cannot crowd out the feed or a confirmation; slow ones drop."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from edge.agent import EdgeAgent
from edge.config import DevicesConfig, EdgeConfig, StationConfig, TerminalConfig, TerminalOperator
from edge.feed import StationFeed
from edge.terminal import TerminalServer

W_BLACK = "RR473124829GB"
LogIn = Callable[..., str]


def sse_events(lines: Iterator[str], want: int) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    kind, data = "", ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and kind:
            out.append((kind, json.loads(data)))
            kind, data = "", ""
            if len(out) >= want:
                break
    return out


def next_of(lines: Iterator[str], kind: str, limit: int = 20) -> dict[str, Any]:
    for _ in range(limit):
        got, data = sse_events(lines, 1)[0]
        if got == kind:
            return data
    raise AssertionError(f"no {kind} event in {limit}")


def make_agent(tmp_path: Path, seed: Callable[..., None], operators: list[TerminalOperator]) -> EdgeAgent:
    replay = tmp_path / "reads.jsonl"
    replay.write_text(json.dumps({"codes": [W_BLACK]}) + "\n", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id="S1", site_id="SITE", line_id="L1", data_dir=tmp_path / "edge"),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0"),
        terminal=TerminalConfig(operators=operators, port=0),
    )
    agent = EdgeAgent(cfg)
    seed(agent.store)
    return agent


def test_sixteen_held_streams_cannot_block_the_feed_or_a_confirmation(
    tmp_path: Path,
    seed_registry: Callable[..., None],
    terminal_operators: list[TerminalOperator],
    log_in: LogIn,
) -> None:
    agent = make_agent(tmp_path, seed_registry, terminal_operators)
    agent.start()
    assert agent.scanner.join(10)
    assert agent.drain(10)
    tid = next(e.tracking_id for e in agent.store.events(10) if e.type == "parcel")
    server = TerminalServer(agent, "127.0.0.1", 0)
    server.start()
    streams = server.app.state.streams
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    with contextlib.ExitStack() as stack:
        stack.callback(agent.stop)
        stack.callback(server.stop)
        hog = stack.enter_context(httpx.Client(base_url=server.url, timeout=10, limits=limits))
        hogs = [
            stack.enter_context(httpx.Client(base_url=server.url, timeout=10, limits=limits))
            for _ in range(3)
        ]
        log_in(hog)
        for other in hogs:
            log_in(other)
        # 16 streams on one login, held open and never read; then 12 more on three other logins.
        held = [stack.enter_context(hog.stream("GET", "/api/stream")) for _ in range(16)]
        assert all(r.status_code == 200 for r in held)
        assert streams.open == 4
        # The displaced ones were told so (and to stop retrying), not left hanging.
        assert ("closed", {"reason": "displaced"}) in sse_events(held[0].iter_lines(), 3)
        for other in hogs:
            held += [stack.enter_context(other.stream("GET", "/api/stream")) for _ in range(4)]
        # From one address at most 8 stay open, whatever the logins.
        assert streams.open == 8

        operator = stack.enter_context(httpx.Client(base_url=server.url, timeout=10))
        log_in(operator)
        with operator.stream("GET", "/api/stream") as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            assert next_of(lines, "snapshot")["station"] == "S1"
            agent.feed.publish({"type": "alert", "kind": "pull", "tracking_id": tid, "waybill": W_BLACK})
            assert next_of(lines, "alert")["waybill"] == W_BLACK
            confirmed = operator.post("/api/confirm", json={"tracking_id": tid, "action": "pulled"})
            assert confirmed.status_code == 201, confirmed.text
            assert next_of(lines, "operator")["event"]["operator"] == "op7"
            assert operator.get("/api/health").status_code == 200


def test_overall_cap_refuses_and_logout_ends_the_stream(
    tmp_path: Path,
    seed_registry: Callable[..., None],
    terminal_operators: list[TerminalOperator],
    log_in: LogIn,
) -> None:
    agent = make_agent(tmp_path, seed_registry, terminal_operators)
    server = TerminalServer(agent, "127.0.0.1", 0)
    server.start()
    streams = server.app.state.streams
    try:
        with (
            httpx.Client(base_url=server.url, timeout=10) as a,
            httpx.Client(base_url=server.url, timeout=10) as b,
        ):
            log_in(a)
            log_in(b)
            streams.limit = 1
            with a.stream("GET", "/api/stream") as held:
                lines = held.iter_lines()
                assert next_of(lines, "snapshot")
                refused = b.get("/api/stream")
                assert refused.status_code == 503 and refused.json()["error"]["code"] == "too_many_streams"
                assert a.post("/api/logout", json={}).status_code == 200
                assert next_of(lines, "closed") == {"reason": "logged_out"}
            assert streams.open == 0
    finally:
        server.stop()
        agent.stop()


def test_a_subscriber_that_falls_behind_is_dropped_and_publish_never_waits() -> None:
    feed = StationFeed(maxsize=5, history=50)
    slow = feed.subscribe()
    fast = feed.subscribe()
    got: list[int] = []
    for n in range(20):
        feed.publish({"type": "parcel", "n": n})
        # The fast screen keeps up; the slow one never reads.
        while not fast.empty():
            got.append(fast.get_nowait()["n"])
    assert got == list(range(20))
    assert slow.dropped.is_set() and not fast.dropped.is_set()
    assert feed.subscribers == 1
    # What the slow one kept is the oldest part; it catches up from history when it comes back.
    assert [slow.get_nowait()["n"] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert [i["n"] for i in feed.recent()] == list(range(20))
