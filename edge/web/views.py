"""What the terminal shows, shaped from the agent's store, health board and configuration."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from edge.config import EdgeConfig
from edge.health import HealthBoard
from edge.store import EdgeStore
from edge.web.causes import cause_of, plain_state

# The panel's fixed order; any other device the board knows is listed after these.
PANEL_DEVICES = ("scanner", "camera", "xray", "sorter", "model")
ALERT_OUTCOMES = ("MISSED", "TIMEOUT", "LATE", "UNKNOWN")


class AgentLike(Protocol):
    """The parts of EdgeAgent the terminal reads; tests may pass the real agent."""

    cfg: EdgeConfig
    store: EdgeStore
    health: HealthBoard


def needs_alert(parcel: dict[str, Any]) -> bool:
    """A parcel the operator must go and get: a PULL, or any divert the sorter did not carry out."""
    divert = parcel.get("divert") or {}
    return parcel.get("decision") == "PULL" or divert.get("outcome") in ALERT_OUTCOMES


def _row(body: dict[str, Any], actions: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    divert = body.get("divert") or {}
    at = datetime.fromisoformat(body["at"])
    row = {
        "tracking_id": body["tracking_id"],
        "waybill": body.get("waybill"),
        "at": body["at"],
        "age_s": round(max(0.0, (now - at).total_seconds()), 1),
        "decision": body["decision"],
        "reasons": body.get("reasons", []),
        "risk": body.get("risk", 0.0),
        "declared_category": body.get("declared_category"),
        "divert": divert.get("outcome"),
        "chute": divert.get("chute"),
        "actions": actions,
    }
    # Waiting for the operator: an alert parcel nobody has said "pulled" or "not found" about yet.
    done = {a["action"] for a in actions}
    row["alert"] = needs_alert(body) and not done & {"pulled", "not_found", "open_box"}
    return row


def recent_parcels(store: EdgeStore, limit: int, now: datetime) -> list[dict[str, Any]]:
    """Newest first, each with the operator's actions on it, read from the store (survives restarts)."""
    rows = store.query(
        "SELECT body FROM events WHERE type = 'parcel' ORDER BY seq DESC LIMIT ?", (max(1, limit),)
    )
    bodies = [json.loads(r[0]) for r in rows]
    ids = [b["tracking_id"] for b in bodies]
    actions: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        marks = ",".join("?" * len(ids))
        # A divert recorded as PENDING with the parcel has its outcome in a later event.
        settled: dict[str, dict[str, Any]] = {}
        for (raw,) in store.query(
            f"SELECT body FROM events WHERE type = 'divert_outcome' AND tracking_id IN ({marks})"
            " ORDER BY seq",
            ids,
        ):
            ev = json.loads(raw)
            settled[ev["tracking_id"]] = {"outcome": ev["outcome"], "chute": ev.get("chute"), "detail": ""}
        for b in bodies:
            if b["tracking_id"] in settled:
                b["divert"] = settled[b["tracking_id"]]
        for (raw,) in store.query(
            f"SELECT body FROM events WHERE type = 'operator' AND tracking_id IN ({marks}) ORDER BY seq",
            ids,
        ):
            ev = json.loads(raw)
            actions[ev["tracking_id"]].append(
                {"action": ev["action"], "result": ev.get("result", ""), "at": ev["at"]}
            )
    return [_row(b, actions[b["tracking_id"]], now) for b in bodies]


def _device_state(dev: dict[str, Any] | None, configured: bool) -> dict[str, Any]:
    if not configured:
        return {"state": "not_configured", "detail": "", "seconds_since_seen": None}
    if dev is None:
        return {"state": "no_report", "detail": "", "seconds_since_seen": None}
    state = "up" if dev["up"] else ("quiet" if dev["detail"] == "quiet" else "down")
    return {"state": state, "detail": dev["detail"], "seconds_since_seen": dev["seconds_since_seen"]}


def health_view(agent: AgentLike) -> dict[str, Any]:
    """Every panel tile with a state the page colours: up (green), down/quiet/no_report (red), grey."""
    cfg = agent.cfg
    snap = agent.health.snapshot(agent.store.outbox_size())
    known = {d["name"]: d for d in snap["devices"]}
    configured = {
        "scanner": True,
        "camera": cfg.devices.camera is not None,
        "xray": cfg.devices.xray is not None,
        "sorter": cfg.sorter.url is not None,
        "model": True,
    }
    tiles = [{"name": n, **_device_state(known.get(n), configured[n])} for n in PANEL_DEVICES]
    tiles += [{"name": n, **_device_state(d, True)} for n, d in known.items() if n not in PANEL_DEVICES]
    for tile in tiles:
        # Only a failing tile gets a cause: an up one's detail is information ("connected").
        tile["cause"] = cause_of(tile["name"], tile["detail"]) if tile["state"] != "up" else None
        # A plain state ("replay finished", "last divert DIVERTED") is shown in the operator's words.
        tile["said"] = plain_state(tile["detail"]) if tile["detail"] else None
    since = snap["seconds_since_sync"]
    if cfg.server.url is None:
        sync_state = "not_configured"
    elif since is not None and since <= 3 * cfg.server.sync_interval_s + 5:
        sync_state = "up"
    else:
        sync_state = "down"
    return {
        "station": cfg.station.id,
        "devices": tiles,
        "sync": {
            "state": sync_state,
            "seconds_since_sync": since,
            "error": snap["sync_error"],
            "cause": cause_of("sync", snap["sync_error"]),
            "error_code": snap["sync_error_code"],
        },
        "outbox": snap["outbox"],
    }


class HealthCache:
    """One health snapshot per interval for every open stream, computed once instead of once per stream."""

    def __init__(self, agent: AgentLike, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._agent, self._every, self._clock = agent, every_s, clock
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._view: dict[str, Any] = {}

    def fresh(self) -> dict[str, Any] | None:
        with self._lock:
            return self._view if self._clock() - self._at < self._every else None

    def refresh(self) -> dict[str, Any]:
        with self._lock:
            if self._clock() - self._at >= self._every:
                self._view, self._at = health_view(self._agent), self._clock()
            return self._view
