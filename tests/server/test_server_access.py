"""Access control on both engines: role x site x route matrix, sessions with CSRF, login limits, audit."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from fastapi import APIRouter
from fastapi.testclient import TestClient

from edge.cli import main as cli_main
from server import admin
from server.accounts import Principal, Role
from server.app import create_app
from server.authz import route_table, rule_for
from server.cases import holders, notices, store
from server.db import normalise_url
from server.schema import link_clusters, reviews
from server.settings import DEFAULT_LEGAL_BASES
from tests.server.conftest import _event, png

# --- role x site x route -------------------------------------------------------------------------------
# Expected rule of every route, written here independently of server.authz: who may call it and how the
# caller's sites bound it. "public": anyone; "none": sites do not matter; "scoped": own site yes, other
# site no, all sites yes; "network": only holders of every site.
OFF, SUP, ADM, OPR, STN = "officer", "supervisor", "admin", "operator", "station"
ANY_CALLER = frozenset({OFF, SUP, ADM, OPR, STN})
PUBLIC: tuple[frozenset[str], str] = (frozenset(), "public")
V1 = "/api/v1"
EXPECT: dict[tuple[str, str], tuple[frozenset[str], str]] = {
    ("POST", f"{V1}/sync"): (frozenset({STN}), "scoped"),
    ("PUT", f"{V1}/images/{{sha256}}"): (frozenset({STN}), "none"),
    ("GET", f"{V1}/orders/poll"): (frozenset({STN}), "scoped"),
    ("POST", f"{V1}/senders/import"): (frozenset({OFF, ADM}), "none"),
    ("POST", f"{V1}/manifests/import"): (frozenset({OFF, ADM}), "none"),
    ("POST", f"{V1}/watchlist"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", f"{V1}/watchlist"): (frozenset({OFF, ADM, SUP}), "scoped"),
    ("PATCH", f"{V1}/watchlist/{{entry_id}}"): (frozenset({OFF, ADM}), "scoped"),
    ("POST", f"{V1}/orders"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", f"{V1}/orders"): (frozenset({OFF, ADM, SUP, OPR}), "scoped"),
    ("GET", f"{V1}/reports/daily"): (frozenset({SUP, ADM}), "scoped"),
    ("GET", f"{V1}/reviews"): (frozenset({OFF, SUP, ADM}), "scoped"),
    ("GET", f"{V1}/reviews/{{item_id}}"): (frozenset({OFF, SUP, ADM}), "scoped"),
    ("POST", f"{V1}/reviews/{{item_id}}/claim"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/reviews/{{item_id}}/unclaim"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/reviews/{{item_id}}/decision"): (frozenset({OFF}), "scoped"),
    # Stations read gallery references only (test_server_reviews), never evidence, not even their own.
    ("GET", f"{V1}/images/{{sha256}}"): (frozenset({OFF, SUP, ADM}), "scoped"),
    ("POST", f"{V1}/auth/login"): PUBLIC,
    ("POST", f"{V1}/auth/logout"): (ANY_CALLER, "none"),
    ("GET", f"{V1}/auth/me"): (ANY_CALLER, "none"),
    ("GET", f"{V1}/users"): (frozenset({ADM}), "scoped"),
    ("POST", f"{V1}/users"): (frozenset({ADM}), "scoped"),
    ("POST", f"{V1}/users/{{username}}/tokens"): (frozenset({ADM}), "scoped"),
    ("POST", f"{V1}/users/{{username}}/deactivate"): (frozenset({ADM}), "scoped"),
    ("GET", f"{V1}/stations"): (frozenset({ADM}), "scoped"),
    ("POST", f"{V1}/stations"): (frozenset({ADM}), "scoped"),
    ("POST", f"{V1}/stations/{{station_id}}/revoke"): (frozenset({ADM}), "scoped"),
    ("GET", f"{V1}/senders/{{token}}"): (frozenset({OFF, SUP, ADM}), "scoped"),
    ("POST", f"{V1}/senders/{{token}}/reveal"): (frozenset({OFF}), "scoped"),
    ("GET", f"{V1}/audit"): (frozenset({ADM}), "scoped"),
    ("POST", f"{V1}/evidence/bundles"): (frozenset({OFF, ADM}), "scoped"),
    ("POST", f"{V1}/referrals"): (frozenset({OFF}), "scoped"),
    ("GET", f"{V1}/referrals/{{referral_id}}"): (frozenset({OFF, SUP, ADM}), "scoped"),
    ("GET", f"{V1}/referrals/{{referral_id}}/package"): (frozenset({OFF, ADM}), "scoped"),
    ("POST", f"{V1}/referrals/{{referral_id}}/reply"): (frozenset({OFF}), "scoped"),
    ("GET", f"{V1}/audit/verify"): (frozenset({ADM}), "network"),
    ("PUT", f"{V1}/models/{{name}}/{{version}}"): (frozenset({ADM}), "network"),
    ("POST", f"{V1}/models/{{name}}/{{version}}/mode"): (frozenset({ADM}), "network"),
    ("GET", f"{V1}/models"): (frozenset({STN, ADM, OFF}), "none"),
    ("GET", f"{V1}/models/gallery"): (frozenset({STN, ADM, OFF}), "none"),
    ("GET", f"{V1}/models/{{name}}/{{version}}/blob"): (frozenset({STN, ADM, OFF}), "none"),
    # Cases: officers work them, supervisors and admins read; the rights holders registry is shared.
    ("GET", f"{V1}/cases"): (frozenset({OFF, SUP, ADM}), "scoped"),
    ("POST", f"{V1}/cases"): (frozenset({OFF}), "scoped"),
    ("GET", f"{V1}/cases/{{case_id}}"): (frozenset({OFF, SUP, ADM}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/items"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/owner"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/rights-holder"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/steps"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/notify"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/notices/{{notice_id}}/send"): (frozenset({OFF}), "scoped"),
    ("GET", f"{V1}/cases/{{case_id}}/notices/{{notice_id}}/eml"): (frozenset({OFF, SUP, ADM}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/delivered"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/reply"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/samples"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/disposals"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/cases/{{case_id}}/photos"): (frozenset({OFF}), "scoped"),
    ("GET", f"{V1}/rights-holders"): (frozenset({OFF, SUP, ADM}), "none"),
    ("POST", f"{V1}/rights-holders"): (frozenset({OFF, ADM}), "none"),
    ("PATCH", f"{V1}/rights-holders/{{holder_id}}"): (frozenset({OFF, ADM}), "none"),
    ("GET", "/desk/cases"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", "/desk/cases/{case_ref}"): (frozenset({OFF, ADM}), "scoped"),
    ("POST", f"{V1}/holds"): (frozenset({OFF, ADM}), "scoped"),
    ("POST", f"{V1}/holds/{{hold_id}}/release"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", f"{V1}/holds"): (frozenset({OFF, SUP, ADM}), "scoped"),
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("GET", "/web/static/{name}"): PUBLIC,
    ("GET", "/desk"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", "/desk/items/{item_ref}"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", "/desk/links/senders/{token}"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", "/desk/links/clusters/{cluster_id}"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", "/desk/images/{sha256}/pixels"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", "/report"): (frozenset({SUP, ADM}), "scoped"),
    ("GET", "/report/download"): (frozenset({SUP, ADM}), "scoped"),
    ("GET", "/stations"): (frozenset({SUP, ADM}), "scoped"),
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/docs/assets/{name}"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    # Only the scrape token opens it: no user or station credential does (test_server_operations).
    ("GET", "/metrics"): (frozenset(), "none"),
    # The desk made for throughput and the administration pages.
    ("POST", f"{V1}/reviews/bulk-release"): (frozenset({OFF}), "scoped"),
    ("POST", f"{V1}/orders/{{order_id}}/cancel"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", f"{V1}/reviews/next"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", "/desk/stream"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", "/desk/orders"): (frozenset({OFF, ADM}), "scoped"),
    ("GET", "/admin/users"): (frozenset({ADM}), "scoped"),
    ("GET", "/admin/stations"): (frozenset({ADM}), "scoped"),
    ("GET", "/admin/watchlist"): (frozenset({ADM}), "scoped"),
}


@dataclass
class Call:
    """One request of the matrix: where, with what body, and (for listings) the target site's marker."""

    url: str
    json: Any = None
    content: bytes | None = None
    ctype: str | None = None
    marker: str | None = None  # listing: text present only when the target site's rows are shown


