"""Operator terminal trust boundary: login, lockout, sessions, origin, media type, CSRF, who confirmed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from edge.agent import EdgeAgent
from edge.config import DevicesConfig, EdgeConfig, StationConfig, TerminalConfig, TerminalOperator
from edge.errors import ConfigError
from edge.terminal import create_terminal_app
from edge.web.guard import host_allowed, is_json_media_type, origin_of
from edge.web.sessions import hash_pin

W_GOOD, W_BLACK = "EE123456785CN", "RR473124829GB"
LogIn = Callable[..., str]


class Clock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_agent(tmp_path: Path, seed: Callable[..., None], terminal: TerminalConfig) -> EdgeAgent:
    replay = tmp_path / "reads.jsonl"
    replay.write_text(json.dumps({"codes": [W_BLACK]}) + "\n", encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id="S1", site_id="SITE", line_id="L1", data_dir=tmp_path / "edge"),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0"),
        # TestClient's host name: a name has to be listed, unlike IP addresses and localhost.
        terminal=terminal.model_copy(update={"allowed_hosts": ["testserver", *terminal.allowed_hosts]}),
    )
    agent = EdgeAgent(cfg)
    seed(agent.store)
    return agent


@pytest.fixture
def agent(
    tmp_path: Path, seed_registry: Callable[..., None], terminal_operators: list[TerminalOperator]
) -> Iterator[EdgeAgent]:
    a = make_agent(
        tmp_path,
        seed_registry,
        TerminalConfig(operators=terminal_operators, max_failures=3, lockout_s=60, max_lockout_s=200),
    )
    a.start()
    assert a.scanner.join(10)
    assert a.drain(10)
    yield a
    a.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(agent: EdgeAgent, clock: Clock) -> Any:
    return create_terminal_app(agent, clock=clock)


def pulled(agent: EdgeAgent) -> dict[str, str]:
    tid = next(e.tracking_id for e in agent.store.events(100) if e.type == "parcel")
    return {"tracking_id": tid, "action": "pulled"}


def operator_events(agent: EdgeAgent) -> list[Any]:
    return [e for e in agent.store.events(100) if e.type == "operator"]


def error_code(resp: Any) -> str:
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return str(body["error"]["code"])


def test_no_session_means_login_page_and_401_everywhere(app: Any, agent: EdgeAgent) -> None:
    http = TestClient(app, follow_redirects=False)
    page = http.get("/?lang=en")
    assert page.status_code == 303 and page.headers["location"] == "/login?lang=en"
    for lang, words in (("zh", ["操作员登录", "密码"]), ("en", ["Operator login", "PIN"])):
        login = http.get(f"/login?lang={lang}")
        assert login.status_code == 200 and all(w in login.text for w in words)
        assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    assert http.get("/static/login.js").status_code == 200
    for method, path in (("GET", "/api/parcels"), ("GET", "/api/health"), ("GET", "/api/stream")):
        resp = http.request(method, path)
        assert resp.status_code == 401 and error_code(resp) == "not_logged_in", path
    # A well-formed confirmation without a session is refused and records nothing.
    resp = http.post("/api/confirm", json=pulled(agent))
    assert resp.status_code == 401 and error_code(resp) == "not_logged_in"
    http.cookies.set("pg_terminal", "forged-cookie-value")
    assert http.post("/api/confirm", json=pulled(agent)).status_code == 401
    assert operator_events(agent) == []


def test_login_opens_a_session_that_names_the_operator(app: Any, agent: EdgeAgent, log_in: LogIn) -> None:
    http = TestClient(app)
    log_in(http)
    page = http.get("/?lang=en")
    assert page.status_code == 200 and ">op7<" in page.text and "Li Wei" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    cookie = next(c for c in http.cookies.jar if c.name == "pg_terminal")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "strict"
    assert http.get("/login", follow_redirects=False).status_code == 303
    resp = http.post("/api/confirm", json=pulled(agent))
    assert resp.status_code == 201 and resp.json()["event"]["operator"] == "op7"
    # The page cannot choose who confirmed: an operator field is an unknown key.
    resp = http.post("/api/confirm", json={**pulled(agent), "operator": "someone-else"})
    assert resp.status_code == 422 and error_code(resp) == "invalid_request"
    assert [e.operator for e in operator_events(agent)] == ["op7"]


def test_wrong_pins_lock_out_with_backoff(app: Any, clock: Clock, log_in: LogIn) -> None:
    http = TestClient(app)
    for pin in ("0000", "1234", ""):
        resp = http.post("/api/login", json={"operator": "op7", "pin": pin})
        assert resp.status_code in (401, 422), resp.text
    # The empty PIN did not count (refused as invalid); the third wrong one does, then the lock holds.
    assert http.post("/api/login", json={"operator": "op7", "pin": "9999"}).status_code == 401
    locked = http.post("/api/login", json={"operator": "op7", "pin": "4821"})
    assert locked.status_code == 429 and error_code(locked) == "locked"
    assert 1 <= int(locked.headers["retry-after"]) <= 61
    # Another address is locked out of op7 too: the lock is on the operator id, not just the address.
    other = TestClient(app, client=("10.0.0.8", 40000))
    assert other.post("/api/login", json={"operator": "op7", "pin": "4821"}).status_code == 429
    clock.now += 61
    log_in(http)
    # Three more wrong PINs lock it again, for twice as long (60 s, then 120 s, at most 200 s).
    for _ in range(3):
        assert http.post("/api/login", json={"operator": "op7", "pin": "1111"}).status_code == 401
    clock.now += 61
    assert http.post("/api/login", json={"operator": "op7", "pin": "4821"}).status_code == 429
    clock.now += 60
    log_in(http)


def test_a_right_pin_after_some_wrong_ones_starts_no_lockout(app: Any, log_in: LogIn) -> None:
    http = TestClient(app)
    for _ in range(2):
        assert http.post("/api/login", json={"operator": "op7", "pin": "0000"}).status_code == 401
    # The third try is right: it must not count as the third strike, for the operator or the address.
    log_in(http)
    assert http.post("/api/login", json={"operator": "op7", "pin": "0000"}).status_code == 401
    log_in(http)
    log_in(TestClient(app, client=("10.0.0.8", 40000)))


def test_guessing_many_operator_ids_from_one_address_locks_the_address(app: Any, log_in: LogIn) -> None:
    attacker = TestClient(app, client=("10.0.0.66", 40000))
    for n in range(3):
        assert attacker.post("/api/login", json={"operator": f"op{n}x", "pin": "4821"}).status_code == 401
    assert attacker.post("/api/login", json={"operator": "op7", "pin": "4821"}).status_code == 429
    # The operator at the terminal's own address is not locked out by it.
    log_in(TestClient(app))


def test_sessions_expire_and_logout_ends_them(
    app: Any, agent: EdgeAgent, clock: Clock, log_in: LogIn
) -> None:
    http = TestClient(app)
    token = log_in(http)
    assert http.get("/api/health").status_code == 200
    clock.now += 12 * 3600 + 1
    assert http.get("/api/health").status_code == 401
    log_in(http)
    # Logout is an unsafe request: it needs the CSRF token of this session.
    stale = http.post("/api/logout", json={}, headers={"X-CSRF-Token": token})
    assert stale.status_code == 403 and error_code(stale) == "csrf"
    assert http.post("/api/logout", json={}).status_code == 200
    assert http.get("/api/parcels").status_code == 401
    assert http.post("/api/confirm", json=pulled(agent)).status_code == 401
    assert http.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Origin": "https://testserver"},
        {"Origin": "http://testserver:8080"},
        {"Referer": "http://evil.example/page"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://testserver", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_foreign_origin_is_refused(
    app: Any, agent: EdgeAgent, log_in: LogIn, headers: dict[str, str]
) -> None:
    http = TestClient(app)
    log_in(http)
    resp = http.post("/api/confirm", json=pulled(agent), headers=headers)
    assert resp.status_code == 403 and error_code(resp) == "foreign_origin"
    assert http.post("/api/logout", json={}, headers=headers).status_code == 403
    refused = http.post("/api/login", json={"operator": "op7", "pin": "4821"}, headers=headers)
    assert refused.status_code == 403
    assert operator_events(agent) == []


def test_own_origin_and_configured_origins_pass(
    tmp_path: Path,
    seed_registry: Callable[..., None],
    terminal_operators: list[TerminalOperator],
    log_in: LogIn,
) -> None:
    cfg = TerminalConfig(operators=terminal_operators, allowed_origins=["https://terminal.example:8443"])
    agent = make_agent(tmp_path, seed_registry, cfg)
    agent.start()
    try:
        assert agent.scanner.join(10)
        assert agent.drain(10)
        http = TestClient(create_terminal_app(agent))
        log_in(http)
        for headers in (
            {"Origin": "http://testserver"},
            {"Origin": "HTTP://TESTSERVER:80"},
            {"Referer": "http://testserver/?lang=en"},
            {"Origin": "https://terminal.example:8443", "Sec-Fetch-Site": "same-origin"},
            {},
        ):
            resp = http.post("/api/confirm", json=pulled(agent), headers=headers)
            assert resp.status_code == 201, (headers, resp.text)
    finally:
        agent.stop()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain; charset=application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "application/json-patch+json",
        "application/json; charset=latin-1",
        "application/json; boundary=application/json",
        "application/json, text/plain",
        "",
    ],
)
def test_wrong_content_type_is_refused(app: Any, agent: EdgeAgent, log_in: LogIn, content_type: str) -> None:
    http = TestClient(app)
    log_in(http)
    body = json.dumps(pulled(agent))
    resp = http.post("/api/confirm", content=body, headers={"Content-Type": content_type})
    assert resp.status_code == 415 and error_code(resp) == "unsupported_media_type"
    refused = http.post(
        "/api/login",
        content=json.dumps({"operator": "op7", "pin": "4821"}),
        headers={"Content-Type": content_type},
    )
    assert refused.status_code == 415
    assert operator_events(agent) == []


def test_a_rebound_host_name_is_refused_even_with_a_session(
    app: Any, agent: EdgeAgent, log_in: LogIn
) -> None:
    http = TestClient(app)
    log_in(http)
    # A page on evil.example whose name now points at the station: same origin as far as the browser
    # is concerned, so only the Host header gives it away.
    rebound = {"Host": "evil.example:8700", "Origin": "http://evil.example:8700"}
    for method, path in (("GET", "/"), ("GET", "/login"), ("GET", "/api/parcels"), ("GET", "/api/stream")):
        resp = http.request(method, path, headers=rebound)
        assert resp.status_code == 400 and error_code(resp) == "unknown_host", path
    resp = http.post("/api/confirm", json=pulled(agent), headers=rebound)
    assert resp.status_code == 400 and operator_events(agent) == []
    assert (
        http.post("/api/login", json={"operator": "op7", "pin": "4821"}, headers=rebound).status_code == 400
    )
    for host in ("127.0.0.1:8700", "10.20.3.41", "[::1]:8700", "localhost:8700", "testserver"):
        assert http.get("/api/health", headers={"Host": host}).status_code == 200, host


def test_host_names_the_terminal_answers_to() -> None:
    listed = frozenset({"terminal-l3.example.internal", "kiosk:8443"})
    for host in (
        "192.168.1.20",
        "192.168.1.20:8700",
        "[fe80::1]:80",
        "LOCALHOST",
        "terminal-l3.example.internal:8700",
    ):
        assert host_allowed(host, listed), host
    assert host_allowed("kiosk:8443", listed) and not host_allowed("kiosk:8444", listed)
    for host in ("", "evil.example", "127.0.0.1.evil.example", "[::1", "localhost.evil.example", ":8700"):
        assert not host_allowed(host, listed), host


def test_media_type_and_origin_parsing() -> None:
    assert is_json_media_type(["application/json"])
    assert is_json_media_type(['Application/JSON ; charset="UTF-8"'])
    assert not is_json_media_type([])
    assert not is_json_media_type(["application/json", "application/json"])
    assert not is_json_media_type(["application/json;"])
    assert origin_of("http://Host:80/x") == "http://host"
    assert origin_of("https://[::1]:8443") == "https://[::1]:8443"
    assert origin_of("null") is None and origin_of("file:///etc/passwd") is None
    assert origin_of("http://host:99999") is None


def test_csrf_token_is_required_and_bound_to_the_session(app: Any, agent: EdgeAgent, log_in: LogIn) -> None:
    first = TestClient(app)
    other_token = log_in(first)
    http = TestClient(app)
    log_in(http)
    for token in ("", "guess", other_token):
        resp = http.post("/api/confirm", json=pulled(agent), headers={"X-CSRF-Token": token})
        assert resp.status_code == 403 and error_code(resp) == "csrf"
    del http.headers["X-CSRF-Token"]
    assert http.post("/api/confirm", json=pulled(agent)).status_code == 403
    assert operator_events(agent) == []


def test_bench_terminal_records_the_bench_operator(
    tmp_path: Path, seed_registry: Callable[..., None]
) -> None:
    agent = make_agent(tmp_path, seed_registry, TerminalConfig(require_login=False, bench_operator="bench-3"))
    agent.start()
    try:
        assert agent.scanner.join(10)
        assert agent.drain(10)
        http = TestClient(create_terminal_app(agent))
        assert http.post("/api/confirm", json=pulled(agent)).status_code == 401
        page = http.get("/")
        assert page.status_code == 200 and "bench-3" in page.text
        assert http.get("/login", follow_redirects=False).status_code == 303
        login = http.post("/api/login", json={"operator": "op7", "pin": "4821"})
        assert login.status_code == 409
        settings = json.loads(page.text.split('id="settings" type="application/json">')[1].split("<")[0])
        # Even without a login the page's cookie and CSRF token are needed: no cross-site confirmations.
        assert http.post("/api/confirm", json=pulled(agent)).status_code == 403
        resp = http.post("/api/confirm", json=pulled(agent), headers={"X-CSRF-Token": settings["csrf"]})
        assert resp.status_code == 201 and resp.json()["event"]["operator"] == "bench-3"
    finally:
        agent.stop()


def test_operator_config_refuses_empty_ids_and_missing_pins(
    tmp_path: Path, seed_registry: Callable[..., None]
) -> None:
    for bad in (
        {"id": "", "pin_hash": hash_pin("4821")},
        {"id": " op7", "pin_hash": hash_pin("4821")},
        {"id": "op7"},
        {"id": "op7", "pin_hash": "4821"},
        {"id": "op7", "pin_hash": hash_pin("4821"), "pin_env": "PIN_OP7"},
        {"id": "op7", "pin_env": "lower"},
        {"id": "op7", "pin_env": "PIN", "pin": "4821"},
    ):
        with pytest.raises(ValidationError):
            TerminalOperator.model_validate(bad)
    with pytest.raises(ValidationError, match="listed twice"):
        TerminalConfig(
            operators=[TerminalOperator(id="a", pin_env="P"), TerminalOperator(id="a", pin_env="Q")]
        )
    with pytest.raises(ValidationError):
        TerminalConfig(require_login=False, bench_operator="")
    with pytest.raises(ValueError, match="at least 4"):
        hash_pin("12")
    # Login is on by default, so a terminal without operators refuses to start.
    agent = make_agent(tmp_path, seed_registry, TerminalConfig())
    try:
        with pytest.raises(ConfigError, match="operators is empty"):
            create_terminal_app(agent)
    finally:
        agent.stop()
    (tmp_path / "env").mkdir()
    env_cfg = TerminalConfig(operators=[TerminalOperator(id="op9", pin_env="PIN_OP9")])
    agent = make_agent(tmp_path / "env", seed_registry, env_cfg)
    try:
        # An unset or empty PIN variable stops the terminal: it never turns into an empty PIN.
        with pytest.raises(ConfigError, match="PIN_OP9"):
            create_terminal_app(agent, environ={})
        with pytest.raises(ConfigError, match="PIN_OP9"):
            create_terminal_app(agent, environ={"PIN_OP9": ""})
        http = TestClient(create_terminal_app(agent, environ={"PIN_OP9": "735191"}))
        assert http.post("/api/login", json={"operator": "op9", "pin": "73519"}).status_code == 401
        assert http.post("/api/login", json={"operator": "op9", "pin": "735191"}).status_code == 200
    finally:
        agent.stop()
