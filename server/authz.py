"""The one authorisation table: which roles may use each route and page, and whether it needs every site.

Every route of the app has a rule here, keyed by method and path; `create_app` refuses to start when a
route has none, and the app-wide dependency `authorise` enforces the rule before any handler runs. What
a caller may see *within* a route (which sites' rows) is decided by `server.scope`, which every handler
that reads or writes site data goes through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute, Route

from server.accounts import Principal, Role
from server.deps import ServicesDep, get_principal
from server.errors import Forbidden, NotAuthenticated

__all__ = [
    "RULES",
    "Access",
    "Caller",
    "Role",
    "Rule",
    "authorise",
    "check_routes",
    "route_table",
    "rule_for",
]


class Access(StrEnum):
    """How a route is reached: by anyone, by an API caller (bearer or session), or as a page (session)."""

    PUBLIC = "public"
    API = "api"
    PAGE = "page"
    SCRAPE = "scrape"  # only with the metrics scrape token, which the handler checks (server.metrics)


class Sites(StrEnum):
    """How the caller's sites bound a route: not at all, to rows of their sites, or only with every site."""

    NONE = "none"  # the caller's own account, public assets, network-wide model files
    SCOPED = "scoped"  # rows of the caller's sites only (server.scope filters or refuses the rest)
    NETWORK = "network"  # changes or reads the whole network: only holders of every site ("*")


@dataclass(frozen=True)
class Rule:
    """Who may use one route and how their sites bound it."""

    access: Access
    roles: frozenset[Role] = frozenset()
    sites: Sites = Sites.NONE

    def allows(self, principal: Principal) -> bool:
        if principal.role not in self.roles:
            return False
        return self.sites is not Sites.NETWORK or principal.all_sites


def _api(sites: Sites, *roles: Role) -> Rule:
    return Rule(Access.API, frozenset(roles), sites)


def _page(*roles: Role) -> Rule:
    return Rule(Access.PAGE, frozenset(roles), Sites.SCOPED)


OFF, SUP, ADM, OPR, STN = Role.OFFICER, Role.SUPERVISOR, Role.ADMIN, Role.OPERATOR, Role.STATION
USERS = frozenset({OFF, SUP, ADM, OPR})
PUBLIC = Rule(Access.PUBLIC)
V1 = "/api/v1"

