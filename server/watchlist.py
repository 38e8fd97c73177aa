"""Blacklist and watchlist entries, kept as tokens and masked forms, with expiry and appeal status."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement, Connection, and_, or_, select, true, update

from server.accounts import ALL_SITES, Principal
from server.db import REGISTRY_LOCK, iso, serialise_writers, utcnow
from server.errors import BadInput, Forbidden, NotFound
from server.idcheck import check_id_number, check_phone, check_usc_code, normalise_phone
from server.links.normalise import normalise_address
from server.privacy import Privacy, mask_id, mask_phone, mask_text
from server.schema import registry_log, watchlist
from server.scope import covers


class WatchScope(StrEnum):
    """Where an entry applies."""

    SITE = "site"
    REGION = "region"
    NETWORK = "network"


SCOPE_HELP = (
    "where the entry applies: site (scope_ref names the site), region (scope_ref names a region of the "
    "server settings' `regions`) or network (every site). Site entries may be set by users holding the "
    "site, region entries by users holding every site of the region, network entries only by holders "
    "of every site ('*'). Default: network for holders of '*', else the caller's only site"
)


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
    scope: WatchScope | None = Field(None, description=SCOPE_HELP)
    scope_ref: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="the site (scope=site) or region (scope=region)"
    )

    @model_validator(mode="after")
    def _check(self) -> WatchRequest:
        if (self.scope in (WatchScope.SITE, WatchScope.REGION)) != (self.scope_ref is not None):
            raise ValueError("scope_ref is required for scope site or region, and only for them")
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
    if req.kind == "address":
        # Normalised as the registry normalises sender addresses, so both spellings match.
        if not normalise_address(value):
            raise BadInput("value: the address has nothing but markers and punctuation", "address")
        return privacy.token("address", normalise_address(value)), mask_text(value)
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
        "scope": row.scope,
        "scope_ref": row.scope_ref,
    }


def scope_sites(scope: str, ref: str | None, regions: dict[str, list[str]]) -> list[str]:
    """The sites an entry applies at ("*": every site); a region missing from the settings has none."""
    if scope == WatchScope.NETWORK:
        return [ALL_SITES]
    if scope == WatchScope.SITE:
        return [ref] if ref else []
    return sorted(regions.get(ref or "", []))


def resolve_scope(
    who: Principal, scope: WatchScope | None, ref: str | None, regions: dict[str, list[str]]
) -> tuple[WatchScope, str | None]:
    """The entry's scope (defaulted from the caller's sites), refused when the caller may not set it."""
    if scope is None:
        if who.all_sites:
            return WatchScope.NETWORK, None
        if len(who.sites) != 1:
            raise BadInput("you hold several sites: say scope and scope_ref", "scope")
        scope, ref = WatchScope.SITE, who.sites[0]
    if scope is WatchScope.REGION and ref not in regions:
        raise BadInput(f"no region {ref!r} in the settings", "scope")
    check_may_set(who, scope, ref, regions)
    return scope, ref


def check_may_set(who: Principal, scope: str, ref: str | None, regions: dict[str, list[str]]) -> None:
    sites = scope_sites(scope, ref, regions)
    if not sites or not covers(who, sites):
        raise Forbidden(f"your sites do not cover the {scope} scope {ref or '*'}")


def applies_at(sites: Iterable[str] | None, regions: dict[str, list[str]]) -> ColumnElement[bool]:
    """WHERE clause: entries that apply at any of `sites` (None: every entry)."""
    if sites is None:
        return true()
    wanted = set(sites)
    near = sorted(name for name, members in regions.items() if wanted & set(members))
    return or_(
        watchlist.c.scope == WatchScope.NETWORK.value,
        and_(watchlist.c.scope == WatchScope.SITE.value, watchlist.c.scope_ref.in_(sorted(wanted))),
        and_(watchlist.c.scope == WatchScope.REGION.value, watchlist.c.scope_ref.in_(near)),
    )


def add_entry(
    conn: Connection,
    privacy: Privacy,
    req: WatchRequest,
    actor: str,
    scope: WatchScope = WatchScope.NETWORK,
    scope_ref: str | None = None,
) -> dict[str, Any]:
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
            scope=scope.value,
            scope_ref=scope_ref,
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


def list_entries(
    conn: Connection,
    limit: int = 500,
    offset: int = 0,
    sites: Iterable[str] | None = None,
    regions: dict[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """Entries that apply at any of `sites` (None: all), newest first."""
    rows = conn.execute(
        select(watchlist)
        .where(applies_at(sites, regions or {}))
        .order_by(watchlist.c.created_at.desc(), watchlist.c.entry_id)
        .limit(limit)
        .offset(offset)
    ).fetchall()
    return [entry_dict(r) for r in rows]
