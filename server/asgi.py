"""The server app as an ASGI factory for process managers: `server.asgi:app_from_environment`.

Several worker processes cannot share an app object; each builds its own from the configuration file
named by PARCELGUARD_SERVER_CONFIG (secrets come from the environment as usual). `parcelguard server
run --workers N` sets that variable; a process manager such as uvicorn or gunicorn may set it itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from server.app import create_app
from server.errors import ServerSettingsError
from server.settings import load_server_settings

CONFIG_ENV = "PARCELGUARD_SERVER_CONFIG"
# Set by the parent process once it has migrated the database, so that N workers do not race to.
MIGRATED_ENV = "PARCELGUARD_SERVER_MIGRATED"


def app_from_environment() -> FastAPI:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise ServerSettingsError(f"{CONFIG_ENV} is not set: it names the server TOML file")
    settings = load_server_settings(Path(path))
    if os.environ.get(MIGRATED_ENV) == "1":
        settings = settings.model_copy(update={"auto_migrate": False})
    return create_app(settings)
