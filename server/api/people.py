"""Access endpoints: login and sessions, users, stations, sender records with audited reveal, audit log."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select, update

from server.accounts import (
    USER_ROLES,
    Role,
    add_user,
    issue_user_token,
    revoke_station_tokens,
    upsert_station,
)
from server.api.responses import (
    AuditCheck,
    AuditEntry,
    Deactivated,
    LoggedOut,
    LoginReply,
    Me,
    Revoked,
    SenderMasked,
    SenderRevealed,
    StationItem,
    StationRegistered,
    TokenReply,
    UserItem,
)
from server.audit_checkpoint import verify_with_checkpoints
from server.authz import Caller
from server.deps import SESSION_COOKIE, ServicesDep, set_session_cookie
from server.errors import BadInput as ApiBadInput
from server.errors import NotFound, UserError
from server.schema import audit_log, senders, stations, users
from server.scope import (
    audit_filter,
    check_grant,
    check_sender,
    check_station,
    check_user,
    record,
    site_filter,
    station_site,
    visible_users,
)
from server.sessions import login, logout

# Who may call each route is in server.authz.RULES; an admin manages only people and stations of their
# sites (server.scope) and never grants more than they hold.
router = APIRouter(prefix="/api/v1", tags=["access"])

Token = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="sender token")]


class LoginRequest(BaseModel):
    """Username and password for a browser session."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, description="user name")
    password: str = Field(min_length=1, max_length=256, description="password")


@router.post(
    "/auth/login", response_model=LoginReply, summary="Open a browser session (cookie) and get its CSRF token"
)
def post_login(body: LoginRequest, request: Request, svc: ServicesDep) -> JSONResponse:
    client = request.client.host if request.client else "unknown"
    session = login(svc, body.username, body.password, client)
    resp = JSONResponse(
        {"username": session.principal.name, "role": session.principal.role, "csrf_token": session.csrf_token}
    )
    set_session_cookie(resp, session, svc)
    return resp


@router.post("/auth/logout", response_model=LoggedOut, summary="Close the browser session")
def post_logout(request: Request, who: Caller, svc: ServicesDep) -> JSONResponse:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        logout(svc, cookie)
    resp = JSONResponse({"logged_out": True})
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/auth/me", response_model=Me, summary="Who the caller is")
def get_me(who: Caller) -> dict[str, Any]:
    return {"name": who.name, "kind": who.kind, "role": who.role, "sites": list(who.sites)}


