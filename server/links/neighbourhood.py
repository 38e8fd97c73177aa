"""A sender's or a cluster's neighbourhood in the link graph, as masked nodes and edges for the desk."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from server.accounts import Principal
from server.errors import NotFound
from server.privacy import mask_id
from server.schema import events, link_cluster_members, link_clusters, manifests, reviews, senders, stations
from server.scope import site_filter

MAX_NEIGHBOURS = 12
MAX_PLACES = 8


@dataclass
class Graph:
    """Nodes (id, kind, label, ring: 0 centre, 1 shared values, 2 other senders) and edges between ids."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)

    def node(self, node_id: str, kind: str, label: str, ring: int) -> str:
        if node_id not in self.nodes:
            self.nodes[node_id] = {"id": node_id, "kind": kind, "label": label, "ring": ring}
        return node_id

    def link(self, a: str, b: str) -> None:
        if a != b:
            self.edges.add((min(a, b), max(a, b)))

    def as_dict(self) -> dict[str, Any]:
        return {"nodes": list(self.nodes.values()), "edges": sorted(self.edges)}


def _short(token: str) -> str:
    """A token shown as a short reference: it tells two nodes apart and reveals nothing."""
    return "#" + token[:6]


def _sender_node(g: Graph, row: Any, ring: int) -> str:
    label = f"{row.id_masked} {row.name_masked}".strip()
    return g.node(f"s:{row.sender_token}", "sender", label, ring)


def _visible_sender(conn: Connection, who: Principal, token: str) -> bool:
    """An officer sees a sender's neighbourhood when one of their sites has a parcel or an item of it."""
    item = conn.execute(
        select(reviews.c.id)
        .where(reviews.c.sender_token == token, site_filter(who, reviews.c.site_id))
        .limit(1)
    ).first()
    if item is not None:
        return True
    parcel = conn.execute(
        select(events.c.id)
        .join(manifests, manifests.c.waybill == events.c.waybill)
        .join(stations, stations.c.station_id == events.c.station_id)
        .where(manifests.c.sender_token == token, site_filter(who, stations.c.site_id))
        .limit(1)
    ).first()
    return parcel is not None


def _places(conn: Connection, who: Principal, tokens: list[str]) -> Counter[str]:
    """Destinations of these senders' parcels seen at the caller's sites, by parcel count."""
    rows = conn.execute(
        select(manifests.c.destination_token, func.count())
        .join(events, events.c.waybill == manifests.c.waybill)
        .join(stations, stations.c.station_id == events.c.station_id)
        .where(
            manifests.c.sender_token.in_(tokens),
            manifests.c.destination_token.is_not(None),
            events.c.type == "parcel",
            site_filter(who, stations.c.site_id),
        )
        .group_by(manifests.c.destination_token)
    ).all()
    return Counter({str(d): int(n) for d, n in rows})


def sender_neighbourhood(
    conn: Connection, who: Principal, token: str, words: dict[str, str]
) -> dict[str, Any]:
    """Who shares a phone, an address, a credit code or a destination with this sender (masked)."""
    centre = conn.execute(select(senders).where(senders.c.sender_token == token)).first()
    if centre is None or not _visible_sender(conn, who, token):
        raise NotFound(f"no sender {token[:12]!r} at your sites")
    g = Graph()
    me = _sender_node(g, centre, 0)
    shared = [
        (
            "phone",
            centre.phone_token,
            senders.c.phone_token,
            centre.phone_masked or _short(centre.phone_token or ""),
        ),
        ("address", centre.address_token, senders.c.address_token, _short(centre.address_token or "")),
        ("org", centre.customer_token, senders.c.customer_token, mask_id(centre.usc_code or "") or "—"),
    ]
    for kind, value, column, label in shared:
        if not value:
            continue
        node = g.node(f"{kind}:{value}", kind, f"{words.get('link_' + kind, kind)} {label}", 1)
        g.link(me, node)
        others = conn.execute(
            select(senders).where(column == value, senders.c.sender_token != token).limit(MAX_NEIGHBOURS)
        ).all()
        for other in others:
            g.link(node, _sender_node(g, other, 2))
    if centre.outlet:
        g.link(
            me,
            g.node(
                f"outlet:{centre.outlet}",
                "outlet",
                f"{words.get('link_outlet', 'outlet')} {centre.outlet}",
                1,
            ),
        )
    for place, count in _places(conn, who, [token]).most_common(MAX_PLACES):
        node = g.node(f"dest:{place}", "dest", f"{words.get('link_dest', 'to')} {_short(place)} ×{count}", 1)
        g.link(me, node)
        fellow = conn.execute(
            select(senders)
            .join(manifests, manifests.c.sender_token == senders.c.sender_token)
            .where(manifests.c.destination_token == place, senders.c.sender_token != token)
            .distinct()
            .limit(MAX_NEIGHBOURS)
        ).all()
        for other in fellow:
            g.link(node, _sender_node(g, other, 2))
    return {
        "sender": {"token": token, "id_masked": centre.id_masked, "name_masked": centre.name_masked},
        **g.as_dict(),
    }


