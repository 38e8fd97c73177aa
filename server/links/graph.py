"""Keep the link graph at ingest: one parcel row per new parcel event, its edges to shared nodes set-based."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Select, insert, literal, select, union_all

from edge.wire import ParcelEvent
from server.db import iso
from server.schema import link_edges, link_parcels, manifests, senders

CHUNK = 500
# Node kinds and where each comes from; `image` edges come from the event's own gallery matches.
NODE_KINDS = ("phone", "address", "org", "outlet", "dest", "image")


def _edges_from(keys: Sequence[str]) -> Select[tuple[object, ...]]:
    """Every parcel -> node edge the registry gives the parcels of these events, as one SELECT."""
    p, s, m = link_parcels, senders, manifests
    own = p.c.event_key.in_(keys)
    sources = [
        ("phone", s.c.phone_token, s, s.c.sender_token == p.c.sender_token),
        ("address", s.c.address_token, s, s.c.sender_token == p.c.sender_token),
        ("org", s.c.customer_token, s, s.c.sender_token == p.c.sender_token),
        ("outlet", s.c.outlet, s, s.c.sender_token == p.c.sender_token),
        ("dest", m.c.destination_token, m, m.c.waybill == p.c.waybill),
    ]
    parts = [
        select(p.c.id, literal(kind).label("kind"), col.label("token"), p.c.sender_token, p.c.at)
        .select_from(p.join(table, on))
        .where(own, col.is_not(None), col != "")
        for kind, col, table, on in sources
    ]
    return union_all(*parts)  # type: ignore[return-value]


def update_links(conn: Connection, site_id: str, new: Sequence[object]) -> int:
    """Add the batch's new parcel events to the graph in the caller's transaction; returns parcels added.

    Parcels without a waybill link nothing (no manifest, no sender) and are left out.
    """
    parcels = [ev for ev in new if isinstance(ev, ParcelEvent) and ev.waybill]
    if not parcels:
        return 0
    conn.execute(
        link_parcels.insert(),
        [
            {
                "event_key": ev.key,
                "waybill": ev.waybill,
                "sender_token": ev.sender_token,
                "category": (ev.declared_category or "other")[:64],
                "station_id": ev.station_id,
                "site_id": site_id,
                "at": iso(ev.at),
            }
            for ev in parcels
        ],
    )
    cols = ["parcel_id", "kind", "token", "sender_token", "at"]
    keys = [ev.key for ev in parcels]
    for i in range(0, len(keys), CHUNK):
        conn.execute(insert(link_edges).from_select(cols, _edges_from(keys[i : i + CHUNK])))
    _image_edges(conn, parcels)
    return len(parcels)


def _image_edges(conn: Connection, parcels: list[ParcelEvent]) -> None:
    """Hit images link through the known counterfeit reference they are nearest to."""
    pairs = {
        (ev.key, g.ref_id)
        for ev in parcels
        if ev.decision != "CLEAR"
        for c in ev.classifications
        if not c.shadow
        for g in c.gallery[:1]
    }
    if not pairs:
        return
    ids = dict(
        conn.execute(
            select(link_parcels.c.event_key, link_parcels.c.id).where(
                link_parcels.c.event_key.in_({k for k, _ in pairs})
            )
        ).all()
    )
    by_key = {ev.key: ev for ev in parcels}
    conn.execute(
        link_edges.insert(),
        [
            {
                "parcel_id": ids[key],
                "kind": "image",
                "token": ref[:128],
                "sender_token": by_key[key].sender_token,
                "at": iso(by_key[key].at),
            }
            for key, ref in sorted(pairs)
        ],
    )