Builder = Callable[[Any, Any, str, str], Call]  # (server, world, target site, unique tag) -> Call
TODAY = date.today().isoformat()


def _fresh_user(server: Any, world: Any, site: str, tag: str) -> str:
    admin.create_user(server.settings, f"d{tag}", world.password, "operator", [site])
    return f"d{tag}"


def _phone(tag: str) -> str:
    return "139" + hashlib.sha256(tag.encode()).hexdigest()[:8].translate(str.maketrans("abcdef", "123456"))


BUILD: dict[tuple[str, str], Builder] = {
    ("POST", f"{V1}/sync"): lambda s, w, site, t: Call(
        f"{V1}/sync", {"station_id": "st-a", "boot_id": "m", "events": []}, marker=w.watch_token[site]
    ),
    ("PUT", f"{V1}/images/{{sha256}}"): lambda s, w, site, t: Call(
        f"{V1}/images/{hashlib.sha256(_png(t)).hexdigest()}", content=_png(t), ctype="image/png"
    ),
    ("GET", f"{V1}/orders/poll"): lambda s, w, site, t: Call(
        f"{V1}/orders/poll?timeout=0", marker=w.order_waybill[site]
    ),
    ("POST", f"{V1}/senders/import"): lambda s, w, site, t: Call(
        f"{V1}/senders/import", content=w.senders_csv.encode(), ctype="text/csv"
    ),
    ("POST", f"{V1}/manifests/import"): lambda s, w, site, t: Call(
        f"{V1}/manifests/import",
        [{"waybill": f"WBM{t}", "sender_id_type": "resident_id", "sender_id_number": w.ids[site]}],
    ),
    ("POST", f"{V1}/watchlist"): lambda s, w, site, t: Call(
        f"{V1}/watchlist",
        {
            "list": "watchlist",
            "kind": "phone",
            "value": _phone(t),
            "reason": "r",
            "source": "s",
            "scope": "site",
            "scope_ref": site,
        },
    ),
    ("GET", f"{V1}/watchlist"): lambda s, w, site, t: Call(f"{V1}/watchlist", marker=w.watch_token[site]),
    ("PATCH", f"{V1}/watchlist/{{entry_id}}"): lambda s, w, site, t: Call(
        f"{V1}/watchlist/{w.watch[site]}", {"appeal_status": "pending"}
    ),
    ("POST", f"{V1}/orders"): lambda s, w, site, t: Call(
        f"{V1}/orders", {"scope": "waybill", "waybill": f"WBO{t}", "reason": "r", "site_id": site}
    ),
    ("GET", f"{V1}/orders"): lambda s, w, site, t: Call(f"{V1}/orders", marker=w.order_waybill[site]),
    ("GET", f"{V1}/reports/daily"): lambda s, w, site, t: Call(
        f"{V1}/reports/daily?date={TODAY}&site={site}"
    ),
    ("GET", f"{V1}/reviews"): lambda s, w, site, t: Call(f"{V1}/reviews", marker=w.waybill[site]),
    ("GET", f"{V1}/reviews/{{item_id}}"): lambda s, w, site, t: Call(f"{V1}/reviews/{w.item[site]}"),
    ("POST", f"{V1}/reviews/{{item_id}}/claim"): lambda s, w, site, t: Call(
        f"{V1}/reviews/{w.item[site]}/claim"
    ),
    ("POST", f"{V1}/reviews/{{item_id}}/unclaim"): lambda s, w, site, t: Call(
        f"{V1}/reviews/{w.item[site]}/unclaim"
    ),
    ("POST", f"{V1}/reviews/{{item_id}}/decision"): lambda s, w, site, t: Call(
        f"{V1}/reviews/{w.item[site]}/decision", {"action": "open_inspection", "fields": {"note": "n"}}
    ),
    ("GET", f"{V1}/images/{{sha256}}"): lambda s, w, site, t: Call(f"{V1}/images/{w.image[site]}"),
    ("GET", f"{V1}/users"): lambda s, w, site, t: Call(f"{V1}/users", marker=f'"{w.user[site]}"'),
    ("POST", f"{V1}/users"): lambda s, w, site, t: Call(
        f"{V1}/users", {"username": f"n{t}", "password": w.password, "role": "operator", "sites": [site]}
    ),
    ("POST", f"{V1}/users/{{username}}/tokens"): lambda s, w, site, t: Call(
        f"{V1}/users/{w.user[site]}/tokens"
    ),
    ("POST", f"{V1}/users/{{username}}/deactivate"): lambda s, w, site, t: Call(
        f"{V1}/users/{_fresh_user(s, w, site, t)}/deactivate"
    ),
    ("GET", f"{V1}/stations"): lambda s, w, site, t: Call(f"{V1}/stations", marker=f'"{w.station[site]}"'),
    ("POST", f"{V1}/stations"): lambda s, w, site, t: Call(
        f"{V1}/stations", {"station_id": f"s{t}", "site_id": site, "line_id": "l1"}
    ),
    ("POST", f"{V1}/stations/{{station_id}}/revoke"): lambda s, w, site, t: Call(
        f"{V1}/stations/{t}/revoke" if admin.register_station(s.settings, t, site, "l1") else ""
    ),
    ("GET", f"{V1}/senders/{{token}}"): lambda s, w, site, t: Call(f"{V1}/senders/{w.sender[site]}"),
    ("POST", f"{V1}/senders/{{token}}/reveal"): lambda s, w, site, t: Call(
        f"{V1}/senders/{w.sender[site]}/reveal", {"reason": "case 2026-1 counterfeit check"}
    ),
    ("GET", f"{V1}/audit"): lambda s, w, site, t: Call(f"{V1}/audit?limit=1000", marker=f'"{w.user[site]}"'),
    ("PUT", f"{V1}/models/{{name}}/{{version}}"): lambda s, w, site, t: Call(
        f"{V1}/models/m/{t}", content=b"not a model", ctype="application/octet-stream"
    ),
    ("POST", f"{V1}/models/{{name}}/{{version}}/mode"): lambda s, w, site, t: Call(
        f"{V1}/models/m/1/mode", {"mode": "shadow"}
    ),
    ("GET", f"{V1}/models/{{name}}/{{version}}/blob"): lambda s, w, site, t: Call(f"{V1}/models/m/1/blob"),
    ("POST", f"{V1}/evidence/bundles"): lambda s, w, site, t: Call(
        f"{V1}/evidence/bundles", {"item_ids": [w.item[site]]}
    ),
    ("POST", f"{V1}/referrals"): lambda s, w, site, t: Call(
        f"{V1}/referrals",
        {"item_ids": [_referred(s, w, site)[0]], "legal_basis": "《商标法》第六十条、第六十一条"},
    ),
    ("GET", f"{V1}/referrals/{{referral_id}}"): lambda s, w, site, t: Call(
        f"{V1}/referrals/{_referred(s, w, site)[1]}"
    ),
    ("GET", f"{V1}/referrals/{{referral_id}}/package"): lambda s, w, site, t: Call(
        f"{V1}/referrals/{_referred(s, w, site)[1]}/package"
    ),
    ("POST", f"{V1}/referrals/{{referral_id}}/reply"): lambda s, w, site, t: Call(
        f"{V1}/referrals/{_referred(s, w, site)[1]}/reply", {"authority_case_number": f"N{t}"}
    ),
    ("POST", f"{V1}/holds"): lambda s, w, site, t: Call(
        f"{V1}/holds", {"target_type": "review", "target_id": str(w.item[site]), "reason": f"case {t}"}
    ),
    ("POST", f"{V1}/holds/{{hold_id}}/release"): lambda s, w, site, t: Call(
        f"{V1}/holds/{_live_hold(s, w, site, t)}/release", {"reason": f"closed {t}"}
    ),
    ("GET", f"{V1}/holds"): lambda s, w, site, t: Call(f"{V1}/holds", marker=f'"site_id":"{site}"'),
    ("POST", "/login"): lambda s, w, site, t: Call("/login"),
    ("GET", "/web/static/{name}"): lambda s, w, site, t: Call("/web/static/web.css"),
    ("GET", "/docs/assets/{name}"): lambda s, w, site, t: Call("/docs/assets/swagger-ui.css"),
    ("GET", "/desk"): lambda s, w, site, t: Call("/desk?q=WBSITE", marker=w.waybill[site]),
    ("GET", "/desk/items/{item_ref}"): lambda s, w, site, t: Call(f"/desk/items/{w.item[site]}"),
    ("GET", "/desk/links/senders/{token}"): lambda s, w, site, t: Call(
        f"/desk/links/senders/{w.sender[site]}"
    ),
    ("GET", "/desk/links/clusters/{cluster_id}"): lambda s, w, site, t: Call(
        f"/desk/links/clusters/{_cluster(s, site, t)}"
    ),
    ("GET", "/desk/images/{sha256}/pixels"): lambda s, w, site, t: Call(
        f"/desk/images/{w.image[site]}/pixels"
    ),
    ("GET", "/report"): lambda s, w, site, t: Call(f"/report?site={site}"),
    ("GET", "/report/download"): lambda s, w, site, t: Call(f"/report/download?site={site}&date={TODAY}"),
    ("GET", "/stations"): lambda s, w, site, t: Call(
        f"/stations?site={site}", marker={"site1": "st-a", "site2": "st-c"}[site]
    ),
    # An open HOLD of risk 0.8 is no bulk candidate: allowed callers get 409, others never see it (404).
    ("POST", f"{V1}/reviews/bulk-release"): lambda s, w, site, t: Call(
        f"{V1}/reviews/bulk-release", {"item_ids": [w.item[site]], "reason": "genuine goods checked"}
    ),
    ("POST", f"{V1}/orders/{{order_id}}/cancel"): lambda s, w, site, t: Call(
        f"{V1}/orders/{_order_id(s, w, site)}/cancel", {"reason": "tip-off withdrawn by the brand"}
    ),
    ("GET", f"{V1}/reviews/next"): lambda s, w, site, t: Call(f"{V1}/reviews/next?after={w.item[site]}"),
    ("GET", "/desk/stream"): lambda s, w, site, t: Call(f"/desk/stream?once=1&site={site}"),
    ("GET", "/desk/orders"): lambda s, w, site, t: Call("/desk/orders", marker=w.order_waybill[site]),
    ("GET", "/admin/users"): lambda s, w, site, t: Call("/admin/users", marker=f">{w.user[site]}<"),
    ("GET", "/admin/stations"): lambda s, w, site, t: Call(
        "/admin/stations", marker={"site1": ">st-a<", "site2": ">st-c<"}[site]
    ),
    ("GET", "/admin/watchlist"): lambda s, w, site, t: Call("/admin/watchlist", marker=f"watch of {site}"),
}


