"""Browser sessions: login with rate limiting, session cookies stored as digests, CSRF tokens, logout."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select

from server.accounts import Principal, load_user, token_digest, verify_password
from server.audit import append_audit
from server.db import LOGIN_LOCK_SPACE, iso, serialise_on_names, utcnow
from server.errors import Forbidden, NotAuthenticated, RateLimited
from server.schema import login_failures, sessions, users
from server.services import Services


@dataclass(frozen=True)
class NewSession:
    """What the login response hands the browser: the cookie value and the CSRF token."""

    cookie: str
    csrf_token: str
    principal: Principal
    max_age: int


def login(svc: Services, username: str, password: str, client: str) -> NewSession:
    """Check the password (rate limited per user and per client address) and open a session.

    Each attempt is counted as a failure *before* its password is checked, in a transaction that
    holds the user's and the address's lock while it counts: of any number of concurrent guesses,
    at most the limit get to the password check. A right password then clears the count.
    """
    now = utcnow()
    user, addr = username[:64], client[:64]
    window_start = iso(now - timedelta(seconds=svc.settings.auth.login_window_seconds))
    with svc.db.write() as conn:
        serialise_on_names(conn, LOGIN_LOCK_SPACE, [f"user:{user}", f"client:{addr}"])
        # Housekeeping on the login path keeps both tables small without a background job.
        conn.execute(delete(login_failures).where(login_failures.c.at <= window_start))
        conn.execute(delete(sessions).where(sessions.c.expires_at <= iso(now)))
        failures = conn.execute(
            select(func.count())
            .select_from(login_failures)
            .where(
                (login_failures.c.username == user) | (login_failures.c.client == addr),
                login_failures.c.at > window_start,
            )
        ).scalar_one()
        limited = failures >= svc.settings.auth.login_max_failures
        if limited:
            append_audit(conn, svc.secret, user, "login_limited", client[:200])
        else:
            conn.execute(login_failures.insert().values(username=user, client=addr, at=iso(now)))
            stored = conn.execute(
                select(users.c.password_hash).where(users.c.username == username, users.c.active.is_(True))
            ).scalar()
    if limited:
        # Raised after the transaction so that the refusal's audit entry is kept.
        raise RateLimited("too many failed logins; wait and try again")
    # The slow hash check runs outside any transaction: no lock is held while it works.
    ok = stored is not None and verify_password(stored, password)
    with svc.db.write() as conn:
        if not ok:
            append_audit(conn, svc.secret, user, "login_failed", client[:200])
        else:
            found = load_user(conn, username)
            if found is None:  # deactivated between the two transactions
                raise NotAuthenticated("wrong username or password", "login_failed")
            principal = found
            cookie = secrets.token_urlsafe(32)
            csrf = secrets.token_urlsafe(24)
            hours = svc.settings.auth.session_hours
            conn.execute(
                sessions.insert().values(
                    session_hash=token_digest(svc.secret, cookie),
                    username=username,
                    csrf_token=csrf,
                    created_at=iso(now),
                    expires_at=iso(now + timedelta(hours=hours)),
                )
            )
            conn.execute(delete(login_failures).where(login_failures.c.username == user))
            append_audit(conn, svc.secret, username, "login", client[:200])
    if not ok:
        # Raised after the transaction so that the failure's audit entry is kept.
        raise NotAuthenticated("wrong username or password", "login_failed")
    return NewSession(cookie, csrf, principal, int(hours * 3600))


def principal_from_session(svc: Services, cookie: str) -> Principal | None:
    with svc.db.read() as conn:
        row = conn.execute(
            select(sessions.c.username, sessions.c.expires_at).where(
                sessions.c.session_hash == token_digest(svc.secret, cookie)
            )
        ).first()
        if row is None or row.expires_at <= iso(utcnow()):
            return None
        user = load_user(conn, row.username)
    if user is None:
        return None
    return Principal(user.kind, user.name, user.role, user.sites, via_session=True)


def csrf_for(svc: Services, cookie: str) -> str | None:
    with svc.db.read() as conn:
        value = conn.execute(
            select(sessions.c.csrf_token).where(sessions.c.session_hash == token_digest(svc.secret, cookie))
        ).scalar()
    return str(value) if value is not None else None


def check_csrf(svc: Services, cookie: str, presented: str) -> None:
    """Unsafe requests made with a session cookie must echo the session's CSRF token in a header."""
    expected = csrf_for(svc, cookie)
    if expected is None or not presented or not hmac.compare_digest(expected, presented):
        raise Forbidden("missing or wrong CSRF token (send it in the X-CSRF-Token header)", "csrf")


def logout(svc: Services, cookie: str) -> None:
    with svc.db.write() as conn:
        conn.execute(delete(sessions).where(sessions.c.session_hash == token_digest(svc.secret, cookie)))
