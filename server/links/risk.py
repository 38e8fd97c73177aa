"""Sender risk from history: decayed contributions, stored with their explanation and sent to stations."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from server.db import REGISTRY_LOCK, iso, parse_iso, serialise_writers
from server.schema import (
    events,
    link_cluster_members,
    link_clusters,
    manifests,
    registry_log,
    reviews,
    sender_risks,
    senders,
)
from server.settings import LinksConfig

# What one event of each kind adds before decay; a release speaks for the sender.
OUTCOME_WEIGHT = {"seize": 1.2, "detain": 0.8, "refer": 0.5, "open_inspection": 0.2, "release": -0.3}
SPLIT_SHIPMENT = 0.6
UNVERIFIED = 0.15
UNQUALIFIED = 0.3
NOT_INSPECTED_EACH, NOT_INSPECTED_CAP = 0.02, 0.2
# A change smaller than this is not worth a registry change to every station.
SEND_STEP = 0.02


def _decay(at: str | None, now: datetime, half_life_days: float) -> float:
    if not at:
        return 1.0
    age = max(0.0, (now - parse_iso(at)).total_seconds() / 86400)
    return float(0.5 ** (age / half_life_days))


def contributions(conn: Connection, cfg: LinksConfig, now: datetime) -> dict[str, list[dict[str, Any]]]:
    """Each sender's contributions: kind, how many, and the weight after decay."""
    parts: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    half = cfg.risk_half_life_days
    for token, outcome, at in conn.execute(
        select(reviews.c.sender_token, reviews.c.outcome, reviews.c.decided_at).where(
            reviews.c.sender_token.is_not(None), reviews.c.outcome.in_(sorted(OUTCOME_WEIGHT))
        )
    ):
        parts[token][outcome].append(OUTCOME_WEIGHT[outcome] * _decay(at, now, half))
    member = (
        select(manifests.c.sender_token, link_clusters.c.cluster_id, func.max(link_clusters.c.last_at))
        .select_from(
            link_cluster_members.join(
                link_clusters, link_clusters.c.cluster_id == link_cluster_members.c.cluster_id
            )
            .join(events, events.c.id == link_cluster_members.c.parcel_id)
            .join(manifests, manifests.c.waybill == events.c.waybill)
        )
        .group_by(manifests.c.sender_token, link_clusters.c.cluster_id)
    )
    for token, _cluster, last_at in conn.execute(member):
        parts[token]["split_shipment"].append(SPLIT_SHIPMENT * _decay(last_at, now, half))
    valid = {q.casefold() for q in cfg.valid_qualifications}
    for token, verified, agreement, qualification in conn.execute(
        select(
            senders.c.sender_token, senders.c.verified, senders.c.agreement_customer, senders.c.qualification
        ).where((senders.c.verified.is_(False)) | (senders.c.agreement_customer.is_(True)))
    ):
        if not verified:
            parts[token]["unverified"].append(UNVERIFIED)
        if agreement and qualification.strip().casefold() not in valid:
            parts[token]["unqualified"].append(UNQUALIFIED)
    for token, count in conn.execute(
        select(manifests.c.sender_token, func.count())
        .where(manifests.c.inspected_on_receipt.is_(False))
        .group_by(manifests.c.sender_token)
    ):
        parts[token]["not_inspected"] = [min(NOT_INSPECTED_CAP, NOT_INSPECTED_EACH * int(count))] * int(count)
    out: dict[str, list[dict[str, Any]]] = {}
    for token, kinds in parts.items():
        out[token] = [
            {
                "kind": kind,
                "count": len(ws),
                "weight": round(ws[0] if kind == "not_inspected" else sum(ws), 4),
            }
            for kind, ws in sorted(kinds.items())
        ]
    return out


def score_of(parts: list[dict[str, Any]]) -> float:
    """1 - exp(-sum of weights), never below 0: several moderate events add up, none exceeds 1."""
    total = sum(float(p["weight"]) for p in parts)
    return round(1.0 - math.exp(-max(0.0, total)), 4)


def update_risks(conn: Connection, cfg: LinksConfig, now: datetime) -> dict[str, int]:
    """Recompute every sender's risk; senders whose risk moved are logged so that stations get it."""
    fresh = {t: (score_of(p), p) for t, p in contributions(conn, cfg, now).items()}
    fresh = {t: v for t, v in fresh.items() if v[0] > 0}
    held = {r.sender_token: float(r.score) for r in conn.execute(select(sender_risks))}
    stamp = iso(now)
    changed: list[str] = []
    for token, (score, parts) in fresh.items():
        row = {"score": score, "contributions": json.dumps(parts, sort_keys=True), "updated_at": stamp}
        if token not in held:
            conn.execute(sender_risks.insert().values(sender_token=token, **row))
        else:
            conn.execute(update(sender_risks).where(sender_risks.c.sender_token == token).values(**row))
        if abs(held.get(token, 0.0) - score) >= SEND_STEP:
            changed.append(token)
    gone = sorted(set(held) - set(fresh))
    if gone:
        conn.execute(delete(sender_risks).where(sender_risks.c.sender_token.in_(gone)))
        changed += gone
    known: set[str] = set()
    for i in range(0, len(changed), 500):
        chunk = changed[i : i + 500]
        known |= {
            t
            for (t,) in conn.execute(select(senders.c.sender_token).where(senders.c.sender_token.in_(chunk)))
        }
    if known:
        serialise_writers(conn, REGISTRY_LOCK)
        conn.execute(
            registry_log.insert(), [{"kind": "sender", "ref": t, "at": stamp} for t in sorted(known)]
        )
    return {"senders": len(fresh), "sent": len(known)}


def risk_of(conn: Connection, sender_token: str) -> dict[str, Any] | None:
    row = conn.execute(select(sender_risks).where(sender_risks.c.sender_token == sender_token)).first()
    if row is None:
        return None
    return {
        "score": float(row.score),
        "contributions": json.loads(row.contributions),
        "updated_at": row.updated_at,
    }
