"""Operator terminal of the station: login, page, live feed (SSE), health and confirmations, over uvicorn."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.errors import StoreError
from edge.feed import Subscription
from edge.web.alarm import alarm_wav
from edge.web.guard import HostGuard, RequestRefused, check_origin, is_json_media_type, origin_of
from edge.web.i18n import LANGUAGES, table
from edge.web.probes import install_probes
from edge.web.requests import ConfirmRequest, LoginRequest, TerminalError, error_body, validation_message
from edge.web.sessions import LoginFailed, LoginLocked, OperatorAuth, OperatorSession
from edge.web.streams import StreamLimits, StreamTicket
from edge.web.views import HealthCache, health_view, recent_parcels

if TYPE_CHECKING:
    from edge.agent import EdgeAgent

log = logging.getLogger(__name__)

WEB = Path(__file__).resolve().parent / "web"
MAX_BODY = 16 * 1024
HEALTH_EVERY_S = 1.0
POLL_S = 0.1
COOKIE = "pg_terminal"
CSRF_HEADER = "x-csrf-token"
# The pages are framed by nobody and load nothing from elsewhere: no clickjacking of the pull buttons.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _sse(kind: str, data: dict[str, Any], item_id: int | None = None) -> str:
    head = f"id: {item_id}\n" if item_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _script_json(data: Any) -> str:
    # Inside <script type="application/json">: a "</script>" in a configured name must not end the tag.
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def create_terminal_app(
    agent: EdgeAgent,
    confirm_within_s: float = 60.0,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    environ: Mapping[str, str] | None = None,
) -> FastAPI:
    """The terminal's FastAPI app; `stop` ends open live streams so that the server can shut down.

    Raises ConfigError when login is required but no operator is configured (or a PIN variable is unset).
    """
    tcfg = agent.cfg.terminal
    stopping = stop if stop is not None else threading.Event()
    auth = OperatorAuth(tcfg, clock, os.environ if environ is None else environ)
    streams = StreamLimits(tcfg.streams_per_session, tcfg.streams_per_address, tcfg.max_streams)
    allowed = frozenset(o for o in (origin_of(x) for x in tcfg.allowed_origins) if o)
    snapshots = HealthCache(agent, HEALTH_EVERY_S)
    templates = Jinja2Templates(directory=str(WEB / "templates"))
    alarm = alarm_wav()
    app = FastAPI(title="parcelguard operator terminal", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.streams = streams
    app.state.auth = auth
    app.mount("/static", StaticFiles(directory=str(WEB / "static")), name="static")
    app.add_middleware(HostGuard, allowed=frozenset(h.strip().lower() for h in tcfg.allowed_hosts))
    # Liveness, readiness and metrics answer without a login (no parcel data in them).
    app.state.metrics = install_probes(app, agent, stopping)

    @app.exception_handler(TerminalError)
    async def _terminal_error(_: Request, exc: TerminalError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(RequestRefused)
    async def _refused(_: Request, exc: RequestRefused) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("invalid_request", validation_message(list(exc.errors()))), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)

    def pick_language(request: Request) -> str:
        default = tcfg.language
        lang = request.query_params.get("lang") or request.cookies.get("pg_lang") or default
        return lang if lang in LANGUAGES else default

    def current(request: Request) -> OperatorSession:
        session = auth.session(request.cookies.get(COOKIE))
        if session is None:
            raise TerminalError(401, "not_logged_in", "log in at the terminal first")
        return session

    def checked_origin_and_type(request: Request) -> None:
        h = request.headers
        own = origin_of(f"{request.url.scheme}://{h.get('host', '')}") or ""
        check_origin(h.get("origin"), h.get("referer"), h.get("sec-fetch-site"), own, allowed)
        if not is_json_media_type(h.getlist("content-type")):
            raise TerminalError(415, "unsupported_media_type", "send the request as application/json")

    def unsafe(request: Request) -> OperatorSession:
        """Origin, media type, session and the session's CSRF token, in that order."""
        checked_origin_and_type(request)
        session = current(request)
        if not auth.csrf_ok(session, request.headers.get(CSRF_HEADER, "")):
            raise TerminalError(403, "csrf", "missing or wrong CSRF token (send it as X-CSRF-Token)")
        return session

    async def json_body(request: Request, model: type[BaseModel]) -> Any:
        # Read and check the body by hand: one error shape for every kind of bad payload.
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            # Stop reading at the limit: an endless body must not be buffered whole first.
            if len(raw) > MAX_BODY:
                raise TerminalError(413, "too_large", f"request body over {MAX_BODY} bytes")
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise TerminalError(422, "invalid_request", validation_message(list(exc.errors()))) from exc

    def set_session_cookie(request: Request, resp: Response, cookie: str) -> None:
        resp.set_cookie(
            COOKIE,
            cookie,
            max_age=int(tcfg.session_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def render(request: Request, name: str, lang: str, extra: dict[str, Any]) -> Response:
        words = table(lang)
        context = {
            "lang": lang,
            "other_lang": "en" if lang == "zh" else "zh",
            "t": words,
            "words_json": _script_json(words),
            "station": agent.cfg.station,
            **extra,
        }
        resp = templates.TemplateResponse(request, name, context, headers=PAGE_HEADERS)
        if request.query_params.get("lang") in LANGUAGES:
            resp.set_cookie("pg_lang", lang, max_age=365 * 86400, samesite="strict")
        return resp

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> Response:
        lang = pick_language(request)
        session = auth.session(request.cookies.get(COOKIE))
        new_cookie = None
        if session is None:
            if auth.required:
                return RedirectResponse(f"/login?lang={lang}", status_code=303)
            new_cookie, session = auth.bench_session()
        settings = {
            "confirm_within_s": confirm_within_s,
            "lang": lang,
            "csrf": session.csrf,
            "login": auth.required,
        }
        resp = render(
            request,
            "terminal.html",
            lang,
            {"settings_json": _script_json(settings), "session": session, "login_required": auth.required},
        )
        if new_cookie is not None:
            set_session_cookie(request, resp, new_cookie)
        return resp

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        lang = pick_language(request)
        if not auth.required or auth.session(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse(f"/?lang={lang}", status_code=303)
        return render(request, "login.html", lang, {"settings_json": _script_json({"lang": lang})})

    @app.post("/api/login")
    async def login(request: Request) -> JSONResponse:
        checked_origin_and_type(request)
        req = await json_body(request, LoginRequest)
        if not auth.required:
            raise TerminalError(409, "login_not_required", "this bench terminal does not use logins")
        try:
            # argon2 is slow on purpose: off the event loop, so that a login never stalls the live feed.
            cookie, session = await asyncio.to_thread(auth.login, req.operator, req.pin, _client(request))
        except LoginLocked as exc:
            log.warning("terminal login locked for %r from %s", req.operator[:64], _client(request))
            resp = JSONResponse(error_body("locked", str(exc)), status_code=429)
            resp.headers["Retry-After"] = str(int(exc.retry_after_s) + 1)
            return resp
        except LoginFailed as exc:
            log.warning("wrong terminal PIN for %r from %s", req.operator[:64], _client(request))
            raise TerminalError(401, "wrong_pin", str(exc)) from exc
        log.info("operator %s logged in at the terminal from %s", session.operator, _client(request))
        resp = JSONResponse({"operator": session.operator, "name": session.name, "csrf_token": session.csrf})
        set_session_cookie(request, resp, cookie)
        return resp

    @app.post("/api/logout")
    def logout(request: Request) -> JSONResponse:
        session = unsafe(request)
        auth.logout(session)
        streams.close_session(session.key)
        log.info("operator %s logged out of the terminal", session.operator)
        resp = JSONResponse({"logged_out": session.operator})
        resp.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return resp

    @app.get("/alarm.wav")
    def alarm_sound() -> Response:
        return Response(alarm, media_type="audio/wav", headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/health")
    def health(request: Request) -> dict[str, Any]:
        current(request)
        return health_view(agent)

    @app.get("/api/parcels")
    def parcels(request: Request, limit: int = 50) -> dict[str, Any]:
        current(request)
        if not 1 <= limit <= 500:
            raise TerminalError(422, "invalid_request", "limit: must be between 1 and 500")
        return {"parcels": recent_parcels(agent.store, limit, datetime.now(UTC))}

    @app.post("/api/confirm")
    async def confirm(request: Request) -> JSONResponse:
        session = unsafe(request)
        req = await json_body(request, ConfirmRequest)
        if req.action == "open_box" and not req.result.strip():
            raise TerminalError(422, "invalid_request", "result: the open-box result is required")
        try:
            ev = await asyncio.to_thread(
                agent.pipeline.confirm, req.tracking_id, req.action, req.result.strip(), session.operator
            )
        except LookupError as exc:
            raise TerminalError(404, "unknown_parcel", str(exc).strip("'\"")) from exc
        except StoreError as exc:
            log.error("operator confirmation for %s not stored: %s", req.tracking_id, exc)
            raise TerminalError(503, "store_unavailable", "the record could not be saved; try again") from exc
        return JSONResponse({"event": ev.model_dump(mode="json")}, status_code=201)

    @app.get("/api/stream")
    def stream(request: Request) -> StreamingResponse:
        session = current(request)
        ticket = streams.admit(session.key, _client(request))
        if ticket is None:
            raise TerminalError(503, "too_many_streams", "too many terminals are connected to this station")
        try:
            last_id = int(request.headers.get("last-event-id") or 0)
        except ValueError:
            last_id = 0
        q = agent.feed.subscribe()
        return StreamingResponse(
            _events(q, ticket, last_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _events(q: Subscription, ticket: StreamTicket, last_id: int) -> Any:
        try:
            yield "retry: 2000\n\n"
            # A reconnecting page gets what it missed from the feed's short history, then the live feed.
            if last_id:
                for item in agent.feed.recent():
                    if item["id"] > last_id:
                        yield _sse(item["type"], item, item["id"])
                        last_id = item["id"]
            next_health = 0.0
            while not stopping.is_set():
                while True:
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                    if item["id"] > last_id:
                        yield _sse(item["type"], item, item["id"])
                if ticket.closed.is_set():
                    # Displaced by a newer stream of the same login or address, or logged out: the page
                    # must not retry (displaced pages would otherwise take turns pushing each other out).
                    yield _sse("closed", {"reason": ticket.reason})
                    return
                if q.dropped.is_set():
                    # Too slow to keep up: end the stream; the page reconnects and replays from history.
                    return
                if time.monotonic() >= next_health:
                    next_health = time.monotonic() + HEALTH_EVERY_S
                    if not auth.alive(ticket.session):
                        yield _sse("closed", {"reason": "logged_out"})
                        return
                    view = snapshots.fresh()
                    if view is None:
                        view = await asyncio.to_thread(snapshots.refresh)
                    yield _sse("snapshot", view)
                await asyncio.sleep(POLL_S)
        finally:
            # Runs on client disconnect too: starlette cancels the generator when the socket closes.
            agent.feed.unsubscribe(q)
            streams.leave(ticket)

    return app


class TerminalServer:
    """Serves the terminal app from a background thread; port 0 picks a free port (see `.url`)."""

    def __init__(
        self, agent: EdgeAgent, host: str = "127.0.0.1", port: int = 0, confirm_within_s: float = 60.0
    ) -> None:
        self.host = host
        self._stop = threading.Event()
        self.app = create_terminal_app(agent, confirm_within_s, stop=self._stop)
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            msg = f"operator terminal cannot listen on {host}:{port}: {exc.strerror}"
            raise OSError(exc.errno, msg) from exc
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=3
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="terminal", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"operator terminal did not start on {self.url}")
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._sock.close()
