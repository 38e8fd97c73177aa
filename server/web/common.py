"""Shared plumbing of the server pages: templates, language, the logged-in user, menus and error pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from server.accounts import Principal
from server.deps import SESSION_COOKIE, Services, get_services
from server.web.words import LANGUAGES, words

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
LANG_COOKIE = "pg_lang"

# Pages each role sees in its menu; an administrator sees them all.
MENU: dict[str, tuple[tuple[str, str], ...]] = {
    "officer": (("desk", "/desk"), ("cases", "/desk/cases"), ("admin_orders", "/desk/orders")),
    "supervisor": (("report", "/report"), ("stations", "/stations")),
    "admin": (
        ("desk", "/desk"),
        ("cases", "/desk/cases"),
        ("report", "/report"),
        ("stations", "/stations"),
        ("admin_title", "/admin/users"),
    ),
    "operator": (),
}


class PageDenied(Exception):
    """The user may not see this page: shown as the readable error page with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def default_language(svc: Services) -> str:
    lang = svc.settings.ui_language
    return lang if lang in LANGUAGES else "zh"


def pick_language(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or ""
    return lang if lang in LANGUAGES else default_language(get_services(request))


def current_user(request: Request) -> Principal | None:
    """The session's user, or None; pages use the cookie only (bearer tokens are for the API)."""
    from server.sessions import principal_from_session

    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    return principal_from_session(get_services(request), cookie)


def csrf_token(request: Request) -> str:
    from server.sessions import csrf_for

    cookie = request.cookies.get(SESSION_COOKIE)
    return (csrf_for(get_services(request), cookie) if cookie else None) or ""


def need_user(request: Request) -> Principal | RedirectResponse:
    """The user the page's rule (server.authz) admits, a redirect to the login page, or PageDenied."""
    from server.authz import page_roles

    roles = frozenset(page_roles(request))
    who = current_user(request)
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={_safe_next(target)}", status_code=303)
    if who.role not in roles:
        raise PageDenied(403, words(pick_language(request))["no_pages"])
    return who


def _safe_next(target: str) -> str:
    from urllib.parse import quote

    return quote(target if target.startswith("/") and not target.startswith("//") else "/", safe="")


def render(
    request: Request, template: str, who: Principal | None, status: int = 200, **context: Any
) -> HTMLResponse:
    lang = pick_language(request)
    t = words(lang)
    menu = [(t[key], href) for key, href in MENU.get(who.role, ())] if who else []
    ctx = {
        "lang": lang,
        "other_lang": "en" if lang == "zh" else "zh",
        "t": t,
        # The pages' scripts look words up in the same table (`W[key]`).
        "words_json": json.dumps(t, ensure_ascii=False).replace("<", "\\u003c"),
        "who": who,
        "menu": menu,
        "path": request.url.path,
        "csrf": csrf_token(request) if who else "",
        **context,
    }
    resp = templates.TemplateResponse(request, template, ctx, status_code=status)
    if request.query_params.get("lang") in LANGUAGES:
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict")
    return resp


def error_page(request: Request, status: int, message: str) -> Response:
    """The one error shape, as a page: the same code and message the API would send."""
    return render(request, "error.html", current_user(request), status=status, message=message, code=status)
