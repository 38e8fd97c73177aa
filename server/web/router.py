"""Entry point of the server pages: login, logout, home, static assets, and the page routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from server.deps import SESSION_COOKIE, get_services, set_session_cookie
from server.errors import ApiError
from server.web.admin_pages import router as admin_router
from server.web.cases_page import router as cases_router
from server.web.common import HERE, current_user, error_page, render
from server.web.desk import router as desk_router
from server.web.links_page import router as links_router
from server.web.report_page import router as report_router
from server.web.stations_page import router as stations_router
from server.web.xray_page import router as xray_router

router = APIRouter(include_in_schema=False)
router.include_router(desk_router)
router.include_router(report_router)
router.include_router(stations_router)
router.include_router(cases_router)
router.include_router(xray_router)
router.include_router(admin_router)
router.include_router(links_router)

STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
HOME = {"officer": "/desk", "admin": "/desk", "supervisor": "/report"}


@router.get("/web/static/{name}")
def static(name: str) -> Response:
    # A flat folder and a fixed list of types: no path can leave it.
    path = HERE / "static" / name
    kind = STATIC_TYPES.get(path.suffix)
    if "/" in name or kind is None or not path.is_file():
        from server.errors import NotFound

        raise NotFound(f"no asset {name!r}")
    return Response(path.read_bytes(), media_type=kind, headers={"Cache-Control": "max-age=3600"})


@router.get("/")
def home(request: Request) -> Response:
    who = current_user(request)
    if who is None:
        return RedirectResponse("/login", status_code=303)
    if who.role in HOME:
        return RedirectResponse(HOME[who.role], status_code=303)
    return render(request, "home.html", who)


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", None, next=_local(next), message="")


def _local(target: str) -> str:
    # Only paths on this server: an open redirect would hand sessions to other sites.
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


@router.post("/login")
def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    from server.sessions import login

    svc = get_services(request)
    if not username or not password:
        return render(
            request, "login.html", None, status=422, next=_local(next), message="username and password"
        )
    client = request.client.host if request.client else "unknown"
    try:
        session = login(svc, username, password, client)
    except ApiError as exc:
        return render(
            request,
            "login.html",
            None,
            status=exc.status,
            next=_local(next),
            message=exc.message,
            name=username,
        )
    target = _local(next)
    if target == "/":
        target = HOME.get(session.principal.role, "/")
    resp = RedirectResponse(target, status_code=303)
    set_session_cookie(resp, session, svc)
    return resp


@router.post("/logout")
def logout_submit(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    from server.sessions import check_csrf, logout

    svc = get_services(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            check_csrf(svc, cookie, csrf)
        except ApiError as exc:
            return error_page(request, exc.status, exc.message)
        logout(svc, cookie)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
