"""Deployment files: the systemd units and the compose file name real commands and keep their hardening.

Docker is not run here; the compose file is parsed and its commands checked against the CLI. The units
are checked by `systemd-analyze verify` where it is installed.
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from edge.cli import build_parser
from edge.config import load_edge_config
from server.settings import ServerSettings

DEPLOY = Path(__file__).resolve().parents[1] / "config" / "deploy"
UNITS = ("parcelguard-server.service", "parcelguard-station.service")
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / name, encoding="utf-8")
    return parser


def cli_accepts(argv: list[str]) -> None:
    """The arguments parse with the real CLI (a removed command or option fails here)."""
    args = build_parser().parse_args(argv)
    assert callable(args.func), argv


@pytest.mark.parametrize("name", UNITS)
def test_unit_runs_a_real_command_as_its_own_user_with_hardening(name: str) -> None:
    service = unit(name)["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] and service["User"] != "root"
    assert service["EnvironmentFile"].startswith("/etc/parcelguard/")
    for key, value in HARDENING.items():
        assert service[key] == value, key
    assert service["ReadWritePaths"].startswith("/var/lib/")
    exe, *argv = shlex.split(service["ExecStart"])
    assert exe.endswith("/parcelguard")
    cli_accepts(argv)


@pytest.mark.parametrize("name", UNITS)
def test_systemd_accepts_the_unit(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the units are checked by the parse test only")
    # The unit names the installed path; point it at this environment's command for the check.
    command = shutil.which("parcelguard") or str(Path(sys.executable).with_name("parcelguard"))
    text = (DEPLOY / name).read_text(encoding="utf-8").replace("/opt/parcelguard/bin/parcelguard", command)
    (tmp_path / name).write_text(text, encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_compose_runs_postgres_a_two_worker_server_and_a_fake_station() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"db", "server", "station-token", "station"}
    assert services["db"]["image"].startswith("postgres:")
    server = services["server"]["command"]
    assert server[server.index("--workers") + 1] == "2"
    cli_accepts(server)
    assert services["server"]["build"]["dockerfile"] == "config/deploy/Dockerfile"
    for name in ("station-token", "station"):
        shell = services[name]["command"][0].replace("$$", "$")
        argv = shlex.split(shell.split("exec ", 1)[-1].split(">", 1)[0])
        assert argv[0] == "parcelguard"
        cli_accepts(argv[1:])
    # The files the services mount exist and are valid configurations for the kind they are.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), source
    station = load_edge_config(DEPLOY / "station.compose.toml")
    assert station.devices.scanner is not None and station.devices.scanner.startswith(
        "fake:///etc/parcelguard/station-reads.jsonl"
    )
    assert station.server.url == "http://server:8080"
    section = tomllib.loads((DEPLOY / "server.compose.toml").read_text(encoding="utf-8"))["server"]
    assert section["database_url"].startswith("postgresql://") and "@" in section["database_url"]
    assert ":" not in section["database_url"].split("//", 1)[1].split("@")[0], "no password in the file"
    fields = set(ServerSettings.model_fields)
    assert set(section) <= fields


def test_example_env_files_hold_only_placeholders_the_server_refuses() -> None:
    for name in ("server.env.example", "station.env.example"):
        for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                assert line.split("=", 1)[1] == "change-me", line