RULES: dict[tuple[str, str], Rule] = {
    # Stations: their own batches, images and orders; everything they get is filtered to their site.
    ("POST", f"{V1}/sync"): _api(Sites.SCOPED, STN),
    # Bytes only: who may see an image follows the events that name it (server.scope.image_visible).
    ("PUT", f"{V1}/images/{{sha256}}"): _api(Sites.NONE, STN),
    ("GET", f"{V1}/orders/poll"): _api(Sites.SCOPED, STN),
    # Sender and manifest records are one registry shared by the network, fed from every site's
    # outlets: any officer or admin imports; the import's audit entry belongs to the importer's sites.
    ("POST", f"{V1}/senders/import"): _api(Sites.NONE, OFF, ADM),
    ("POST", f"{V1}/manifests/import"): _api(Sites.NONE, OFF, ADM),
    ("POST", f"{V1}/watchlist"): _api(Sites.SCOPED, OFF, ADM),
    ("GET", f"{V1}/watchlist"): _api(Sites.SCOPED, OFF, ADM, SUP),
    ("PATCH", f"{V1}/watchlist/{{entry_id}}"): _api(Sites.SCOPED, OFF, ADM),
    ("POST", f"{V1}/orders"): _api(Sites.SCOPED, OFF, ADM),
    ("GET", f"{V1}/orders"): _api(Sites.SCOPED, OFF, ADM, SUP, OPR),
    ("GET", f"{V1}/reports/daily"): _api(Sites.SCOPED, SUP, ADM),
    ("GET", f"{V1}/reviews"): _api(Sites.SCOPED, OFF, SUP, ADM),
    ("GET", f"{V1}/reviews/{{item_id}}"): _api(Sites.SCOPED, OFF, SUP, ADM),
    ("POST", f"{V1}/reviews/{{item_id}}/claim"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/reviews/{{item_id}}/unclaim"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/reviews/{{item_id}}/decision"): _api(Sites.SCOPED, OFF),
    ("GET", f"{V1}/images/{{sha256}}"): _api(Sites.SCOPED, OFF, SUP, ADM, STN),
    ("POST", f"{V1}/auth/login"): PUBLIC,
    ("POST", f"{V1}/auth/logout"): _api(Sites.NONE, *USERS, STN),
    ("GET", f"{V1}/auth/me"): _api(Sites.NONE, *USERS, STN),
    ("GET", f"{V1}/users"): _api(Sites.SCOPED, ADM),
    ("POST", f"{V1}/users"): _api(Sites.SCOPED, ADM),
    ("POST", f"{V1}/users/{{username}}/tokens"): _api(Sites.SCOPED, ADM),
    ("POST", f"{V1}/users/{{username}}/deactivate"): _api(Sites.SCOPED, ADM),
    ("GET", f"{V1}/stations"): _api(Sites.SCOPED, ADM),
    ("POST", f"{V1}/stations"): _api(Sites.SCOPED, ADM),
    ("POST", f"{V1}/stations/{{station_id}}/revoke"): _api(Sites.SCOPED, ADM),
    ("GET", f"{V1}/senders/{{token}}"): _api(Sites.SCOPED, OFF, SUP, ADM),
    ("POST", f"{V1}/senders/{{token}}/reveal"): _api(Sites.SCOPED, OFF),
    ("GET", f"{V1}/audit"): _api(Sites.SCOPED, ADM),
    # The chain check walks every site's entries; models run at every station of the network.
    ("GET", f"{V1}/audit/verify"): _api(Sites.NETWORK, ADM),
    ("PUT", f"{V1}/models/{{name}}/{{version}}"): _api(Sites.NETWORK, ADM),
    ("POST", f"{V1}/models/{{name}}/{{version}}/mode"): _api(Sites.NETWORK, ADM),
    ("GET", f"{V1}/models"): _api(Sites.NONE, STN, ADM, OFF),
    ("GET", f"{V1}/models/gallery"): _api(Sites.NONE, STN, ADM, OFF),
    ("GET", f"{V1}/models/{{name}}/{{version}}/blob"): _api(Sites.NONE, STN, ADM, OFF),
    # Cases (server.cases): officers work them; supervisors and admins read. A case is listed and
    # shown only to callers holding every site of its items; the registry of rights holders is shared.
    ("GET", f"{V1}/cases"): _api(Sites.SCOPED, OFF, SUP, ADM),
    ("POST", f"{V1}/cases"): _api(Sites.SCOPED, OFF),
    ("GET", f"{V1}/cases/{{case_id}}"): _api(Sites.SCOPED, OFF, SUP, ADM),
    ("POST", f"{V1}/cases/{{case_id}}/items"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/cases/{{case_id}}/owner"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/cases/{{case_id}}/rights-holder"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/cases/{{case_id}}/steps"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/cases/{{case_id}}/notify"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/cases/{{case_id}}/notices/{{notice_id}}/send"): _api(Sites.SCOPED, OFF),
    ("GET", f"{V1}/cases/{{case_id}}/notices/{{notice_id}}/eml"): _api(Sites.SCOPED, OFF, SUP, ADM),
    ("POST", f"{V1}/cases/{{case_id}}/delivered"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/cases/{{case_id}}/reply"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/cases/{{case_id}}/samples"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/cases/{{case_id}}/disposals"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/cases/{{case_id}}/photos"): _api(Sites.SCOPED, OFF),
    ("GET", f"{V1}/rights-holders"): _api(Sites.NONE, OFF, SUP, ADM),
    ("POST", f"{V1}/rights-holders"): _api(Sites.NONE, OFF, ADM),
    ("PATCH", f"{V1}/rights-holders/{{holder_id}}"): _api(Sites.NONE, OFF, ADM),
    ("GET", "/desk/cases"): _page(OFF, ADM),
    ("GET", "/desk/cases/{case_ref}"): _page(OFF, ADM),
    # Evidence bundles and referrals: of the caller's sites' items only (server.evidence).
    ("POST", f"{V1}/evidence/bundles"): _api(Sites.SCOPED, OFF, ADM),
    ("POST", f"{V1}/referrals"): _api(Sites.SCOPED, OFF),
    ("GET", f"{V1}/referrals/{{referral_id}}"): _api(Sites.SCOPED, OFF, SUP, ADM),
    ("GET", f"{V1}/referrals/{{referral_id}}/package"): _api(Sites.SCOPED, OFF, ADM),
    ("POST", f"{V1}/referrals/{{referral_id}}/reply"): _api(Sites.SCOPED, OFF),
    # Legal holds: officers and admins place and release them on their sites' items; supervisors read.
    ("POST", f"{V1}/holds"): _api(Sites.SCOPED, OFF, ADM),
    ("POST", f"{V1}/holds/{{hold_id}}/release"): _api(Sites.SCOPED, OFF, ADM),
    ("GET", f"{V1}/holds"): _api(Sites.SCOPED, OFF, SUP, ADM),
    # Pages: the session decides; a page answers with a redirect to the login page, not a 401.
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("GET", "/web/static/{name}"): PUBLIC,
    ("GET", "/desk"): _page(OFF, ADM),
    ("GET", "/desk/items/{item_ref}"): _page(OFF, ADM),
    # The X-ray viewer's samples: who may see them follows the image (server.scope.image_visible).
    ("GET", "/desk/images/{sha256}/pixels"): _page(OFF, ADM),
    ("GET", "/desk/links/senders/{token}"): _page(OFF, ADM),
    ("GET", "/desk/links/clusters/{cluster_id}"): _page(OFF, ADM),
    ("GET", "/report"): _page(SUP, ADM),
    ("GET", "/report/download"): _page(SUP, ADM),
    ("GET", "/stations"): _page(SUP, ADM),
    # The officer's desk made for throughput: bulk release, order cancels, the live queue, admin pages.
    ("POST", f"{V1}/reviews/bulk-release"): _api(Sites.SCOPED, OFF),
    ("POST", f"{V1}/orders/{{order_id}}/cancel"): _api(Sites.SCOPED, OFF, ADM),
    ("GET", "/desk/stream"): _page(OFF, ADM),
    ("GET", f"{V1}/reviews/next"): _api(Sites.SCOPED, OFF, ADM),
    ("GET", "/admin/users"): _page(ADM),
    ("GET", "/admin/stations"): _page(ADM),
    ("GET", "/admin/watchlist"): _page(ADM),
    ("GET", "/desk/orders"): _page(OFF, ADM),
    # The API description and its viewers.
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/docs/assets/{name}"): PUBLIC,
    # Operations: probes answer anyone (they say ready or not, and why); metrics need the scrape token.
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): Rule(Access.SCRAPE),
}


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, included routers flattened; HEAD follows GET."""
    out: list[tuple[str, str]] = []
    for ctx in iter_route_contexts(app.routes):
        route: BaseRoute = ctx.original_route
        if not isinstance(route, APIRoute | Route):
            raise RuntimeError(f"route {route!r} is neither an API route nor a page: give it a rule")
        if ctx.path != route.path:
            # authorise() keys on the route's own path: routers are included without a prefix.
            raise RuntimeError(f"route {route.path} is mounted at {ctx.path}: include it without a prefix")
        out += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out


def rule_for(method: str, path: str) -> Rule | None:
    return RULES.get(("GET" if method == "HEAD" else method, path))


def check_routes(app: FastAPI) -> None:
    """Refuse to build an app with a route the table does not cover: a new route must say who may use it."""
    missing = [f"{m} {p}" for m, p in route_table(app) if rule_for(m, p) is None]
    if missing:
        raise RuntimeError("routes without an access rule in server.authz.RULES: " + ", ".join(missing))


def _rule(request: Request) -> Rule:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    rule = rule_for(request.method, path) if isinstance(path, str) else None
    if rule is None:
        # Fail closed: a route that slipped past check_routes is nobody's.
        raise Forbidden("this route has no access rule")
    return rule


def authorise(request: Request, svc: ServicesDep) -> Principal | None:
    """App-wide: apply the route's rule; API routes get their caller, pages and public routes None."""
    rule = _rule(request)
    if rule.access is not Access.API:
        return None
    principal = get_principal(request, svc)
    if not rule.allows(principal):
        if principal.role in rule.roles:
            raise Forbidden(
                "this endpoint needs every site ('*'); your sites are " + ", ".join(principal.sites)
            )
        raise Forbidden(f"role {principal.role!r} may not use this endpoint")
    return principal


def caller(principal: Annotated[Principal | None, Depends(authorise)]) -> Principal:
    if principal is None:
        raise NotAuthenticated("log in or send a bearer token")
    return principal


Caller = Annotated[Principal, Depends(caller)]
"""The authorised caller of an API route (the route's rule already checked)."""


def page_roles(request: Request) -> Iterable[Role]:
    """Roles the current page's rule admits (pages check them against the session themselves)."""
    return _rule(request).roles
