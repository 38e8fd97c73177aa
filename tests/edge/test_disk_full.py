"""A really full disk (a small tmpfs filled to the last block): the disk reserve lets records land."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.store import EdgeStore
from tests.edge.disk_full_child import fill, held_parcel

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB file system of its own; needs root (mount), as the station's own CI runs."""
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_the_reserve_is_given_up_for_the_record_and_taken_back_when_space_returns(small_disk: Path) -> None:
    changes: list[tuple[bool, str]] = []
    store = EdgeStore(small_disk / "station.db", 2 * MIB, lambda ok, detail: changes.append((ok, detail)))
    assert store.reserve.held
    fill(small_disk)
    event, image = held_parcel(store, 1)
    store.append_events([event], [image], upload=[image.sha256])
    assert not store.reserve.held and changes and changes[0][0] is False and "disk full" in changes[0][1]
    assert store.query("SELECT key FROM events") == [(event.key,)]
    # Space is freed: the reserve is written again and the board goes green.
    (small_disk / "filler").unlink()
    assert store.reserve.restore() and store.reserve.held
    assert changes[-1][0] is True
    store.close()


def run_child(folder: Path, reserve_bytes: int) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.edge.disk_full_child", str(folder), str(reserve_bytes)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    said = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return said


@pytest.mark.slow
@pytest.mark.parametrize("reserve_mib", [0, 2])
def test_kill_while_the_disk_is_full_loses_no_record_held_by_the_reserve(
    small_disk: Path, reserve_mib: int
) -> None:
    said = run_child(small_disk, reserve_mib * MIB)
    (small_disk / "filler").unlink()
    store = EdgeStore(small_disk / "station.db")
    stored = [k for (k,) in store.query("SELECT key FROM events")]
    outbox = store.outbox_size()
    store.close()
    if reserve_mib:
        # Written before the kill, so on disk after it: the parcel's record and its outbox row.
        assert said.startswith("written") and stored == [said.split()[1]] and outbox == 1
    else:
        # Without a reserve the same write is refused: the record would live in memory only.
        assert said.startswith("refused") and "full" in said and stored == []
