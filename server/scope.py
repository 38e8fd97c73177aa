"""Site scope: which sites' rows a caller may read or change, as query filters and checks, in one place.

A user holds a list of sites, or "*" for every site. The rules:
- reading site data: only rows of the caller's sites (review items, stations, orders, images, audit);
- managing people: an admin acts only on users whose sites all lie within theirs, and grants only sites
  they hold ("*" only when holding "*");
- senders: a record named by review items belongs to those items' sites; one never named by any item
  is shared registry data;
- audit entries carry the sites they concern; a caller lists an entry only when all of them are theirs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, false, select, true

from server.accounts import ALL_SITES, Principal, Role
from server.audit import append_audits
from server.db import insert_rows
from server.errors import Forbidden, NotFound
from server.schema import audit_log, audit_scope, gallery, image_sites, reviews, stations, users


def site_filter(who: Principal, column: Any) -> ColumnElement[bool]:
    """WHERE clause: `column` (a site id) is one of the caller's sites."""
    if who.all_sites:
        return true()
    return column.in_(list(who.sites)) if who.sites else false()


def covers(who: Principal, sites: Iterable[str]) -> bool:
    """Whether every one of `sites` is the caller's; "*" among them needs the caller to hold "*"."""
    if who.all_sites:
        return True
    wanted = set(sites)
    return ALL_SITES not in wanted and wanted <= set(who.sites)


def own_sites(who: Principal) -> list[str]:
    """The sites an action of this caller concerns when it names none."""
    return [ALL_SITES] if who.all_sites else sorted(who.sites)


# --- people -----------------------------------------------------------------------------------------


def check_grant(who: Principal, sites: Iterable[str]) -> None:
    """An admin never grants more than they hold."""
    refused = sorted(s for s in set(sites) if s == ALL_SITES or not who.sees_site(s))
    if refused and not who.all_sites:
        raise Forbidden("you may grant only sites you hold; not " + ", ".join(refused))


def user_sites(conn: Connection, username: str) -> list[str] | None:
    raw = conn.execute(select(users.c.sites).where(users.c.username == username)).scalar()
    return None if raw is None else list(json.loads(raw))


def check_user(conn: Connection, who: Principal, username: str) -> list[str]:
    """The user's sites, when the caller may act on that user; a user beyond them is not shown at all."""
    sites = user_sites(conn, username)
    if sites is None or not covers(who, sites):
        raise NotFound(f"no user {username!r}")
    return sites


def visible_users(conn: Connection, who: Principal) -> list[Any]:
    rows = conn.execute(select(users).order_by(users.c.username)).fetchall()
    return [r for r in rows if covers(who, json.loads(r.sites))]


def station_site(conn: Connection, station_id: str) -> str | None:
    return conn.execute(select(stations.c.site_id).where(stations.c.station_id == station_id)).scalar()


def check_station(conn: Connection, who: Principal, station_id: str) -> str:
    """The station's site, when it is one of the caller's."""
    site = station_site(conn, station_id)
    if site is None or not who.sees_site(site):
        raise NotFound(f"no station {station_id!r}")
    return site


# --- senders ------------------------------------------------------------------------------------------


def sender_sites(conn: Connection, token: str) -> set[str]:
    rows = conn.execute(select(reviews.c.site_id).where(reviews.c.sender_token == token).distinct())
    return {str(r.site_id) for r in rows}


def check_sender(conn: Connection, who: Principal, token: str) -> list[str]:
    """The sites a sender read by this caller concerns; a sender only other sites' items name is hidden."""
    named = sender_sites(conn, token)
    if who.all_sites:
        return sorted(named) or [ALL_SITES]
    if not named:
        return sorted(who.sites)  # shared registry record, not yet any site's case
    mine = sorted(named & set(who.sites))
    if not mine:
        raise NotFound("no such sender")
    return mine


# --- images -------------------------------------------------------------------------------------------


def image_visible(conn: Connection, who: Principal, sha256: str) -> bool:
    """Gallery references serve every station and reader; evidence, callers of a site whose events name it."""
    if conn.execute(select(gallery.c.ref_id).where(gallery.c.image_sha256 == sha256).limit(1)).first():
        return True
    if who.role is Role.STATION:
        return False
    found = conn.execute(
        select(image_sites.c.site_id)
        .where(image_sites.c.sha256 == sha256, site_filter(who, image_sites.c.site_id))
        .limit(1)
    ).first()
    return found is not None


def link_images(conn: Connection, site_id: str, shas: Iterable[str]) -> None:
    """Record that an event of `site_id` names these images (idempotent)."""
    wanted = sorted(set(shas))
    if not wanted:
        return
    held = {
        str(r.sha256)
        for r in conn.execute(
            select(image_sites.c.sha256).where(
                image_sites.c.site_id == site_id, image_sites.c.sha256.in_(wanted)
            )
        )
    }
    # A sync batch names about one image per parcel: inserted in bulk, not row by row.
    insert_rows(conn, "image_sites", ("sha256", "site_id"), [(s, site_id) for s in wanted if s not in held])


# --- audit --------------------------------------------------------------------------------------------


def record(
    conn: Connection,
    secret: str,
    actor: str,
    action: str,
    target: str,
    sites: Iterable[str],
    detail: dict[str, Any] | None = None,
) -> int:
    """Append an audit entry and the sites it concerns (who may list it)."""
    return record_many(conn, secret, actor, action, [(target, sites, detail)])[0]


def record_many(
    conn: Connection,
    secret: str,
    actor: str,
    action: str,
    entries: list[tuple[str, Iterable[str], dict[str, Any] | None]],
) -> list[int]:
    """Append audit entries (target, sites, detail) of one actor and action, with their sites, in a
    handful of statements (a sync batch raises many orders at once)."""
    numbers = append_audits(conn, secret, actor, action, [(target, detail) for target, _s, detail in entries])
    scope_rows = [
        {"n": n, "site_id": s}
        for n, (_t, sites, _d) in zip(numbers, entries, strict=True)
        for s in (sorted({s[:64] for s in sites}) or [ALL_SITES])
    ]
    if scope_rows:
        conn.execute(audit_scope.insert(), scope_rows)
    return numbers


def audit_filter(who: Principal) -> ColumnElement[bool]:
    """WHERE clause on audit_log: entries with sites, every one of them the caller's."""
    if who.all_sites:
        return true()
    beyond = select(audit_scope.c.n).where(audit_scope.c.site_id.not_in(list(who.sites)))
    return and_(audit_log.c.n.in_(select(audit_scope.c.n)), audit_log.c.n.not_in(beyond))
