"""Prometheus metrics of the central server at `/metrics`, in a registry of its own per app.

What the database knows (pending orders, open review items, known stations) is read at scrape time
by a collector, so every worker process reports the same network-wide figures. What only a process
sees (the batches and events it stored) is counted in that process: with several workers, scrape
each worker or sum over them.

The endpoint answers only to the scrape token (PARCELGUARD_METRICS_TOKEN, sent as a bearer token):
the figures reveal traffic volumes of every site, and a Prometheus server should not hold an admin's
token to read them. Without a configured token the endpoint is off (403), never open.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from server.db import Database, iso
from server.deps import ServicesDep
from server.errors import Forbidden, NotAuthenticated, Unavailable
from server.schema import orders, reviews, stations
from server.stations import station_states

OPEN_REVIEW_STATES = ("open", "claimed", "inspecting", "detained")
LABELS = ("site", "station")

router = APIRouter(tags=["operations"], include_in_schema=False)


class _DatabaseCollector(Collector):
    """Gauges read from the database on every scrape; a failed read leaves them out rather than lie."""

    def __init__(self, db: Database, offline_after_s: float) -> None:
        self._db = db
        self._offline_after_s = offline_after_s

    def collect(self) -> Iterator[Metric]:
        now = iso(datetime.now(UTC))
        with self._db.read() as conn:
            n_orders = conn.execute(
                select(func.count())
                .select_from(orders)
                .where(orders.c.cancelled_at.is_(None), orders.c.expires_at > now)
            ).scalar_one()
            by_state: dict[str, int] = dict(
                conn.execute(
                    select(reviews.c.state, func.count())
                    .where(reviews.c.state.in_(OPEN_REVIEW_STATES))
                    .group_by(reviews.c.state)
                ).all()
            )
            n_stations = conn.execute(select(func.count()).select_from(stations)).scalar_one()
            states = station_states(conn, datetime.now(UTC), self._offline_after_s)
        yield GaugeMetricFamily(
            "parcelguard_server_orders_pending", "pull orders neither cancelled nor expired", value=n_orders
        )
        items = GaugeMetricFamily(
            "parcelguard_server_review_items_open", "review items not yet decided, by state", labels=["state"]
        )
        for state in OPEN_REVIEW_STATES:
            items.add_metric([state], int(by_state.get(state, 0)))
        yield items
        yield GaugeMetricFamily("parcelguard_server_stations_known", "registered stations", value=n_stations)
        yield GaugeMetricFamily(
            "parcelguard_server_stations_offline",
            "active stations silent for longer than stations.offline_after_s",
            value=sum(1 for s in states if not s["online"]),
        )
        online = GaugeMetricFamily(
            "parcelguard_server_station_online", "1 while the station is heard from", labels=LABELS
        )
        down = GaugeMetricFamily(
            "parcelguard_server_station_devices_down",
            "devices the station last reported down",
            labels=LABELS,
        )
        for s in states:
            online.add_metric([s["site_id"], s["station_id"]], 1 if s["online"] else 0)
            down.add_metric([s["site_id"], s["station_id"]], sum(1 for d in s["devices"] if not d["up"]))
        yield online
        yield down


class ServerMetrics:
    """One app's registry: per-process ingest counters plus the database collector."""

    def __init__(self, db: Database, offline_after_s: float) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.batches = Counter(
            "parcelguard_server_ingest_batches", "sync batches stored by this process", registry=self.registry
        )
        self.events = Counter(
            "parcelguard_server_ingest_events",
            "new events stored by this process, by event type",
            ["type"],
            registry=self.registry,
        )
        self.registry.register(_DatabaseCollector(db, offline_after_s))

    def stored(self, types: Iterable[str]) -> None:
        self.batches.inc()
        for t in types:
            self.events.labels(t).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _check_token(request: Request, svc: ServicesDep) -> None:
    token = svc.settings.metrics_token
    if token is None:
        raise Forbidden("metrics are off: set PARCELGUARD_METRICS_TOKEN to enable /metrics")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise NotAuthenticated("send the metrics token as a bearer token")
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise Forbidden("wrong metrics token")


@router.get("/metrics")
def metrics(request: Request, svc: ServicesDep) -> Response:
    _check_token(request, svc)
    try:
        body = svc.metrics.render()
    except SQLAlchemyError as exc:
        # No partial page: missing gauges would read as zeros on a dashboard.
        raise Unavailable(f"database unreachable: {type(exc.__cause__ or exc).__name__}") from exc
    return Response(body, media_type=CONTENT_TYPE_LATEST)
