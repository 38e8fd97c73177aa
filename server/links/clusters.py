"""Split-shipment detection: senders joined by shared phones, addresses or credit codes, scored as clusters.

Analysis runs as plain SQL aggregation plus a union-find in Python, on both engines alike. A recursive
CTE would walk every path of a cyclic graph (cost grows with the paths, not the nodes) and networkx
would need the whole graph in memory; here SQL finds the few nodes shared by several senders in the
window, and only that small subgraph is joined in memory.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, literal, select, union_all, update

from server.db import iso, parse_iso
from server.schema import (
    events,
    link_cluster_members,
    link_clusters,
    link_edges,
    manifests,
    reviews,
    senders,
    stations,
)
from server.settings import LinksConfig, ServerSettings
from server.sites import local_day, site_zone

# Kinds that join senders into one group; destinations and images only score a group.
JOINING = ("phone", "address", "org")
CHUNK = 500
REASON = "SPLIT_SHIPMENT"


@dataclass
class Cluster:
    """A group of parcels from linked senders, its score and why."""

    parcel_ids: list[int]
    senders: list[str]
    score: float
    first_at: str
    last_at: str
    site_id: str
    station_id: str
    category: str
    explain: dict[str, Any] = field(default_factory=dict)


class _Joined:
    """Union-find over sender tokens."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        root = self.parent.setdefault(x, x)
        while root != self.parent[root]:
            root = self.parent[root]
        while x != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _sharing(cfg: LinksConfig) -> Any:
    """(kind, token, sender) of every sender on a joining node that two to hub_senders senders share."""
    s = senders
    parts = []
    for kind, col in (
        ("phone", s.c.phone_token),
        ("address", s.c.address_token),
        ("org", s.c.customer_token),
    ):
        shared = (
            select(col)
            .where(col.is_not(None))
            .group_by(col)
            .having(func.count() >= 2, func.count() <= cfg.hub_senders)
        )
        parts.append(
            select(literal(kind).label("kind"), col.label("token"), s.c.sender_token).where(col.in_(shared))
        )
    return union_all(*parts)


def sender_groups(conn: Connection, cfg: LinksConfig) -> tuple[list[list[str]], dict[str, list[str]]]:
    """Groups of senders linked through shared joining nodes (hubs left out), and each group's nodes.

    Nodes are counted over the whole registry (a phone shared by many is a hub whenever they send);
    the window applies to the parcels, so a group without parcels in it scores nothing.
    """
    rows = conn.execute(_sharing(cfg)).all()
    joined = _Joined()
    first_of: dict[tuple[str, str], str] = {}
    for kind, token, sender in rows:
        node = (kind, token)
        if node in first_of:
            joined.union(first_of[node], sender)
        else:
            first_of[node] = sender
            joined.find(sender)
    groups: dict[str, list[str]] = defaultdict(list)
    for sender in joined.parent:
        groups[joined.find(sender)].append(sender)
    nodes: dict[str, list[str]] = defaultdict(list)
    for (kind, token), sender in first_of.items():
        nodes[joined.find(sender)].append(f"{kind}:{token}")
    out = [sorted(g) for g in groups.values() if len(g) >= cfg.min_senders]
    return out, {min(groups[root]): sorted(n) for root, n in nodes.items()}


def _parcels_of(conn: Connection, cfg: LinksConfig, since: str) -> list[Any]:
    """Parcels in the window of every sender on a shared node, in one semi-join (a waybill seen at
    several stations counts once, where it was first seen), each with its manifest's destination."""
    e, m, st = events, manifests, stations
    sharing = _sharing(cfg).subquery()
    rows = conn.execute(
        select(
            e.c.id, e.c.waybill, m.c.sender_token, m.c.declared_category.label("category"), e.c.at,
            e.c.station_id, func.coalesce(st.c.site_id, "").label("site_id"),
            m.c.destination_token.label("dest"),
        )
        .select_from(m.join(e, e.c.waybill == m.c.waybill).outerjoin(st, st.c.station_id == e.c.station_id))
        .where(m.c.sender_token.in_(select(sharing.c.sender_token)), e.c.type == "parcel", e.c.at >= since)
    ).all()  # fmt: skip
    first: dict[str, Any] = {}
    for r in rows:
        if r.waybill not in first or (r.at, r.id) < (first[r.waybill].at, first[r.waybill].id):
            first[r.waybill] = r
    return sorted(first.values(), key=lambda r: (r.at, r.id))


