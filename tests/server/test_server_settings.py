"""Server settings: secrets from the environment, placeholders refused, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.errors import ServerSettingsError
from server.settings import ServerSettings, generate_key, load_server_settings

KEYS = {
    "PARCELGUARD_SECRET_KEY": generate_key(),
    "PARCELGUARD_HMAC_KEY": generate_key(),
    "PARCELGUARD_ENCRYPTION_KEY": generate_key(),
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)


def test_example_config_loads(env: None, repo_root: Path) -> None:
    s = load_server_settings(repo_root / "config" / "server.example.toml")
    assert (
        s.database_url.startswith("sqlite")
        and s.secret_key.get_secret_value() == KEYS["PARCELGUARD_SECRET_KEY"]
    )
    assert "PARCELGUARD" not in repr(s) and KEYS["PARCELGUARD_HMAC_KEY"] not in repr(s)


def test_explicit_keys_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in KEYS:
        monkeypatch.delenv(k, raising=False)
    s = ServerSettings(secret_key=generate_key(), hmac_key=generate_key(), encryption_key=generate_key())
    assert s.auto_migrate
    with pytest.raises(ValidationError, match="is missing"):
        ServerSettings()


@pytest.mark.parametrize("bad", ["changethis", "changethis" * 5, "a" * 40, "short-but-random-1234"])
def test_placeholder_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="secret_key"):
        ServerSettings(secret_key=bad, hmac_key=generate_key(), encryption_key=generate_key())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\ndatabase_url = 'mysql://x'\n", "database_url"),
        ("[server]\nunknown = 1\n", "unknown"),
        ("[server.limits]\nmax_batch_events = 'many'\n", "limits.max_batch_events"),
        ("[server]\nsecret_key = 'x'\n", "PARCELGUARD_SECRET_KEY"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_key(env: None, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "server.toml"
    path.write_text(text)
    with pytest.raises(ServerSettingsError, match=message):
        load_server_settings(path)


def test_missing_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ServerSettingsError, match="no such configuration file"):
        load_server_settings(tmp_path / "nope.toml")
    monkeypatch.delenv("PARCELGUARD_HMAC_KEY", raising=False)
    monkeypatch.setenv("PARCELGUARD_SECRET_KEY", generate_key())
    monkeypatch.setenv("PARCELGUARD_ENCRYPTION_KEY", generate_key())
    path = tmp_path / "s.toml"
    path.write_text("[server]\n")
    with pytest.raises(ServerSettingsError, match=r"hmac_key \(PARCELGUARD_HMAC_KEY\): is missing"):
        load_server_settings(path)


def test_cli_refuses_to_start_without_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.cli import main

    for k in KEYS:
        monkeypatch.delenv(k, raising=False)
    path = tmp_path / "s.toml"
    path.write_text(f"[server]\ndatabase_url = 'sqlite:///{tmp_path}/x.db'\n")
    assert main(["server", "migrate", "--config", str(path)]) == 2
    assert not (tmp_path / "x.db").exists()