DETAIN_FIELDS = {"legal_basis": DEFAULT_LEGAL_BASES[3], "storage_location": "证物库 3"}


def _referred(server: Any, world: Any, site: str) -> tuple[int, int]:
    """The site's shared item decided `refer` and one referral of it, made once per world."""
    made: dict[str, tuple[int, int]] = world.__dict__.setdefault("referred", {})
    if site not in made:
        from server.accounts import Principal, Role
        from server.db import utcnow
        from server.evidence.referrals import create_referral
        from server.reviews import act

        svc = server.client.app.state.services
        who = Principal(kind="user", name=f"ref-{site}", role=Role.OFFICER, sites=(site,))
        item = world.shared_item[site]
        fields = {"authority": "police", "case_reference": f"R-{site}"}
        with svc.db.write() as conn:
            act(conn, item, who, "claim", utcnow(), svc.settings)
            act(conn, item, who, "refer", utcnow(), svc.settings, fields)
            ref = create_referral(
                conn, who, [item], None, "《商标法》第六十条、第六十一条", svc.settings, svc.privacy, utcnow()
            )
        made[site] = (item, int(ref["id"]))
    return made[site]


def _order_id(server: Any, world: Any, site: str) -> str:
    orders = server.client.get(f"{V1}/orders", headers=server.admin).json()
    return str(next(o["order_id"] for o in orders if o["waybill"] == world.order_waybill[site]))