def _image_nodes(conn: Connection, since: str) -> dict[int, str]:
    """The counterfeit reference each hit parcel of the window is nearest to (only hits have one)."""
    rows = conn.execute(
        select(link_edges.c.parcel_id, link_edges.c.token).where(
            link_edges.c.kind == "image", link_edges.c.at >= since
        )
    )
    return {int(pid): str(token) for pid, token in rows}


def _across(core: list[Any], value_of: dict[int, str | None]) -> float:
    """Share of the core whose value (destination, image) a parcel of another sender repeats."""
    senders_of: dict[str, set[str]] = defaultdict(set)
    for r in core:
        if (v := value_of.get(int(r.id))) is not None:
            senders_of[v].add(r.sender_token)
    shared = sum(1 for r in core if (v := value_of.get(int(r.id))) is not None and len(senders_of[v]) >= 2)
    return shared / len(core) if core else 0.0


def score_group(rows: list[Any], images_of: dict[int, str], cfg: LinksConfig) -> Cluster | None:
    """The group's core scored; None when it is too small.

    The core is the parcels of the group's commonest declared contents and those sent to the same
    places as they are. Score: the share of the core with those contents (when several senders send
    them) times destinations shared across senders (0.6) plus a short span of days (0.4), with similar
    hit images on top. A household sharing an address sends assorted goods to assorted places over
    months; a merchant's accounts send one line of goods to many buyers, over the whole window.
    """
    dest_of: dict[int, str | None] = {int(r.id): r.dest for r in rows}
    cats = Counter(r.category for r in rows if r.category != "other")
    if not cats:
        return None
    top = min(cats.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    places = {dest_of[int(r.id)] for r in rows if r.category == top} - {None}
    core = [r for r in rows if r.category == top or dest_of[int(r.id)] in places]
    core_senders = sorted({r.sender_token for r in core})
    if len(core) < cfg.min_parcels or len(core_senders) < cfg.min_senders:
        return None
    n = len(core)
    # The same goods from several senders: one sender's repeated goods prove nothing about a group.
    top_senders = {r.sender_token for r in core if r.category == top}
    same = sum(1 for r in core if r.category == top) / n if len(top_senders) >= 2 else 0.0
    # Repeated across senders: one person sending twice to a relative is not a split shipment.
    dest = _across(core, dest_of)
    times = sorted(r.at for r in core)
    span = (parse_iso(times[-1]) - parse_iso(times[0])).total_seconds() / 86400
    timely = max(0.0, 1.0 - span / cfg.max_span_days)
    images = _across(core, dict(images_of))
    # Same goods AND (shared destinations or a short burst); similar hit images add on top.
    score = min(1.0, same * (0.6 * dest + 0.4 * timely) + 0.3 * images)
    sites = Counter(r.site_id for r in core)
    stations = Counter(r.station_id for r in core)
    return Cluster(
        parcel_ids=sorted(int(r.id) for r in core),
        senders=core_senders,
        score=round(score, 4),
        first_at=times[0],
        last_at=times[-1],
        site_id=sites.most_common(1)[0][0],
        station_id=stations.most_common(1)[0][0],
        category=top,
        explain={
            "same_contents": round(same, 3),
            "same_destination": round(dest, 3),
            "span_days": round(span, 2),
            "similar_images": round(images, 3),
            "stations": len(stations),
        },
    )


def find_clusters(conn: Connection, cfg: LinksConfig, now: datetime) -> list[Cluster]:
    """Every cluster in the window scoring at least the threshold, best first."""
    since = iso(now - timedelta(days=cfg.window_days))
    groups, group_nodes = sender_groups(conn, cfg)
    by_sender = {s: i for i, g in enumerate(groups) for s in g}
    rows_of: dict[int, list[Any]] = defaultdict(list)
    for row in _parcels_of(conn, cfg, since):
        if row.sender_token in by_sender:
            rows_of[by_sender[row.sender_token]].append(row)
    images_of = _image_nodes(conn, since)
    found: list[Cluster] = []
    for i, rows in rows_of.items():
        cluster = score_group(rows, images_of, cfg)
        if cluster is not None and cluster.score >= cfg.threshold:
            cluster.explain["shared"] = group_nodes.get(groups[i][0], [])[:20]
            found.append(cluster)
    found.sort(key=lambda c: (-c.score, c.first_at))
    return found


def consolidate(
    conn: Connection, clusters: Sequence[Cluster], settings: ServerSettings, now: datetime
) -> dict[str, int]:
    """Store the clusters: one that overlaps a stored cluster grows it, a new one opens one review item.

    Set-based: one lookup of the members already held, then one statement per table, however many.
    """
    stamp = iso(now)
    wanted = sorted({pid for c in clusters for pid in c.parcel_ids})
    held: dict[int, set[str]] = defaultdict(set)
    for i in range(0, len(wanted), CHUNK):
        for cid, pid in conn.execute(
            select(link_cluster_members.c.cluster_id, link_cluster_members.c.parcel_id).where(
                link_cluster_members.c.parcel_id.in_(wanted[i : i + CHUNK])
            )
        ):
            held[int(pid)].add(str(cid))
    grown: list[dict[str, Any]] = []
    fresh: list[tuple[str, Cluster]] = []
    members: list[dict[str, Any]] = []
    for c in clusters:
        known = Counter(cid for pid in c.parcel_ids for cid in held.get(pid, ()))
        values = _values(c, stamp)
        if known:
            # The stored cluster it overlaps most: grow it (ties: the smallest id, so runs agree).
            cluster_id = min(known.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            grown.append({"key": cluster_id, **values})
        else:
            cluster_id = str(uuid.uuid4())
            fresh.append((cluster_id, c))
        members += [
            {"cluster_id": cluster_id, "parcel_id": pid}
            for pid in c.parcel_ids
            if cluster_id not in held.get(pid, ())
        ]
    if grown:
        conn.execute(
            update(link_clusters).where(link_clusters.c.cluster_id == bindparam("key")),
            grown,
        )
    if fresh:
        opened = conn.execute(
            reviews.insert().returning(reviews.c.id, reviews.c.event_key),
            [_review_row(cid, c, settings, now) for cid, c in fresh],
        ).all()
        review_of = {str(key).removeprefix("cluster:"): int(rid) for rid, key in opened}
        conn.execute(
            link_clusters.insert(),
            [
                {"cluster_id": cid, "review_id": review_of[cid], "created_at": stamp, **_values(c, stamp)}
                for cid, c in fresh
            ],
        )
    if members:
        conn.execute(link_cluster_members.insert(), members)
    return {"clusters": len(clusters), "opened": len(fresh), "grown": len(grown)}


def _values(c: Cluster, stamp: str) -> dict[str, Any]:
    return {
        "score": c.score,
        "parcels": len(c.parcel_ids),
        "senders": len(c.senders),
        "first_at": c.first_at,
        "last_at": c.last_at,
        "site_id": c.site_id,
        "explain": json.dumps({**c.explain, "senders": c.senders[:50]}, sort_keys=True),
        "updated_at": stamp,
    }


def _review_row(cluster_id: str, c: Cluster, settings: ServerSettings, now: datetime) -> dict[str, Any]:
    """The cluster's one review item: held for an officer, more urgent the higher it scores, filed under
    the site-local day of the cluster's last parcel (as the reports count days)."""
    review = settings.review
    return {
        "event_key": f"cluster:{cluster_id}",
        "station_id": c.station_id,
        "site_id": c.site_id,
        "line_id": "",
        "waybill": None,
        "tracking_id": f"cluster:{cluster_id}",
        "decision": "HOLD",
        "reasons": json.dumps([REASON]),
        "risk": c.score,
        "sender_token": c.senders[0],
        "category": c.category[:64],
        "priority": 100 + round((1.0 - c.score) * 99),
        "state": "open",
        "day": local_day(parse_iso(c.last_at), site_zone(settings, c.site_id)),
        "created_at": iso(now),
        "due_at": iso(now + timedelta(hours=review.queue_hours_hold)),
    }


def cluster_of_review(conn: Connection, review_id: int) -> str | None:
    """The cluster a consolidated review item stands for, if it is one."""
    found = conn.execute(
        select(link_clusters.c.cluster_id).where(link_clusters.c.review_id == review_id)
    ).scalar()
    return str(found) if found is not None else None
