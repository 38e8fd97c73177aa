"""Request dependencies: the app's services, the caller (bearer token or session cookie) and role checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Response

from server.accounts import Principal, Role, resolve_token
from server.errors import Forbidden, NotAuthenticated
from server.services import Services
from server.sessions import NewSession, check_csrf, principal_from_session

__all__ = [
    "SESSION_COOKIE",
    "PrincipalDep",
    "Services",
    "ServicesDep",
    "get_principal",
    "get_services",
    "require",
    "set_session_cookie",
]

SESSION_COOKIE = "pg_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def set_session_cookie(resp: Response, session: NewSession, svc: Services) -> None:
    """One place decides how the session cookie is sent: HTTP only, same site, secure by setting."""
    resp.set_cookie(
        SESSION_COOKIE,
        session.cookie,
        max_age=session.max_age,
        httponly=True,
        secure=svc.settings.auth.cookie_secure,
        samesite="strict",
        path="/",
    )


def get_services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(get_services)]


def _session_principal(request: Request, svc: Services) -> Principal | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    principal = principal_from_session(svc, cookie)
    if principal is None:
        return None
    if request.method not in SAFE_METHODS:
        check_csrf(svc, cookie, request.headers.get(CSRF_HEADER, ""))
    return principal


def get_principal(request: Request, svc: ServicesDep) -> Principal:
    """The caller, from `Authorization: Bearer` or the session cookie (then unsafe methods need CSRF)."""
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("Authorization must be 'Bearer <token>'")
        with svc.db.read() as conn:
            principal = resolve_token(conn, svc.secret, token.strip())
        if principal is None:
            raise NotAuthenticated("unknown or revoked token")
        return principal
    principal = _session_principal(request, svc)
    if principal is None:
        raise NotAuthenticated("log in or send a bearer token")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: Role | str) -> Callable[[Principal], Principal]:
    """Dependency factory: the caller must hold one of `roles` (a second check; server.authz rules first)."""
    wanted = frozenset(Role(r) for r in roles)  # an unknown role name fails when the app is built

    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in wanted:
            raise Forbidden(f"role {principal.role!r} may not use this endpoint")
        return principal

    return check
