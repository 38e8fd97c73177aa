"""Background loops of the station run under a supervisor that restarts a crashed loop, within a limit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def supervised(
    loop: Callable[[], None],
    name: str,
    stop: threading.Event,
    max_restarts: int = 5,
    backoff_s: float = 1.0,
    on_give_up: Callable[[str, BaseException], None] | None = None,
) -> threading.Thread:
    """A daemon thread running `loop` until it returns or `stop` is set.

    A loop that raises is logged and started again after a growing pause; after `max_restarts`
    crashes the supervisor gives up and calls `on_give_up` (the health board shows it), so a bug
    that crashes at once cannot spin the CPU.
    """

    def run() -> None:
        crashes = 0
        while not stop.is_set():
            try:
                loop()
                return
            except Exception as exc:
                crashes += 1
                if crashes > max_restarts:
                    log.critical("%s crashed %d times, giving up: %s", name, crashes, exc)
                    if on_give_up is not None:
                        on_give_up(name, exc)
                    return
                log.exception("%s crashed (%d of %d restarts)", name, crashes, max_restarts)
                stop.wait(backoff_s * 2 ** (crashes - 1))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