def _live_hold(server: Any, world: Any, site: str, tag: str) -> int:
    """A live hold on the site's shared item (placed by the all-sites admin unless one is live already)."""
    target = str(world.shared_item[site])
    body = {"target_type": "review", "target_id": target, "reason": f"case {tag}"}
    r = server.client.post(f"{V1}/holds", json=body, headers=server.admin)
    if r.status_code == 201:
        return int(r.json()["id"])
    assert r.status_code == 409, r.text
    live = server.client.get(f"{V1}/holds", headers=server.admin).json()
    return next(int(h["id"]) for h in live if h["target_id"] == target)


def _cluster(s: Any, site: str, tag: str) -> str:
    """A split-shipment cluster of `site`, as the links job stores one."""
    cluster_id = str(uuid.uuid5(uuid.NAMESPACE_URL, tag))
    now = "2026-01-01T00:00:00+00:00"
    with s.client.app.state.services.db.write() as conn:
        conn.execute(
            link_clusters.insert().values(
                cluster_id=cluster_id, score=0.9, parcels=2, senders=2, first_at=now, last_at=now,
                site_id=site, explain='{"same_contents": 1, "same_destination": 1, "span_days": 1,'
                ' "similar_images": 0, "stations": 1}', created_at=now, updated_at=now,
            )
        )  # fmt: skip
    return cluster_id


