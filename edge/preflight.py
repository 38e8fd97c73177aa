"""Checks of the station's environment before the agent starts, each failure one line naming its key."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edge.config import EdgeConfig
from edge.errors import ConfigError, StoreError


def check_data_dir(folder: Path) -> None:
    """Create `station.data_dir` if needed and write a file into it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise StoreError(f"station.data_dir {folder}: cannot write there ({exc.strerror or exc})") from exc


def check_station_environment(cfg: EdgeConfig) -> None:
    """What `edge run` needs from outside its configuration file: a writable folder and its token."""
    if cfg.server.url and not os.environ.get(cfg.server.token_env):
        raise ConfigError(
            f"server.url is set but the station token is missing: set {cfg.server.token_env} to the token"
            " `parcelguard server station add` printed for this station"
        )
    if cfg.terminal.enabled:
        check_operator_pins(cfg)
    check_data_dir(cfg.station.data_dir)


def check_operator_pins(cfg: EdgeConfig) -> None:
    """Every PIN taken from the environment is there, before the agent starts syncing and reading."""
    from edge.web.sessions import PIN_MIN

    for op in cfg.terminal.operators:
        if op.pin_env is not None and len(os.environ.get(op.pin_env, "")) < PIN_MIN:
            raise ConfigError(
                f"terminal.operators: {op.id}: environment variable {op.pin_env} is unset or holds"
                f" a PIN shorter than {PIN_MIN} characters"
            )
