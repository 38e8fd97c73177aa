"""Broken configurations and environments, fed through the real `parcelguard` command: each is refused
with its documented exit code and a short message naming the key, never a traceback."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.agent import EdgeAgent
from edge.cli import main
from edge.config import EdgeConfig
from edge.demo import ServerThread
from edge.sync import StationRefused, SyncLink
from edge.web.i18n import table
from edge.web.views import health_view
from server import admin
from server.app import create_app
from server.settings import ServerSettings

EXIT_CHECK_FAILED, EXIT_CONFIG, EXIT_ENVIRONMENT = 1, 2, 3
SECRETS = ("PARCELGUARD_SECRET_KEY", "PARCELGUARD_HMAC_KEY", "PARCELGUARD_ENCRYPTION_KEY")

EDGE = """
[station]
id = "S1"
site_id = "SITE1"
line_id = "L1"
data_dir = "{data_dir}"

[devices]
scanner = "loop://?suffix=CR"

[server]
url = {server_url}

[terminal]
port = {terminal_port}
require_login = false

{extra}
"""


def edge_toml(
    data_dir: str = "var/edge",
    server_url: str = '"http://127.0.0.1:9"',
    terminal_port: int = 0,
    extra: str = "",
) -> str:
    return EDGE.format(data_dir=data_dir, server_url=server_url, terminal_port=terminal_port, extra=extra)


SERVER_OK = '[server]\ndatabase_url = "sqlite:///server.db"\n'


@dataclass(frozen=True)
class Broken:
    """One broken setup: files to write, the command line, the exit code and what the message names."""

    name: str
    files: dict[str, str]
    argv: list[str]
    code: int
    says: str
    env: dict[str, str | None] | None = None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def cases(taken: int) -> list[Broken]:
    closed = _closed_port()
    check = ["config", "check"]
    return [
        Broken(
            "misspelt table beside [server]",
            {"s.toml": SERVER_OK + "[sever.auth]\ncookie_secure = false\n"},
            [*check, "s.toml"],
            EXIT_CHECK_FAILED,
            "sever: unknown top-level key",
        ),
        Broken(
            "misspelt [server] table alone",
            {"s.toml": '[sever]\ndatabase_url = "sqlite:///x.db"\n'},
            [*check, "s.toml"],
            EXIT_CHECK_FAILED,
            "sever: unknown key",
        ),
        Broken(
            "unknown key in a server sub-table",
            {"s.toml": SERVER_OK + "[server.auth]\ncookie_secur = false\n"},
            [*check, "s.toml"],
            EXIT_CHECK_FAILED,
            "auth.cookie_secur: unknown key",
        ),
        Broken(
            "unknown top-level table in a station config",
            {"e.toml": edge_toml(extra="[sever]\nurl = 'http://x'\n")},
            [*check, "e.toml"],
            EXIT_CHECK_FAILED,
            "sever: unknown key",
        ),
        Broken(
            "waybill pattern that does not compile",
            {"e.toml": edge_toml(extra="[[identify.rules]]\ncarrier = 'sf'\npattern = 'SF[\\d{13}'\n")},
            [*check, "e.toml"],
            EXIT_CHECK_FAILED,
            "identify.rules.0.pattern: not a valid regular expression",
        ),
        Broken(
            "server URL without a scheme",
            {"e.toml": edge_toml(server_url='"parcelguard.example.internal"')},
            [*check, "e.toml"],
            EXIT_CHECK_FAILED,
            "server.url: 'parcelguard.example.internal' must start with http:// or https://",
        ),
        Broken(
            "placeholder secret",
            {"s.toml": SERVER_OK},
            [*check, "s.toml"],
            EXIT_CHECK_FAILED,
            "secret_key (PARCELGUARD_SECRET_KEY): is a placeholder",
            {"PARCELGUARD_SECRET_KEY": "changeme-changeme-changeme-changeme-1234"},
        ),
        Broken(
            "server started without its secrets",
            {"s.toml": SERVER_OK},
            ["server", "run", "--config", "s.toml", "--port", "0"],
            EXIT_CONFIG,
            "hmac_key (PARCELGUARD_HMAC_KEY): is missing",
            {"PARCELGUARD_HMAC_KEY": None},
        ),
        Broken(
            "server started with a placeholder secret",
            {"s.toml": SERVER_OK},
            ["server", "run", "--config", "s.toml", "--port", "0"],
            EXIT_CONFIG,
            "encryption_key (PARCELGUARD_ENCRYPTION_KEY): is a placeholder",
            {"PARCELGUARD_ENCRYPTION_KEY": "placeholder-placeholder-placeholder-42"},
        ),
        Broken(
            "station config file missing",
            {},
            ["edge", "run", "--config", "config/edge.toml"],
            EXIT_CONFIG,
            "config/edge.toml: configuration file not found",
        ),
        Broken(
            "server config file not created",
            {},
            ["server", "station", "add", "S1", "--site", "SITE1", "--line", "L1"],
            EXIT_CONFIG,
            "config/server.toml: no such configuration file (copy config/server.example.toml",
        ),
        Broken(
            "station config that is not TOML",
            {"e.toml": "[station\n"},
            ["edge", "run", "--config", "e.toml"],
            EXIT_CONFIG,
            "e.toml: not valid TOML",
        ),
        Broken(
            "station token not set",
            {"e.toml": edge_toml()},
            ["edge", "run", "--config", "e.toml"],
            EXIT_CONFIG,
            "the station token is missing: set PARCELGUARD_STATION_TOKEN",
            {"PARCELGUARD_STATION_TOKEN": None},
        ),
        Broken(
            "operator PIN variable not set",
            {
                "e.toml": edge_toml(
                    extra="[[terminal.operators]]\nid = 'SZX1024'\npin_env = 'PARCELGUARD_PIN_SZX1024'\n"
                ).replace("require_login = false", "")
            },
            ["edge", "run", "--config", "e.toml"],
            EXIT_CONFIG,
            "terminal.operators: SZX1024: environment variable PARCELGUARD_PIN_SZX1024 is unset",
            {"PARCELGUARD_PIN_SZX1024": None},
        ),
        Broken(
            "PostgreSQL on a closed port",
            {"s.toml": f'[server]\ndatabase_url = "postgresql://pg:pw@127.0.0.1:{closed}/db"\n'},
            ["server", "run", "--config", "s.toml", "--port", "0"],
            EXIT_ENVIRONMENT,
            f"database_url postgresql://pg:***@127.0.0.1:{closed}/db: connection failed",
        ),
        Broken(
            "PostgreSQL on a closed port, registering a station",
            {"s.toml": f'[server]\ndatabase_url = "postgresql://pg@127.0.0.1:{closed}/db"\n'},
            ["server", "station", "add", "S1", "--site", "SITE1", "--line", "L1", "--config", "s.toml"],
            EXIT_ENVIRONMENT,
            f"database_url postgresql://pg@127.0.0.1:{closed}/db: connection failed",
        ),
        Broken(
            "SQLite file where nobody can write",
            {"s.toml": '[server]\ndatabase_url = "sqlite:////proc/parcelguard/server.db"\n'},
            ["server", "migrate", "--config", "s.toml"],
            EXIT_ENVIRONMENT,
            "database_url sqlite:////proc/parcelguard/server.db: unable to open database file",
        ),
        Broken(
            "audit checkpoints in an unwritable folder",
            {"s.toml": SERVER_OK + '[server.audit]\ncheckpoint_dir = "/proc/parcelguard"\n'},
            ["server", "run", "--config", "s.toml", "--port", "0"],
            EXIT_ENVIRONMENT,
            "audit.checkpoint_dir /proc/parcelguard: cannot write there",
        ),
        Broken(
            "server port in use",
            {"s.toml": SERVER_OK},
            ["server", "run", "--config", "s.toml", "--port", str(taken)],
            EXIT_ENVIRONMENT,
            f"--port {taken}: cannot listen there (Address already in use)",
        ),
        Broken(
            "server address that does not resolve",
            {"s.toml": SERVER_OK},
            ["server", "run", "--config", "s.toml", "--host", "no-such-host.invalid"],
            EXIT_ENVIRONMENT,
            "--host no-such-host.invalid --port 8080: cannot listen there",
        ),
        Broken(
            "audit checkpoint exported into an unwritable folder",
            {"s.toml": SERVER_OK},
            ["audit", "checkpoint", "--config", "s.toml", "--out", "/proc/parcelguard/cp.json"],
            EXIT_ENVIRONMENT,
            "--out /proc/parcelguard: cannot write there",
        ),
        Broken(
            "station data_dir not writable",
            {"e.toml": edge_toml(data_dir="/proc/parcelguard")},
            ["edge", "run", "--config", "e.toml"],
            EXIT_ENVIRONMENT,
            "station.data_dir /proc/parcelguard: cannot write there",
        ),
        Broken(
            "terminal port in use",
            {"e.toml": edge_toml(server_url='""', terminal_port=taken).replace('url = ""', "")},
            ["edge", "run", "--config", "e.toml"],
            EXIT_ENVIRONMENT,
            f"operator terminal cannot listen on 127.0.0.1:{taken}",
        ),
        Broken(
            "demo port in use",
            {},
            ["demo", "--port", str(taken), "--exit", "--parcels", "1", "--no-classifier", "--json"],
            EXIT_ENVIRONMENT,
            f"central server cannot listen on 127.0.0.1:{taken} (Address already in use)",
        ),
        Broken(
            "listening to a folder that is not there",
            {},
            ["devices", "listen", "folder:///var/spool/no-such-xray-folder", "--seconds", "1"],
            EXIT_ENVIRONMENT,
            "folder /var/spool/no-such-xray-folder does not exist",
        ),
    ]


def _prepare(case: Broken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The case's working folder, files and environment; every secret good unless the case says not."""
    monkeypatch.chdir(tmp_path)
    for key in SECRETS:
        monkeypatch.setenv(key, secrets.token_urlsafe(32))
    monkeypatch.setenv("PARCELGUARD_STATION_TOKEN", "pgs_" + secrets.token_urlsafe(16))
    for key, value in (case.env or {}).items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)


