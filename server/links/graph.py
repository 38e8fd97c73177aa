"""The link graph's part kept at ingest: hit images, linked through their nearest known counterfeit.

The rest of the graph is the registry's own indexed columns: a parcel event links to its manifest
(sender, destination), a sender to its phone, address, credit code and outlet. Nothing of that is
copied at ingest, so keeping the graph costs ingest only the rows of hits with a gallery match.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from edge.wire import ParcelEvent
from server.schema import events, link_edges, manifests


def update_links(conn: Connection, new: Sequence[object]) -> int:
    """Add the batch's new hit images to the graph (events already stored), set-based; returns edges."""
    pairs = sorted(
        {
            (ev.key, g.ref_id)
            for ev in new
            if isinstance(ev, ParcelEvent) and ev.decision != "CLEAR"
            for c in ev.classifications
            if not c.shadow
            for g in c.gallery[:1]
        }
    )
    if not pairs:
        return 0
    rows = conn.execute(
        select(events.c.key, events.c.id, events.c.at, manifests.c.sender_token)
        .select_from(events.outerjoin(manifests, manifests.c.waybill == events.c.waybill))
        .where(events.c.key.in_({k for k, _ in pairs}))
    ).all()
    by_key = {r.key: r for r in rows}
    edges = [
        {"parcel_id": r.id, "kind": "image", "token": ref[:128], "sender_token": r.sender_token, "at": r.at}
        for key, ref in pairs
        if (r := by_key.get(key)) is not None
    ]
    if edges:
        conn.execute(link_edges.insert(), edges)
    return len(edges)
