"""The README's installer path, run as written: every command of its marked blocks, in order, in a fresh
folder through the real `parcelguard` command, with the server in a subprocess; the station's token
must then work against the server."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge.sync import SyncLink

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARK = "<!-- installer-path -->"
STATION = "SZX-HUB1-L3-XR1"


def installer_commands(text: str) -> list[str]:
    """The shell commands of every fenced block that follows the marker, continuations joined."""
    commands: list[str] = []
    for block in re.findall(re.escape(MARK) + r"\s*```(?:sh|bash)?\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def install_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder as an installer has it: the project's config/ and a `parcelguard` command on PATH."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "parcelguard"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m edge.cli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    yield tmp_path


def _env(folder: Path) -> dict[str, str]:
    # Nothing of the caller's parcelguard environment leaks in: the README's steps must provide it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARCELGUARD_")}
    env["PATH"] = f"{folder / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env["PARCELGUARD_NEW_PASSWORD"] = "a long admin password for the test"
    return env


def _script(folder: Path, command: str) -> str:
    # One shell per command, but what earlier ones exported (the sourced secrets) carries over.
    dump = folder / ".exported"
    return f'cd "{folder}"\n[ -f "{dump}" ] && . "{dump}"\n{command}\nrc=$?\nexport -p > "{dump}"\nexit $rc\n'


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    for _ in range(300):
        try:
            proc.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
        else:
            pytest.fail(f"server run exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/api/v1/auth/me", timeout=1.0).status_code == 401:
                return
        except httpx.TransportError:
            continue
    pytest.fail(f"server did not answer: {log.read_text()[-2000:]}")


def _run(folder: Path, env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", _script(folder, command)], env=env, capture_output=True, text=True, timeout=120
    )


def test_readme_marks_the_whole_installer_path() -> None:
    text = README.read_text()
    commands = installer_commands(text)
    assert any(c.startswith("parcelguard server run") for c in commands)
    assert any("station add" in c for c in commands)
    assert any(c.startswith("parcelguard config check config/edge.toml") for c in commands)
    # The last step, which runs until stopped, uses what the marked steps made.
    assert 'PARCELGUARD_STATION_TOKEN="$(cat station.token)"' in text
    assert "parcelguard edge run --config config/edge.toml" in text
    assert (ROOT / "config" / "nginx.example.conf").is_file()


def test_installer_path_runs_as_written(install_dir: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(install_dir)
    server: subprocess.Popen[bytes] | None = None
    log = install_dir / "server.log"
    try:
        for command in installer_commands(README.read_text()):
            command = command.replace("--port 8080", f"--port {port}").replace(
                "--host 0.0.0.0", "--host 127.0.0.1"
            )
            if command.startswith("parcelguard server run"):
                assert server is None
                with log.open("wb") as out:
                    server = subprocess.Popen(
                        ["bash", "-c", _script(install_dir, "exec " + command)],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                _wait_ready(server, base, log)
                continue
            done = _run(install_dir, env, command)
            assert done.returncode == 0, f"{command!r} exited {done.returncode}: {done.stderr[-2000:]}"
        assert server is not None, "the installer path never starts the server"

        token = (install_dir / "station.token").read_text().strip()
        assert token.startswith("pgs_")
        me = httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert STATION in me.text
        # The station's own sync code gets through with it: an empty batch is answered.
        link = SyncLink(base, token, timeout_s=10.0)
        try:
            reply = link.post_batch(STATION, "install-test", 0, [])
        finally:
            link.close()
        assert reply.accepted == []

        # Registering the station again by mistake is refused and leaves its token working.
        again = _run(install_dir, env, f"parcelguard server station add {STATION} --site SZX-HUB1 --line L3")
        assert again.returncode == 2
        assert "--rotate" in again.stderr and "Traceback" not in again.stderr
        me = httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        rotated = _run(
            install_dir, env, f"parcelguard server station add {STATION} --site SZX-HUB1 --line L3 --rotate"
        )
        assert rotated.returncode == 0, rotated.stderr
        new = rotated.stdout.strip()
        assert new.startswith("pgs_") and new != token
        old = httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert old.status_code == 401
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