def _run_case(
    case: Broken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    _prepare(case, tmp_path, monkeypatch)
    code = main(case.argv)
    return code, capsys.readouterr().err


CASE_NAMES = [c.name for c in cases(0)]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_broken_setup_is_one_clear_line(
    name: str,
    taken_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = next(c for c in cases(taken_port) if c.name == name)
    code, err = _run_case(case, tmp_path, monkeypatch, capsys)
    assert "Traceback" not in err
    assert code == case.code, err
    assert case.says in err
    if case.argv[:2] != ["config", "check"]:
        # Outside `config check`, which lists every bad key, the whole refusal is one line.
        refusals = [line for line in err.splitlines() if line.startswith("parcelguard: error:")]
        assert len(refusals) == 1, err
        assert case.says in refusals[0]


def test_there_are_enough_broken_setups() -> None:
    assert len(CASE_NAMES) >= 15
    assert len(set(CASE_NAMES)) == len(CASE_NAMES)


def test_station_registered_twice_is_refused_without_rotate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = Broken("twice", {"s.toml": SERVER_OK}, [], 0, "")
    add = ["server", "station", "add", "S1", "--site", "SITE1", "--line", "L1", "--config", "s.toml"]
    _prepare(case, tmp_path, monkeypatch)
    assert main(["server", "migrate", "--config", "s.toml"]) == 0
    assert main(add) == 0
    first = capsys.readouterr().out.strip()
    assert main(add) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "station S1 is already registered and its token is live; add --rotate" in err
    assert main([*add, "--rotate"]) == 0
    assert capsys.readouterr().out.strip() not in ("", first)


@pytest.fixture
def running_server(tmp_path: Path) -> Iterator[tuple[str, Callable[[], str]]]:
    settings = ServerSettings(
        database_url=f"sqlite:///{tmp_path / 'server.db'}",
        secret_key=secrets.token_urlsafe(32),
        hmac_key=secrets.token_urlsafe(32),
        encryption_key=secrets.token_urlsafe(32),
        audit={"checkpoint_dir": None},
    )
    thread = ServerThread(create_app(settings), "127.0.0.1", 0)
    url = thread.start()
    try:
        yield url, lambda: admin.register_station(settings, "S1", "SITE1", "L1")
    finally:
        thread.stop()


def test_bad_station_token_says_what_to_do(running_server: tuple[str, Callable[[], str]]) -> None:
    url, register = running_server
    register()
    link = SyncLink(url, "pgs_not-the-token-the-server-printed", timeout_s=10.0)
    try:
        with pytest.raises(StationRefused) as caught:
            link.post_batch("S1", "boot", 0, [])
    finally:
        link.close()
    text = str(caught.value)
    assert text.startswith("the server refused the station token: set the token variable (server.token_env)")
    assert "(HTTP 401, not_authenticated)" in text
    assert "{" not in text
    assert caught.value.code == "token_refused"


def test_terminal_health_names_a_refused_token(
    running_server: tuple[str, Callable[[], str]], tmp_path: Path
) -> None:
    url, register = running_server
    register()
    cfg = EdgeConfig.model_validate(
        {
            "station": {"id": "S1", "site_id": "SITE1", "line_id": "L1", "data_dir": str(tmp_path / "edge")},
            "devices": {"scanner": "loop://?suffix=CR"},
            "server": {"url": url, "sync_interval_s": 0.2, "poll_orders": False, "models_interval_s": 0},
            "terminal": {"require_login": False},
        }
    )
    agent = EdgeAgent(cfg, token="pgs_revoked-or-mistyped")
    agent.start()
    try:
        deadline = time.monotonic() + 20
        while not health_view(agent)["sync"]["error_code"]:
            assert time.monotonic() < deadline, "the refusal never reached the health panel"
            time.sleep(0.05)
        sync = health_view(agent)["sync"]
    finally:
        agent.stop()
    assert sync["error_code"] == "token_refused"
    assert "{" not in sync["error"]
    # The terminal has its own words for it, in both of its languages.
    assert "令牌" in table("zh")["sync_token_refused"]
    assert "token" in table("en")["sync_token_refused"]
    assert table("zh")["sync_station_forbidden"] and table("en")["sync_station_forbidden"]