def _png(tag: str) -> bytes:
    return png(tag)


# --- cases: each call gets a case of its own, at the target site, on a fresh review item -------------
_SEQ = itertools.count(1000)


def _fresh_item(s: Any, w: Any, site: str, tag: str) -> int:
    station = w.station[site]
    seq = next(_SEQ)
    event = _event(station, seq, f"WBC{seq}", w.sender[site], png(tag))
    batch = {"station_id": station, "boot_id": "w1", "registry_cursor": 0, "events": [event]}
    assert s.client.post(f"{V1}/sync", json=batch, headers=w.station_headers[site]).is_success
    with s.client.app.state.services.db.read() as conn:
        return int(
            conn.execute(
                sqlalchemy.select(reviews.c.id).where(reviews.c.event_key == event["key"])
            ).scalar_one()
        )


def _case(s: Any, w: Any, site: str, tag: str, notified: bool = False) -> tuple[int, int]:
    """(case id, notification id or 0): an open case, or a detained one whose notice is written."""
    svc = s.client.app.state.services
    item = _fresh_item(s, w, site, tag)
    root = Principal(kind="user", name="root", role=Role.OFFICER, sites=("*",))
    now = datetime.now(UTC)
    with svc.db.write() as conn:
        case_id = store.open_case(conn, svc.secret, root, f"case-{tag}-{site}", [item], now)
        if not notified:
            return case_id, 0
        conn.execute(sqlalchemy.update(reviews).where(reviews.c.id == item).values(state="detained"))
        holder = _holder_data(f"B{tag}")
        store.set_rights_holder(
            conn, svc.secret, root, case_id, holders.add_holder(conn, svc.secret, root, holder, now)
        )
        store.take_step(
            conn, svc.settings, root, case_id, "detain", DETAIN_FIELDS, now
        )
        return case_id, notices.notify(conn, svc.settings, root, case_id, now)


