"""Station liveness: each station's last contact and its devices' last reported states.

A station syncs every few seconds even with nothing to send, so the time of its last sync
request (`stations.last_seen_at`) is its heartbeat; a station silent for longer than
`stations.offline_after_s` is offline. Device states come from its device_status events.
`station_states` returns plain data for the desk page, the daily report and metrics exporters.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from edge.wire import DeviceStatusEvent
from server.db import iso, parse_iso
from server.schema import device_states, stations

MAX_DEVICE = 64
MAX_DETAIL = 200


def record_device_states(
    conn: Connection, station_id: str, changes: Iterable[DeviceStatusEvent], now: datetime
) -> None:
    """Keep the latest state per device; batches arrive in the station's own order, so last wins."""
    latest: dict[str, DeviceStatusEvent] = {}
    for ev in changes:
        latest[ev.device[:MAX_DEVICE]] = ev
    for device, ev in latest.items():
        values = {"up": ev.up, "detail": ev.detail[:MAX_DETAIL], "at": ev.at, "received_at": iso(now)}
        key = (device_states.c.station_id == station_id, device_states.c.device == device)
        if conn.execute(update(device_states).where(*key).values(**values)).rowcount == 0:
            conn.execute(device_states.insert().values(station_id=station_id, device=device, **values))


def station_states(
    conn: Connection, now: datetime, offline_after_s: float, sites: tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """Every active station (of `sites`; None: all) with its last contact, online flag and devices.

    A station never heard from is offline with `last_seen_at` None. `seconds_since_seen` is
    rounded to whole seconds; devices are sorted by name.
    """
    query = select(
        stations.c.station_id, stations.c.site_id, stations.c.line_id, stations.c.last_seen_at
    ).where(stations.c.active.is_(True))
    if sites is not None:
        query = query.where(stations.c.site_id.in_(sites))
    rows = list(conn.execute(query.order_by(stations.c.site_id, stations.c.station_id)))
    devices: dict[str, list[dict[str, Any]]] = {r.station_id: [] for r in rows}
    if devices:
        for d in conn.execute(
            select(device_states)
            .where(device_states.c.station_id.in_(list(devices)))
            .order_by(device_states.c.station_id, device_states.c.device)
        ):
            devices[d.station_id].append(
                {"device": d.device, "up": bool(d.up), "detail": d.detail, "at": d.at}
            )
    out = []
    for r in rows:
        since = None if r.last_seen_at is None else (now - parse_iso(r.last_seen_at)).total_seconds()
        out.append(
            {
                "station_id": r.station_id,
                "site_id": r.site_id,
                "line_id": r.line_id,
                "last_seen_at": r.last_seen_at,
                "seconds_since_seen": None if since is None else round(since),
                # A clock step backwards (since < 0) still counts as recent contact.
                "online": since is not None and since <= offline_after_s,
                "devices": devices[r.station_id],
                "devices_down": [d["device"] for d in devices[r.station_id] if not d["up"]],
            }
        )
    return out


def touch_station(conn: Connection, station_id: str, now: datetime) -> None:
    """The station was heard from now (a sync, or an order poll even when its batches are refused)."""
    conn.execute(update(stations).where(stations.c.station_id == station_id).values(last_seen_at=iso(now)))
