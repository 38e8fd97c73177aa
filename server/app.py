"""Composition root of the central server: `create_app(settings)` builds the FastAPI application."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from sqlalchemy.engine import make_url

from server.api import cases, evidence, holds, models, office, people, reviews, station
from server.audit_checkpoint import CheckpointWorker
from server.authz import authorise, check_routes
from server.body_limits import BodyLimitMiddleware
from server.db import Database, migrate
from server.docs import install_docs
from server.errors_http import install_error_handlers, install_openapi
from server.links.job import LinksWorker
from server.metrics import ServerMetrics
from server.metrics import router as metrics_router
from server.notify import OrderNotifier, PgListenWorker
from server.privacy import Privacy
from server.probes import router as probes_router
from server.retention_worker import RetentionWorker
from server.routing import MethodCheckMiddleware
from server.services import Services
from server.settings import ServerSettings

log = logging.getLogger(__name__)

# Paths whose bodies are images or model files: they get the image limit instead of the JSON one.
LARGE_BODY_PREFIXES = ("/api/v1/images/", "/api/v1/models")


def build_services(settings: ServerSettings) -> Services:
    db = Database(settings.database_url)
    return Services(
        settings=settings,
        db=db,
        privacy=Privacy(settings.hmac_key.get_secret_value(), settings.encryption_key.get_secret_value()),
        notifier=OrderNotifier(),
        metrics=ServerMetrics(db, settings.stations.offline_after_s),
    )


def _limit_for(settings: ServerSettings) -> Callable[[str], int]:
    def limit(path: str) -> int:
        if path.startswith(LARGE_BODY_PREFIXES):
            return max(settings.limits.max_image_bytes, settings.limits.max_body_bytes)
        return settings.limits.max_body_bytes

    return limit


def api_routers() -> list[APIRouter]:
    return [
        station.router,
        office.router,
        reviews.router,
        people.router,
        models.router,
        evidence.router,
        probes_router,
        metrics_router,
        cases.router,
        holds.router,
    ]


def create_app(settings: ServerSettings, extra_routers: list[APIRouter] | None = None) -> FastAPI:
    """Build the app; migrations (when `auto_migrate`) and the LISTEN worker start with the lifespan."""
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            migrate(services.db.url)
        listener: PgListenWorker | None = None
        if services.db.is_postgres:
            conninfo = (
                make_url(services.db.url).set(drivername="postgresql").render_as_string(hide_password=False)
            )
            listener = PgListenWorker(conninfo, services.notifier)
            listener.start()
            app.state.order_listener = listener
        checkpoints: CheckpointWorker | None = None
        if settings.audit.checkpoint_dir is not None:
            checkpoints = CheckpointWorker(
                services.db,
                services.secret,
                settings.audit.checkpoint_dir,
                settings.audit.checkpoint_interval_seconds,
            )
            checkpoints.start()
            app.state.audit_checkpoints = checkpoints
        retention: RetentionWorker | None = None
        if settings.retention.interval_hours > 0:
            retention = RetentionWorker(services.db, settings)
            retention.start()
            app.state.retention = retention
        links: LinksWorker | None = None
        if settings.links.enabled and settings.links.detect_interval_s > 0:
            links = LinksWorker(services.db, settings)
            links.start()
            app.state.links_worker = links
        try:
            yield
        finally:
            if links is not None:
                links.stop()
            if retention is not None:
                retention.stop()
            if checkpoints is not None:
                checkpoints.stop()
            if listener is not None:
                listener.stop()
            services.db.dispose()

    app = FastAPI(
        title="parcelguard central server",
        version="1",
        lifespan=lifespan,
        # The API viewer is served from this server's own files (server.docs): it works offline.
        docs_url=None,
        redoc_url=None,
        # Every route passes the one access table (server.authz) before its handler runs.
        dependencies=[Depends(authorise)],
    )
    app.state.services = services
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=_limit_for(settings),
        json_limit=settings.limits.max_body_bytes,
        json_depth=settings.limits.max_json_depth,
    )
    # Added last, so it runs first: a wrong method is refused before its body is read.
    app.add_middleware(MethodCheckMiddleware, routes_of=lambda: app.routes)
    if settings.log_requests:
        _log_requests(app)
    for router in api_routers():
        app.include_router(router)
    # Server pages (HTML) plug in here; they reuse server.deps.get_principal for the cookie session.
    for router in extra_routers or []:
        app.include_router(router)
    _include_web(app)
    install_docs(app)
    install_openapi(app)
    check_routes(app)
    return app


def _log_requests(app: FastAPI) -> None:
    """One line per request: method, path, status and time; never bodies, queries or headers."""

    @app.middleware("http")
    async def log_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.monotonic()
        response = await call_next(request)
        log.info(
            "%s %s -> %d in %.1f ms",
            request.method,
            request.url.path,
            response.status_code,
            (time.monotonic() - t0) * 1e3,
        )
        return response


def _include_web(app: FastAPI) -> None:
    """Mount the server pages when they are installed: module `server.web.router` exposing `router`."""
    if (
        importlib.util.find_spec("server.web") is None
        or importlib.util.find_spec("server.web.router") is None
    ):
        return
    module = importlib.import_module("server.web.router")
    app.include_router(module.router)