def _holder_data(brand: str) -> dict[str, Any]:
    fields = {"contact_name": "c", "email": None, "phone": None, "address": "", "language": "zh"}
    return {"brand": brand, **fields, "trademarks": []}


def _holder(s: Any, tag: str) -> int:
    svc = s.client.app.state.services
    root = Principal(kind="user", name="root", role=Role.ADMIN, sites=("*",))
    data = _holder_data(f"H{tag}")
    with svc.db.write() as conn:
        return holders.add_holder(conn, svc.secret, root, data, datetime.now(UTC))


def _case_call(suffix: str, body: Any = None, notified: bool = False) -> Builder:
    def build(s: Any, w: Any, site: str, t: str) -> Call:
        case_id, notice_id = _case(s, w, site, t, notified)
        return Call(f"{V1}/cases/{case_id}{suffix.format(notice=notice_id)}", body)

    return build


def _listing(url: str) -> Builder:
    def build(s: Any, w: Any, site: str, t: str) -> Call:
        _case(s, w, site, t)
        return Call(url, marker=f"case-{t}-{site}")

    return build


DISPOSAL = {"review_id": 1, "method": "destruction", "place": "p", "done_on": TODAY, "witnesses": ["w"],
            "certificate_ref": "c"}  # fmt: skip
SAMPLE = {"review_id": 1, "description": "d", "quantity": 1, "released_to": "r", "receipt_reference": "x"}
BUILD.update(
    {
        ("GET", f"{V1}/cases"): _listing(f"{V1}/cases"),
        ("POST", f"{V1}/cases"): lambda s, w, site, t: Call(
            f"{V1}/cases", {"title": "t", "items": [_fresh_item(s, w, site, t)]}
        ),
        ("GET", f"{V1}/cases/{{case_id}}"): _case_call(""),
        ("POST", f"{V1}/cases/{{case_id}}/items"): lambda s, w, site, t: Call(
            f"{V1}/cases/{_case(s, w, site, t)[0]}/items", {"items": [_fresh_item(s, w, site, t + "b")]}
        ),
        ("POST", f"{V1}/cases/{{case_id}}/owner"): _case_call("/owner", {"owner": "nobody"}),
        ("POST", f"{V1}/cases/{{case_id}}/rights-holder"): lambda s, w, site, t: Call(
            f"{V1}/cases/{_case(s, w, site, t)[0]}/rights-holder", {"rights_holder_id": _holder(s, t)}
        ),
        ("POST", f"{V1}/cases/{{case_id}}/steps"): _case_call("/steps", {"action": "close"}),
        ("POST", f"{V1}/cases/{{case_id}}/notify"): _case_call("/notify"),
        ("POST", f"{V1}/cases/{{case_id}}/notices/{{notice_id}}/send"): _case_call(
            "/notices/{notice}/send", notified=True
        ),
        ("GET", f"{V1}/cases/{{case_id}}/notices/{{notice_id}}/eml"): _case_call(
            "/notices/{notice}/eml", notified=True
        ),
        ("POST", f"{V1}/cases/{{case_id}}/delivered"): _case_call("/delivered", {}),
        ("POST", f"{V1}/cases/{{case_id}}/reply"): _case_call("/reply", {"reply": "genuine"}),
        ("POST", f"{V1}/cases/{{case_id}}/samples"): _case_call("/samples", SAMPLE),
        ("POST", f"{V1}/cases/{{case_id}}/disposals"): _case_call("/disposals", DISPOSAL),
        ("POST", f"{V1}/cases/{{case_id}}/photos"): lambda s, w, site, t: Call(
            f"{V1}/cases/{_case(s, w, site, t)[0]}/photos", content=_png(t), ctype="image/png"
        ),
        ("POST", f"{V1}/rights-holders"): lambda s, w, site, t: Call(
            f"{V1}/rights-holders", {"brand": f"N{t}", "contact_name": "c"}
        ),
        ("PATCH", f"{V1}/rights-holders/{{holder_id}}"): lambda s, w, site, t: Call(
            f"{V1}/rights-holders/{_holder(s, t)}", {"address": "a"}
        ),
        ("GET", "/desk/cases"): _listing("/desk/cases"),
        ("GET", "/desk/cases/{case_ref}"): lambda s, w, site, t: Call(
            f"/desk/cases/{_case(s, w, site, t)[0]}"
        ),
    }
)


