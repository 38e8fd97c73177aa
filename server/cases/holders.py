"""The rights holders registry: brands, their contacts and recorded trademarks, shared by every site."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from server.accounts import Principal
from server.db import iso
from server.errors import Conflict, NotFound
from server.schema import rights_holders
from server.scope import own_sites, record


def holder_summary(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "brand": row.brand,
        "contact_name": row.contact_name,
        "email": row.email,
        "phone": row.phone,
        "address": row.address,
        "language": row.language,
        "trademarks": json.loads(row.trademarks),
        "active": bool(row.active),
        "updated_at": row.updated_at,
    }


def list_holders(conn: Connection, active_only: bool = True) -> list[dict[str, Any]]:
    query = select(rights_holders).order_by(rights_holders.c.brand)
    if active_only:
        query = query.where(rights_holders.c.active.is_(True))
    return [holder_summary(r) for r in conn.execute(query)]


def get_holder(conn: Connection, holder_id: int) -> dict[str, Any]:
    row = conn.execute(select(rights_holders).where(rights_holders.c.id == holder_id)).first()
    if row is None:
        raise NotFound(f"no rights holder {holder_id}")
    return holder_summary(row)


def _brand_taken(conn: Connection, brand: str, other_than: int | None = None) -> bool:
    found = conn.execute(select(rights_holders.c.id).where(rights_holders.c.brand == brand)).scalar()
    return found is not None and found != other_than


def add_holder(conn: Connection, secret: str, who: Principal, data: dict[str, Any], now: datetime) -> int:
    """Register a rights holder; a brand is registered once."""
    if _brand_taken(conn, data["brand"]):
        raise Conflict(f"rights holder {data['brand']!r} is already registered", "exists")
    values = {**data, "trademarks": json.dumps(data["trademarks"], ensure_ascii=False)}
    holder_id = int(
        conn.execute(
            rights_holders.insert()
            .values(**values, active=True, created_by=who.name, created_at=iso(now), updated_at=iso(now))
            .returning(rights_holders.c.id)
        ).scalar_one()
    )
    record(conn, secret, who.name, "rights_holder_add", f"rights_holder:{holder_id}", own_sites(who), data)
    return holder_id


def change_holder(
    conn: Connection, secret: str, who: Principal, holder_id: int, data: dict[str, Any], now: datetime
) -> None:
    """Update contact, trademarks or the active flag; every change is audited."""
    get_holder(conn, holder_id)
    if "brand" in data and _brand_taken(conn, data["brand"], holder_id):
        raise Conflict(f"rights holder {data['brand']!r} is already registered", "exists")
    values = dict(data)
    if "trademarks" in values:
        values["trademarks"] = json.dumps(values["trademarks"], ensure_ascii=False)
    conn.execute(
        update(rights_holders).where(rights_holders.c.id == holder_id).values(**values, updated_at=iso(now))
    )
    record(conn, secret, who.name, "rights_holder_change", f"rights_holder:{holder_id}", own_sites(who), data)
