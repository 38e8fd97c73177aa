"""Blacklist and watchlist entries, kept as tokens and masked forms, with expiry and appeal status."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, select, update

from server.db import REGISTRY_LOCK, iso, serialise_writers, utcnow
from server.errors import BadInput, NotFound
from server.idcheck import check_id_number, check_phone, check_usc_code, normalise_phone
from server.privacy import Privacy, mask_id, mask_phone, mask_text
from server.schema import registry_log, watchlist


class WatchRequest(BaseModel):
    """A new blacklist or watchlist entry; the identifying value is turned into a token at once."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    list: Literal["blacklist", "watchlist"] = Field(
        description="blacklist stops parcels, watchlist flags them"
    )
    kind: Literal["sender", "phone", "address", "organisation"] = Field(description="what is listed")
    id_type: Literal["resident_id", "passport", "usc_code", "other"] | None = Field(
        None, description="sender ID type (kind=sender)"
    )
    id_number: str | None = Field(None, max_length=64, description="sender ID number (kind=sender)")
    value: str | None = Field(
        None, max_length=400, description="phone, address or organisation (USC code or name)"
    )
    reason: str = Field(min_length=1, max_length=1000, description="why the entry exists")
    source: str = Field(min_length=1, max_length=128, description="who asked for it (authority, case number)")
    expires_at: datetime | None = Field(None, description="when the entry lapses (UTC)")

    @model_validator(mode="after")
    def _check(self) -> WatchRequest:
        if self.kind == "sender":
            if not self.id_type or not self.id_number:
                raise ValueError("id_type and id_number are required for kind=sender")
            if problem := check_id_number(self.id_type, self.id_number):
                raise ValueError(f"id_number: {problem}")
        else:
            if not self.value:
                raise ValueError(f"value is required for kind={self.kind}")
            if self.kind == "phone" and (problem := check_phone(self.value)):
                raise ValueError(f"value: {problem}")
        return self


class WatchUpdate(BaseModel):
    """Change of an entry's appeal status or activity."""

    model_config = ConfigDict(extra="forbid")

    appeal_status: Literal["none", "pending", "upheld", "overturned"] | None = Field(
        None, description="appeal state"
    )
    active: bool | None = Field(None, description="false withdraws the entry from every edge")


def token_and_mask(privacy: Privacy, req: WatchRequest) -> tuple[str, str]:
    """The token the edges match on and the form people see."""
    if req.kind == "sender":
        assert req.id_type and req.id_number
        return privacy.sender_token(req.id_type, req.id_number), mask_id(req.id_number)
    value = req.value or ""
    if req.kind == "phone":
        phone = normalise_phone(value)
        return privacy.token("phone", phone), mask_phone(phone)
    if req.kind == "organisation" and check_usc_code(value) is None:
        # An organisation named by its credit code matches the agreement customer registered under it.
        return privacy.sender_token("usc_code", value), mask_id(value)
    return privacy.token(req.kind, value), mask_text(value)


def entry_dict(row: Any) -> dict[str, Any]:
    return {
        "entry_id": row.entry_id,
        "list": row.list,
        "kind": row.kind,
        "token": row.token,
        "masked": row.masked,
        "reason": row.reason,
        "source": row.source,
        "expires_at": row.expires_at,
        "appeal_status": row.appeal_status,
        "active": bool(row.active),
        "created_by": row.created_by,
        "created_at": row.created_at,
    }


def add_entry(conn: Connection, privacy: Privacy, req: WatchRequest, actor: str) -> dict[str, Any]:
    token, masked = token_and_mask(privacy, req)
    now = iso(utcnow())
    entry_id = str(uuid.uuid4())
    conn.execute(
        watchlist.insert().values(
            entry_id=entry_id,
            list=req.list,
            kind=req.kind,
            token=token,
            masked=masked,
            reason=req.reason,
            source=req.source,
            expires_at=iso(req.expires_at) if req.expires_at else None,
            appeal_status="none",
            active=True,
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
    )
    serialise_writers(conn, REGISTRY_LOCK)
    conn.execute(registry_log.insert().values(kind="watch", ref=entry_id, at=now))
    return get_entry(conn, entry_id)


def get_entry(conn: Connection, entry_id: str) -> dict[str, Any]:
    row = conn.execute(select(watchlist).where(watchlist.c.entry_id == entry_id)).first()
    if row is None:
        raise NotFound(f"no watchlist entry {entry_id}")
    return entry_dict(row)


def update_entry(conn: Connection, entry_id: str, change: WatchUpdate) -> dict[str, Any]:
    get_entry(conn, entry_id)
    values: dict[str, Any] = {k: v for k, v in change.model_dump().items() if v is not None}
    if not values:
        raise BadInput("nothing to change: give appeal_status or active")
    now = iso(utcnow())
    conn.execute(update(watchlist).where(watchlist.c.entry_id == entry_id).values(updated_at=now, **values))
    serialise_writers(conn, REGISTRY_LOCK)
    conn.execute(registry_log.insert().values(kind="watch", ref=entry_id, at=now))
    return get_entry(conn, entry_id)


def list_entries(conn: Connection, limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(watchlist).order_by(watchlist.c.created_at.desc()).limit(limit).offset(offset)
    ).fetchall()
    return [entry_dict(r) for r in rows]