@dataclass
class MatrixResult:
    cases: int = 0
    wrongly_allowed: list[str] = field(default_factory=list)
    wrongly_denied: list[str] = field(default_factory=list)


def run_matrix(
    server: Any, world: Any, caller: Callable[..., tuple[dict[str, str], dict[str, str]]]
) -> MatrixResult:
    """Every route of the app x every role x own / other / all sites, judged against EXPECT."""
    callers: dict[tuple[str, str], tuple[dict[str, str], dict[str, str]]] = {}
    for role in (OPR, OFF, SUP, ADM):
        callers[role, "site1"] = caller(role, ["site1"])
        callers[role, "*"] = caller(role, ["*"])
    callers[STN, "site1"] = (server.station_a, {})
    # (role, caller's sites, target site, relation); the anonymous caller is asked about site1.
    cases = [("anonymous", "site1", "site1", "own")]
    for role in (OPR, OFF, SUP, ADM, STN):
        cases += [(role, "site1", "site1", "own"), (role, "site1", "site2", "other")]
        if role != STN:
            cases.append((role, "*", "site2", "all"))
    out = MatrixResult()
    for n, (method, path) in enumerate(route_table(server.client.app)):
        roles, binding = EXPECT[method, path]
        page = not path.startswith("/api/") and binding != "public"
        for role, held, target, relation in cases if binding != "public" else cases[:1]:
            tag = f"x{n}{role[:3]}{relation}"
            build = BUILD.get((method, path))
            call = build(server, world, target, tag) if build else Call(path)
            bearer, cookie = callers.get((role, held), ({}, {}))
            headers = dict(cookie if page else bearer)
            if call.ctype:
                headers["Content-Type"] = call.ctype
            r = server.client.request(
                method,
                call.url,
                headers=headers,
                json=call.json,
                content=call.content,
                follow_redirects=False,
            )
            out.cases += 1
            where = f"{method} {path} as {role}[{held}] on {target}: {r.status_code}"
            assert r.status_code < 500, (where, r.text[:300])
            if path.startswith("/api/") and r.status_code >= 400:
                assert list(r.json()) == ["error"], (where, r.text)
            if binding == "public":
                if r.status_code in (401, 403):
                    out.wrongly_denied.append(where)
                continue
            allowed = role in roles and (
                binding == "none" or relation == "all" or (binding == "scoped" and relation == "own")
            )
            denials = {303, 403, 404} if page else ({401, 403, 404} if binding == "scoped" else {401, 403})
            denied = r.status_code in denials
            if call.marker is not None and not denied:
                shown = call.marker in r.text
                if shown and not allowed:
                    out.wrongly_allowed.append(where + f" shows {call.marker}")
                elif allowed and not shown:
                    out.wrongly_denied.append(where + f" hides {call.marker}")
            elif denied == allowed:
                (out.wrongly_denied if allowed else out.wrongly_allowed).append(where)
    return out


def test_every_route_has_an_access_rule(server: Any) -> None:
    """The route table, not a hand-kept list: a new route without a rule here or in server.authz fails."""
    routes = set(route_table(server.client.app))
    assert routes == set(EXPECT), {"without expectation": routes - set(EXPECT), "gone": set(EXPECT) - routes}
    assert all(rule_for(m, p) is not None for m, p in routes)


def test_app_refuses_a_route_without_a_rule(server: Any) -> None:
    extra = APIRouter()

    @extra.get("/api/v1/unruled")
    def unruled() -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError, match="unruled"):
        create_app(server.settings, extra_routers=[extra])