def cluster_view(conn: Connection, who: Principal, cluster_id: str, words: dict[str, str]) -> dict[str, Any]:
    """One split-shipment cluster: its score and why, its parcels, and its senders with what links them."""
    row = conn.execute(
        select(link_clusters).where(
            link_clusters.c.cluster_id == cluster_id, site_filter(who, link_clusters.c.site_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no cluster {cluster_id[:40]!r} at your sites")
    parcels = conn.execute(
        select(
            events.c.waybill, events.c.station_id, events.c.at, manifests.c.sender_token,
            manifests.c.declared_category, manifests.c.destination_token,
        )
        .select_from(
            link_cluster_members.join(events, events.c.id == link_cluster_members.c.parcel_id).outerjoin(
                manifests, manifests.c.waybill == events.c.waybill
            )
        )
        .where(link_cluster_members.c.cluster_id == cluster_id)
        .order_by(events.c.at)
    ).all()  # fmt: skip
    tokens = sorted({p.sender_token for p in parcels if p.sender_token})
    people = {
        r.sender_token: r for r in conn.execute(select(senders).where(senders.c.sender_token.in_(tokens)))
    }
    g = Graph()
    centre = g.node("cluster", "cluster", f"{words.get('link_cluster', 'cluster')} {row.score:.2f}", 0)
    # A value links the cluster's senders when two or more of them hold it.
    held = Counter(
        (kind, v)
        for q in people.values()
        for kind, v in (("phone", q.phone_token), ("address", q.address_token), ("org", q.customer_token))
        if v
    )
    for t in tokens:
        if t not in people:
            continue
        p = people[t]
        me = _sender_node(g, p, 1)
        g.link(centre, me)
        for kind, value, label in (
            ("phone", p.phone_token, p.phone_masked or _short(p.phone_token or "")),
            ("address", p.address_token, _short(p.address_token or "")),
            ("org", p.customer_token, mask_id(p.usc_code or "")),
        ):
            if value and held[kind, value] >= 2:
                g.link(me, g.node(f"{kind}:{value}", kind, f"{words.get('link_' + kind, kind)} {label}", 2))
    places = Counter(p.destination_token for p in parcels if p.destination_token)
    for place, count in places.most_common(MAX_PLACES):
        node = g.node(f"dest:{place}", "dest", f"{words.get('link_dest', 'to')} {_short(place)} ×{count}", 2)
        for t in {p.sender_token for p in parcels if p.destination_token == place}:
            if t in people:
                g.link(f"s:{t}", node)
    return {
        "cluster": {
            "cluster_id": row.cluster_id,
            "score": float(row.score),
            "parcels": int(row.parcels),
            "senders": int(row.senders),
            "first_at": row.first_at,
            "last_at": row.last_at,
            "site_id": row.site_id,
            "review_id": row.review_id,
            "explain": json.loads(row.explain),
        },
        "parcels": [
            {
                "waybill": p.waybill,
                "station_id": p.station_id,
                "at": p.at,
                "category": p.declared_category,
                "sender": people[p.sender_token].id_masked if p.sender_token in people else "—",
                "sender_token": p.sender_token,
                "dest": _short(p.destination_token) if p.destination_token else "—",
            }
            for p in parcels
        ],
        **g.as_dict(),
    }
