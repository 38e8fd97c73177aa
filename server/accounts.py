"""Users, roles, password hashing (argon2), bearer tokens for users and stations, and who a caller is."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, select, update

from server.db import iso, utcnow
from server.errors import UserError
from server.schema import api_tokens, stations, users


class Role(StrEnum):
    """What a caller is; a station token is a caller too. Values are what the users table stores."""

    OPERATOR = "operator"
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    STATION = "station"


USER_ROLES = (Role.OPERATOR, Role.OFFICER, Role.SUPERVISOR, Role.ADMIN)
ROLES = tuple(str(r) for r in USER_ROLES)
ALL_SITES = "*"
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user with a role and sites, or a station with its site and line."""

    kind: Literal["user", "station"]
    name: str
    role: Role
    sites: tuple[str, ...]
    line_id: str | None = None
    via_session: bool = False

    @property
    def all_sites(self) -> bool:
        return ALL_SITES in self.sites

    def sees_site(self, site_id: str | None) -> bool:
        """Whether this caller may read or act on `site_id` (None: the whole network)."""
        if self.all_sites:
            return True
        return site_id is not None and site_id in self.sites


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(secret_key: str, token: str) -> str:
    """Tokens are stored only as a keyed digest: a copied database does not yield usable tokens."""
    return hmac.new(secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


def check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise UserError(f"{what} {value!r} must be 1-64 letters, digits or _.@-")
    return value


def add_user(conn: Connection, username: str, password: str, role: str, sites: list[str]) -> None:
    check_name(username, "username")
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise UserError("password must be at least 10 characters")
    if not sites:
        raise UserError("a user needs at least one site (or '*' for every site)")
    for site in sites:
        if site != ALL_SITES:
            check_name(site, "site")
    if conn.execute(select(users.c.id).where(users.c.username == username)).first():
        raise UserError(f"user {username!r} already exists")
    conn.execute(
        users.insert().values(
            username=username,
            password_hash=hash_password(password),
            role=role,
            sites=json.dumps(sorted(set(sites))),
            active=True,
            created_at=iso(utcnow()),
        )
    )


def load_user(conn: Connection, username: str) -> Principal | None:
    row = conn.execute(
        select(users.c.role, users.c.sites).where(users.c.username == username, users.c.active.is_(True))
    ).first()
    if row is None:
        return None
    return Principal("user", username, Role(row.role), tuple(json.loads(row.sites)))


def issue_user_token(conn: Connection, secret_key: str, username: str) -> str:
    if load_user(conn, username) is None:
        raise UserError(f"no active user {username!r}")
    token = "pgu_" + secrets.token_urlsafe(32)
    conn.execute(
        api_tokens.insert().values(
            token_hash=token_digest(secret_key, token),
            kind="user",
            username=username,
            created_at=iso(utcnow()),
        )
    )
    return token


def upsert_station(conn: Connection, secret_key: str, station_id: str, site_id: str, line_id: str) -> str:
    """Create or move a station and issue its one token; any earlier token of the station is revoked."""
    for value, what in ((station_id, "station"), (site_id, "site"), (line_id, "line")):
        check_name(value, what)
    now = iso(utcnow())
    if conn.execute(select(stations.c.station_id).where(stations.c.station_id == station_id)).first():
        conn.execute(
            update(stations)
            .where(stations.c.station_id == station_id)
            .values(site_id=site_id, line_id=line_id, active=True)
        )
    else:
        conn.execute(
            stations.insert().values(
                station_id=station_id, site_id=site_id, line_id=line_id, active=True, created_at=now
            )
        )
    revoke_station_tokens(conn, station_id)
    token = "pgs_" + secrets.token_urlsafe(32)
    conn.execute(
        api_tokens.insert().values(
            token_hash=token_digest(secret_key, token), kind="station", station_id=station_id, created_at=now
        )
    )
    return token


def has_live_station_token(conn: Connection, station_id: str) -> bool:
    """Whether the station holds a token that still works."""
    row = conn.execute(
        select(api_tokens.c.token_hash).where(
            api_tokens.c.station_id == station_id, api_tokens.c.revoked_at.is_(None)
        )
    ).first()
    return row is not None


def revoke_station_tokens(conn: Connection, station_id: str) -> int:
    result = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.station_id == station_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=iso(utcnow()))
    )
    return int(result.rowcount)


def resolve_token(conn: Connection, secret_key: str, token: str) -> Principal | None:
    """The caller a bearer token stands for, or None when unknown or revoked."""
    row = conn.execute(
        select(api_tokens.c.kind, api_tokens.c.username, api_tokens.c.station_id).where(
            api_tokens.c.token_hash == token_digest(secret_key, token), api_tokens.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    if row.kind == "user":
        return load_user(conn, row.username)
    st = conn.execute(
        select(stations.c.site_id, stations.c.line_id).where(
            stations.c.station_id == row.station_id, stations.c.active.is_(True)
        )
    ).first()
    if st is None:
        return None
    return Principal("station", row.station_id, Role.STATION, (st.site_id,), line_id=st.line_id)