def test_role_site_endpoint_matrix(server: Any, world: Any, caller: Any) -> None:
    """Every route x role x (own site, other site, all sites): nothing of another site leaks."""
    result = run_matrix(server, world, caller)
    routes = route_table(server.client.app)
    public = sum(EXPECT[r][1] == "public" for r in routes)
    # Anonymous, then 4 user roles x (own, other, all) and the station x (own, other).
    assert result.cases == public + (len(routes) - public) * (1 + 4 * 3 + 2)
    assert result.wrongly_allowed == [], result.wrongly_allowed
    assert result.wrongly_denied == [], result.wrongly_denied


def test_session_cookie_csrf_and_login_limit(server: Any) -> None:
    server.user("sue", "supervisor", ["site1"])
    with TestClient(server.client.app, base_url="https://testserver") as browser:
        bad = browser.post("/api/v1/auth/login", json={"username": "sue", "password": "wrong password"})
        assert bad.status_code == 401 and "pg_session" not in bad.cookies
        ok = browser.post("/api/v1/auth/login", json={"username": "sue", "password": "a long password 123"})
        assert ok.status_code == 200
        csrf = ok.json()["csrf_token"]
        assert "httponly" in ok.headers["set-cookie"].lower() and "secure" in ok.headers["set-cookie"].lower()
        assert browser.get("/api/v1/auth/me").json()["role"] == "supervisor"
        assert browser.get("/api/v1/reports/daily?date=2026-01-01&site=site1").status_code == 200
        assert browser.get("/api/v1/reports/daily?date=2026-01-01&site=site2").status_code == 403
        no_csrf = browser.post("/api/v1/auth/logout")
        assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf"
        assert browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert browser.get("/api/v1/auth/me").status_code == 401
        limit = server.settings.auth.login_max_failures
        codes = [
            browser.post("/api/v1/auth/login", json={"username": "sue", "password": f"guess {i}"}).status_code
            for i in range(limit + 1)
        ]
        assert codes[-1] == 429 and 429 not in codes[: limit - 1]
        right = browser.post(
            "/api/v1/auth/login", json={"username": "sue", "password": "a long password 123"}
        )
        assert right.status_code == 429


def test_revoked_station_token_stops_working(server: Any) -> None:
    c = server.client
    assert c.get("/api/v1/orders/poll?timeout=0", headers=server.station_a).status_code == 200
    moved = {"station_id": "st-a", "site_id": "site1", "line_id": "line9"}
    new = c.post("/api/v1/stations", json=moved, headers=server.admin)
    assert new.status_code == 201
    assert c.get("/api/v1/orders/poll?timeout=0", headers=server.station_a).status_code == 401
    fresh = {"Authorization": f"Bearer {new.json()['token']}"}
    assert c.get("/api/v1/orders/poll?timeout=0", headers=fresh).status_code == 200
    assert c.post("/api/v1/stations/st-a/revoke", headers=server.admin).json()["revoked"] == 1
    assert c.get("/api/v1/orders/poll?timeout=0", headers=fresh).status_code == 401


def test_audit_chain_detects_edits_and_deletions(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    c = server.client
    for i in range(3):
        order = {"scope": "waybill", "waybill": f"WB00000{i}", "reason": "r"}
        assert c.post("/api/v1/orders", json=order, headers=server.admin).status_code == 201
    assert c.get("/api/v1/audit/verify", headers=server.admin).json()["ok"]
    s = server.settings
    monkeypatch.setenv("PARCELGUARD_SECRET_KEY", s.secret_key.get_secret_value())
    monkeypatch.setenv("PARCELGUARD_HMAC_KEY", s.hmac_key.get_secret_value())
    monkeypatch.setenv("PARCELGUARD_ENCRYPTION_KEY", s.encryption_key.get_secret_value())
    config = tmp_path / "server.toml"
    config.write_text(f"[server]\ndatabase_url = '{s.database_url}'\n")
    assert cli_main(["audit", "verify", "--config", str(config)]) == 0
    engine = sqlalchemy.create_engine(normalise_url(s.database_url))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE audit_log SET detail = '{}' WHERE n = 5"))
    problems = c.get("/api/v1/audit/verify", headers=server.admin).json()["problems"]
    assert problems == ["entry 5: content was changed"]
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM audit_log WHERE n = 3"))
    problems = c.get("/api/v1/audit/verify", headers=server.admin).json()["problems"]
    assert "entry 3: missing (next entry is 4)" in problems
    engine.dispose()
    assert cli_main(["audit", "verify", "--config", str(config)]) == 1
    assert "BROKEN" in capsys.readouterr().out
