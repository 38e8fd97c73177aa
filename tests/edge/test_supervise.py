"""The supervisor of background loops: restarts a crashed loop, and gives up after its limit."""

from __future__ import annotations

import threading

from edge.health import HealthBoard
from edge.supervise import supervised


def test_a_crashed_loop_is_restarted() -> None:
    runs: list[int] = []

    def loop() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("transient")

    thread = supervised(loop, "t-loop", threading.Event(), backoff_s=0.0)
    thread.join(5)
    assert not thread.is_alive() and len(runs) == 3


def test_supervisor_gives_up_and_the_health_board_shows_it() -> None:
    health = HealthBoard(clock=lambda: 0.0)
    runs: list[int] = []

    def loop() -> None:
        runs.append(1)
        raise RuntimeError("bug")

    thread = supervised(loop, "edge-sync", threading.Event(), max_restarts=2, backoff_s=0.0,
                        on_give_up=health.crashed)  # fmt: skip
    thread.join(5)
    assert len(runs) == 3
    tile = next(d for d in health.snapshot(0)["devices"] if d["name"] == "edge-sync")
    assert not tile["up"] and "repeated crashes: bug" in tile["detail"]


def test_a_stopped_supervisor_does_not_restart() -> None:
    stop = threading.Event()
    runs: list[int] = []

    def loop() -> None:
        runs.append(1)
        stop.set()
        raise RuntimeError("during shutdown")

    supervised(loop, "t-stop", stop, backoff_s=0.0).join(5)
    assert runs == [1]
