"""Liveness and readiness for load balancers and service managers: `/healthz` and `/readyz`.

Liveness says only that the process answers. Readiness says the database answers and its schema is at
the migrations' head: a worker started against an old schema, or one whose database went away, is taken
out of the balancer's rotation (503 with the reason) instead of failing requests.
"""

from __future__ import annotations

from functools import cache

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from server.db import alembic_config
from server.deps import ServicesDep

router = APIRouter(tags=["operations"], include_in_schema=False)


@cache
def migrations_head() -> str | None:
    """The newest revision shipped with this server (the same for every database)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def readiness(svc: ServicesDep) -> tuple[bool, str]:
    """(ready, reason): the database is reachable and its schema is the shipped head."""
    head = migrations_head()
    try:
        with svc.db.read() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        # The driver's message may name the host and user, never the password (URLs are not logged).
        return False, f"database unreachable: {type(exc.__cause__ or exc).__name__}"
    if current != head:
        return False, f"database schema is at {current or 'no revision'}, this server needs {head}"
    return True, "ready"


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz")
def readyz(svc: ServicesDep) -> JSONResponse:
    ok, reason = readiness(svc)
    return JSONResponse({"status": "ready" if ok else "not_ready", "reason": reason}, 200 if ok else 503)
