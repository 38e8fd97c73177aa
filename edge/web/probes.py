"""The terminal's operational routes: `/healthz`, `/readyz` and `/metrics`, answered without a login.

A service manager or a monitoring server asks these; they carry no waybill, sender or image, only
whether the station answers, whether it can take parcels (store writable, model loaded, not stopping)
and its counters. The host check of the terminal still applies to them.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from edge.errors import StoreError
from edge.metrics import StationMetrics
from edge.web.requests import error_body

if TYPE_CHECKING:
    from edge.agent import EdgeAgent

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def readiness(agent: EdgeAgent, stopping: threading.Event) -> list[str]:
    """Why the station cannot take parcels now; empty when it can."""
    problems = []
    if stopping.is_set():
        problems.append("stopping")
    if not agent.store.writable:
        problems.append("local store not writable (writer stopped or disk full)")
    if agent.cfg.classifier.enabled and agent.classifier.live is None:
        problems.append("model not loaded")
    return problems


def install_probes(app: FastAPI, agent: EdgeAgent, stopping: threading.Event) -> StationMetrics:
    metrics = StationMetrics(agent)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        problems = readiness(agent, stopping)
        body = {"status": "not_ready" if problems else "ready", "reason": "; ".join(problems) or "ready"}
        return JSONResponse(body, 503 if problems else 200)

    @app.get("/metrics")
    def metrics_page() -> Response:
        try:
            body = metrics.render()
        except (StoreError, sqlite3.Error) as exc:
            # A scrape that cannot read the store says so; a partial page would read as real zeros.
            return JSONResponse(error_body("store_unreadable", str(exc)), 503)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
