"""Labelled examples from outcomes: closed cases (counterfeit or genuine) and open-box results."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from edge.wire import OperatorEvent
from server.db import iso
from server.schema import case_items, cases, events, labelled_examples, reviews

CASE_LABELS = frozenset({"counterfeit", "genuine"})
# The terminal's open-box result is "code" or "code: note"; the code is the example's label.
OPEN_BOX_LABELS = frozenset({"counterfeit", "as_declared", "prohibited", "mismatch"})


def parcel_key(station_id: str, tracking_id: str) -> str:
    """One parcel's name across its images: the group a data set keeps on one side of every split."""
    return f"{station_id}:{tracking_id}"


def _add(conn: Connection, rows: list[dict[str, Any]]) -> int:
    added = 0
    for row in rows:
        held = conn.execute(
            select(labelled_examples.c.id).where(
                labelled_examples.c.image_sha256 == row["image_sha256"],
                labelled_examples.c.source == row["source"],
                labelled_examples.c.label == row["label"],
            )
        ).first()
        if held is None:
            try:
                # A savepoint: an example written meanwhile by another transaction must not undo this one
                # (a station's whole sync batch rides on it).
                with conn.begin_nested():
                    conn.execute(labelled_examples.insert().values(**row))
            except IntegrityError:
                continue
            added += 1
    return added


def _goods_images(payload: dict[str, Any]) -> list[dict[str, Any]]:
    # The shipping label says nothing about the goods: never an example of them.
    return [i for i in payload.get("images") or [] if isinstance(i, dict) and i.get("kind") != "label"]


def learn_from_case(conn: Connection, case_id: int, now: datetime) -> int:
    """Every goods image of a closed case's items, labelled with the case's outcome; returns how many."""
    row = conn.execute(select(cases).where(cases.c.id == case_id)).one()
    if row.state != "closed" or row.outcome not in CASE_LABELS:
        return 0
    out: list[dict[str, Any]] = []
    items = conn.execute(
        select(reviews)
        .join(case_items, case_items.c.review_id == reviews.c.id)
        .where(case_items.c.case_id == case_id)
    )
    for item in items:
        payload = json.loads(
            conn.execute(select(events.c.payload).where(events.c.key == item.event_key)).scalar_one()
        )
        for img in _goods_images(payload):
            out.append(
                {
                    "image_sha256": img["sha256"],
                    "kind": img.get("kind") or "camera",
                    "category": item.category,
                    "label": row.outcome,
                    "source": "case",
                    "case_id": case_id,
                    "review_id": item.id,
                    "parcel": parcel_key(item.station_id, item.tracking_id),
                    "site_id": item.site_id,
                    "created_at": iso(now),
                }
            )
    return _add(conn, out)


def open_box_label(result: str) -> str | None:
    code = result.split(":", 1)[0].strip()
    return code if code in OPEN_BOX_LABELS else None


def learn_from_open_box(conn: Connection, site_id: str, found: Iterable[OperatorEvent], now: datetime) -> int:
    """Each open-box result labels the goods images of the parcel it was found in."""
    out: list[dict[str, Any]] = []
    for ev in found:
        label = open_box_label(ev.result) if ev.action == "open_box" else None
        if label is None:
            continue
        parcel = conn.execute(
            select(events.c.key, events.c.payload)
            .where(
                events.c.station_id == ev.station_id,
                events.c.tracking_id == ev.tracking_id,
                events.c.type == "parcel",
            )
            .order_by(events.c.id.desc())
            .limit(1)
        ).first()
        if parcel is None:
            continue
        payload = json.loads(parcel.payload)
        review = conn.execute(
            select(reviews.c.id, reviews.c.category).where(reviews.c.event_key == parcel.key)
        ).first()
        category = review.category if review else payload.get("declared_category")
        for img in _goods_images(payload):
            out.append(
                {
                    "image_sha256": img["sha256"],
                    "kind": img.get("kind") or "camera",
                    "category": category,
                    "label": label,
                    "source": "open_box",
                    "case_id": None,
                    "review_id": review.id if review else None,
                    "parcel": parcel_key(ev.station_id, ev.tracking_id),
                    "site_id": site_id,
                    "created_at": iso(now),
                }
            )
    return _add(conn, out)
