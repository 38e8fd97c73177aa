"""Prometheus metrics of one station, read from its store and health board at scrape time.

Counts come from the station's own database (what it recorded is what it reports, across restarts);
only the model latency is observed as it happens, by the classifier stage. Each station gets its own
registry, so several stations in one process (tests, benches) never collide on a metric name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from edge.agent import EdgeAgent

HELD_REASONS = ("LATE", "PROCESSING_ERROR")
# Seconds; an image takes tens of milliseconds on a station CPU, a divert point allows about a second.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_LAST_OUTCOMES = """
SELECT outcome, COUNT(*) FROM (
    SELECT tracking_id, COALESCE(json_extract(body, '$.outcome'), json_extract(body, '$.divert.outcome'))
        AS outcome, MAX(seq)
    FROM events WHERE type IN ('parcel', 'divert_outcome') GROUP BY tracking_id
) WHERE outcome IS NOT NULL GROUP BY outcome
"""
_HELD = """
SELECT j.value, COUNT(*) FROM events, json_each(events.body, '$.reasons') AS j
WHERE events.type = 'parcel' AND j.value IN ('LATE', 'PROCESSING_ERROR') GROUP BY j.value
"""


class _StationCollector(Collector):
    def __init__(self, agent: EdgeAgent) -> None:
        self._agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self._agent
        store = agent.store
        parcels = CounterMetricFamily(
            "parcelguard_station_parcels", "parcels recorded, by decision", labels=["decision"]
        )
        for decision, n in sorted(store.decision_counts().items()):
            parcels.add_metric([decision], n)
        yield parcels
        # A parcel's divert moves on (PENDING, then DIVERTED or MISSED): a gauge of each one's last word.
        diverts = GaugeMetricFamily(
            "parcelguard_station_diverts", "parcels by the last outcome of their divert", labels=["outcome"]
        )
        for outcome, n in store.query(_LAST_OUTCOMES):
            diverts.add_metric([str(outcome)], int(n))
        yield diverts
        held = CounterMetricFamily(
            "parcelguard_station_held_parcels", "parcels held late or after an error", labels=["reason"]
        )
        counts = {str(r): int(n) for r, n in store.query(_HELD)}
        for reason in HELD_REASONS:
            held.add_metric([reason], counts.get(reason, 0))
        yield held
        yield CounterMetricFamily(
            "parcelguard_station_processing_failures",
            "parcels whose processing raised since start (recorded as PROCESSING_ERROR or not at all)",
            value=agent.errors,
        )
        snap = agent.health.snapshot(store.outbox_size())
        yield GaugeMetricFamily(
            "parcelguard_station_outbox_depth", "events waiting to go to the server", value=snap["outbox"]
        )
        lag = snap["seconds_since_sync"]
        if lag is not None:
            # Absent until the first successful sync: a made-up number would read as a real lag.
            yield GaugeMetricFamily(
                "parcelguard_station_sync_lag_seconds", "seconds since the last successful sync", value=lag
            )


class StationMetrics:
    """The registry of one station: the collector above and the classifier's latency histogram."""

    def __init__(self, agent: EdgeAgent) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.model_latency = Histogram(
            "parcelguard_station_model_latency_seconds",
            "time to classify one image (live and shadow model)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StationCollector(agent))
        agent.classifier.on_latency = self.model_latency.observe

    def render(self) -> bytes:
        return generate_latest(self.registry)
