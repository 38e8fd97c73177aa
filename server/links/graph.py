"""The link graph's part kept at ingest: hit images, linked through their nearest known counterfeit.

The rest of the graph is the registry's own indexed columns: a parcel event links to its manifest
(sender, destination), a sender to its phone, address, credit code and outlet. Nothing of that is
copied at ingest, so keeping the graph costs ingest only the rows of hits with a gallery match.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, String, bindparam, insert, literal, select

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
    # One statement for all of them: each row's parcel id, sender and time come from the stored event.
    edge = (
        select(
            events.c.id,
            literal("image"),
            bindparam("ref", type_=String),
            manifests.c.sender_token,
            events.c.at,
        )
        .select_from(events.outerjoin(manifests, manifests.c.waybill == events.c.waybill))
        .where(events.c.key == bindparam("key"))
    )
    cols = ["parcel_id", "kind", "token", "sender_token", "at"]
    conn.execute(insert(link_edges).from_select(cols, edge), [{"key": k, "ref": r[:128]} for k, r in pairs])
    return len(pairs)