class UserRequest(BaseModel):
    """A new user; an admin may add users only within their own sites."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="user name")
    password: str = Field(min_length=10, max_length=256, description="password (at least 10 characters)")
    role: Role = Field(description="role: operator, officer, supervisor or admin")
    sites: list[Annotated[str, Field(pattern=r"^([A-Za-z0-9_.@-]{1,64}|\*)$")]] = Field(
        min_length=1,
        max_length=100,
        description="sites the user may see; ['*'] for all. Only sites the caller holds ('*' only by '*')",
    )

    @field_validator("role")
    @classmethod
    def _user_role(cls, value: Role) -> Role:
        if value not in USER_ROLES:
            raise ValueError("must be one of " + ", ".join(USER_ROLES))
        return value


@router.get("/users", response_model=list[UserItem], summary="List users")
def get_users(who: Caller, svc: ServicesDep) -> list[dict[str, Any]]:
    with svc.db.read() as conn:
        rows = visible_users(conn, who)
    return [
        {"username": r.username, "role": r.role, "sites": json.loads(r.sites), "active": bool(r.active)}
        for r in rows
    ]


@router.post("/users", status_code=201, response_model=UserItem, summary="Add a user")
def post_user(body: UserRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    check_grant(who, body.sites)
    with svc.db.write() as conn:
        try:
            add_user(conn, body.username, body.password, body.role, body.sites)
        except UserError as exc:
            raise ApiBadInput(str(exc), "user") from exc
        detail = {"role": body.role.value, "sites": body.sites}
        record(conn, svc.secret, who.name, "user_add", body.username, body.sites, detail)
    return {"username": body.username, "role": body.role, "sites": body.sites, "active": True}


@router.post(
    "/users/{username}/tokens",
    status_code=201,
    response_model=TokenReply,
    summary="Issue an API token for a user",
)
def post_user_token(
    username: Annotated[str, Path(max_length=64)], who: Caller, svc: ServicesDep
) -> dict[str, str]:
    with svc.db.write() as conn:
        sites = check_user(conn, who, username)
        try:
            token = issue_user_token(conn, svc.secret, username)
        except UserError as exc:
            raise NotFound(str(exc)) from exc
        record(conn, svc.secret, who.name, "token_issue", username, sites)
    return {"token": token}


@router.post("/users/{username}/deactivate", response_model=Deactivated, summary="Deactivate a user")
def deactivate_user(
    username: Annotated[str, Path(max_length=64)], who: Caller, svc: ServicesDep
) -> dict[str, Any]:
    with svc.db.write() as conn:
        sites = check_user(conn, who, username)
        n = conn.execute(update(users).where(users.c.username == username).values(active=False)).rowcount
        if n != 1:
            raise NotFound(f"no user {username!r}")
        record(conn, svc.secret, who.name, "user_deactivate", username, sites)
    return {"username": username, "active": False}


class StationRequest(BaseModel):
    """A station to register (or move); the reply carries its one bearer token."""

    model_config = ConfigDict(extra="forbid")

    station_id: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="station id")
    site_id: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="site of the station")
    line_id: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="sorting line of the station")


@router.get("/stations", response_model=list[StationItem], summary="List stations")
def get_stations(who: Caller, svc: ServicesDep) -> list[dict[str, Any]]:
    with svc.db.read() as conn:
        query = select(stations).where(site_filter(who, stations.c.site_id)).order_by(stations.c.station_id)
        rows = conn.execute(query).fetchall()
    return [
        {
            "station_id": r.station_id,
            "site_id": r.site_id,
            "line_id": r.line_id,
            "active": bool(r.active),
            "last_seen_at": r.last_seen_at,
        }
        for r in rows
    ]


@router.post(
    "/stations",
    status_code=201,
    response_model=StationRegistered,
    summary="Register a station and issue its token",
)
def post_station(body: StationRequest, who: Caller, svc: ServicesDep) -> dict[str, str]:
    check_grant(who, [body.site_id])
    with svc.db.write() as conn:
        before = station_site(conn, body.station_id)
        if before is not None:
            check_station(conn, who, body.station_id)  # moving another site's station would take it over
        token = upsert_station(conn, svc.secret, body.station_id, body.site_id, body.line_id)
        sites = {body.site_id, before or body.site_id}
        record(conn, svc.secret, who.name, "station_register", body.station_id, sites, body.model_dump())
    return {**body.model_dump(), "token": token}


@router.post("/stations/{station_id}/revoke", response_model=Revoked, summary="Revoke a station's token")
def revoke_station(
    station_id: Annotated[str, Path(max_length=64)], who: Caller, svc: ServicesDep
) -> dict[str, Any]:
    with svc.db.write() as conn:
        site = check_station(conn, who, station_id)
        n = revoke_station_tokens(conn, station_id)
        record(conn, svc.secret, who.name, "station_revoke", station_id, [site])
    return {"station_id": station_id, "revoked": n}


def _masked(row: Any) -> dict[str, Any]:
    return {
        "sender_token": row.sender_token,
        "id_type": row.id_type,
        "id_masked": row.id_masked,
        "name_masked": row.name_masked,
        "phone_masked": row.phone_masked,
        "verified": bool(row.verified),
        "verified_at": row.verified_at,
        "outlet": row.outlet,
        "courier": row.courier,
        "agreement_customer": bool(row.agreement_customer),
        "usc_code": row.usc_code,
        "qualification": row.qualification,
        "updated_at": row.updated_at,
    }


@router.get("/senders/{token}", response_model=SenderMasked, summary="A sender record, masked")
def get_sender(token: Token, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.read() as conn:
        check_sender(conn, who, token)
        row = conn.execute(select(senders).where(senders.c.sender_token == token)).first()
    if row is None:
        raise NotFound("no such sender")
    return _masked(row)


class RevealRequest(BaseModel):
    """Why the full record is needed; kept in the audit log."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=10, max_length=500, description="case and purpose (at least 10 characters)"
    )


@router.post(
    "/senders/{token}/reveal",
    response_model=SenderRevealed,
    summary="Reveal a full sender record (officers; audited)",
)
def reveal_sender(token: Token, body: RevealRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    if not body.reason.strip() or len(body.reason.strip()) < 10:
        raise ApiBadInput("reason must say why (at least 10 characters)", "reason")
    with svc.db.write() as conn:
        sites = check_sender(conn, who, token)
        row = conn.execute(select(senders).where(senders.c.sender_token == token)).first()
        if row is None:
            raise NotFound("no such sender")
        full = svc.privacy.unseal(row.sealed)
        detail = {"reason": body.reason.strip()}
        record(conn, svc.secret, who.name, "reveal", f"sender:{token}", sites, detail)
    return {**_masked(row), **full}


@router.get("/audit", response_model=list[AuditEntry], summary="Audit log entries, newest first")
def get_audit(
    who: Caller,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="entries numbered below this")] = None,
) -> list[dict[str, Any]]:
    query = select(audit_log).where(audit_filter(who)).order_by(audit_log.c.n.desc()).limit(limit)
    if before is not None:
        query = query.where(audit_log.c.n < before)
    with svc.db.read() as conn:
        rows = conn.execute(query).fetchall()
    return [
        {
            "n": int(r.n),
            "at": r.at,
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "detail": json.loads(r.detail),
            "hash": r.hash,
        }
        for r in rows
    ]


@router.get("/audit/verify", response_model=AuditCheck, summary="Check the audit hash chain")
def get_audit_verify(who: Caller, svc: ServicesDep) -> dict[str, Any]:
    # The chain alone cannot see a cut tail; the signed checkpoints outside the database can.
    report = verify_with_checkpoints(svc.db, svc.secret, svc.settings.audit.checkpoint_dir)
    return {"entries": report.entries, "ok": report.ok, "problems": report.problems}
