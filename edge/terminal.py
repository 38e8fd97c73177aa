"""Operator terminal of the station: page, live feed (SSE), health and confirmations, served by uvicorn."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.errors import StoreError
from edge.web.alarm import alarm_wav
from edge.web.i18n import LANGUAGES, table
from edge.web.views import health_view, recent_parcels

if TYPE_CHECKING:
    from edge.agent import EdgeAgent

log = logging.getLogger(__name__)

WEB = Path(__file__).resolve().parent / "web"
MAX_BODY = 16 * 1024
HEALTH_EVERY_S = 1.0
POLL_S = 0.1


class TerminalError(ValueError):
    """A request the terminal refuses; carries the HTTP status and a stable code for the error shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ConfirmRequest(BaseModel):
    """What the operator did about a parcel: one touch or one key on the terminal."""

    model_config = ConfigDict(extra="forbid")

    tracking_id: str = Field(min_length=1, max_length=200, description="Tracking id of the parcel.")
    action: Literal["pulled", "not_found", "open_box"] = Field(description="What the operator did.")
    result: str = Field("", max_length=2000, description="Open-box result (required for open_box).")
    operator: str = Field("", max_length=100, description="Operator id typed on the terminal.")


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _validation_message(errors: list[Any]) -> str:
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _sse(kind: str, data: dict[str, Any], item_id: int | None = None) -> str:
    head = f"id: {item_id}\n" if item_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class StreamCounter:
    """Open live streams, bounded so that a runaway client cannot pin the station's event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._n = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self._n >= self.limit:
                return False
            self._n += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._n -= 1

    @property
    def open(self) -> int:
        with self._lock:
            return self._n


def create_terminal_app(
    agent: EdgeAgent,
    confirm_within_s: float = 60.0,
    max_streams: int = 16,
    stop: threading.Event | None = None,
) -> FastAPI:
    """The terminal's FastAPI app; `stop` ends open live streams so that the server can shut down."""
    stopping = stop if stop is not None else threading.Event()
    streams = StreamCounter(max_streams)
    templates = Jinja2Templates(directory=str(WEB / "templates"))
    alarm = alarm_wav()
    app = FastAPI(title="parcelguard operator terminal", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.streams = streams
    app.mount("/static", StaticFiles(directory=str(WEB / "static")), name="static")

    @app.exception_handler(TerminalError)
    async def _terminal_error(_: Request, exc: TerminalError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("invalid_request", _validation_message(list(exc.errors()))), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)

    def pick_language(request: Request) -> str:
        default = agent.cfg.terminal.language
        lang = request.query_params.get("lang") or request.cookies.get("pg_lang") or default
        return lang if lang in LANGUAGES else default

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> Response:
        lang = pick_language(request)
        words = table(lang)
        station = agent.cfg.station
        context = {
            "lang": lang,
            "other_lang": "en" if lang == "zh" else "zh",
            "t": words,
            "words_json": json.dumps(words, ensure_ascii=False),
            "settings_json": json.dumps({"confirm_within_s": confirm_within_s, "lang": lang}),
            "station": station,
        }
        resp = templates.TemplateResponse(request, "terminal.html", context)
        if request.query_params.get("lang") in LANGUAGES:
            resp.set_cookie("pg_lang", lang, max_age=365 * 86400, samesite="strict")
        return resp

    @app.get("/alarm.wav")
    def alarm_sound() -> Response:
        return Response(alarm, media_type="audio/wav", headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return health_view(agent)

    @app.get("/api/parcels")
    def parcels(limit: int = 50) -> dict[str, Any]:
        if not 1 <= limit <= 500:
            raise TerminalError(422, "invalid_request", "limit: must be between 1 and 500")
        return {"parcels": recent_parcels(agent.store, limit, datetime.now(UTC))}

    @app.post("/api/confirm")
    async def confirm(request: Request) -> JSONResponse:
        # Read and check the body by hand: one error shape for every kind of bad payload.
        if "application/json" not in request.headers.get("content-type", ""):
            raise TerminalError(415, "unsupported_media_type", "send the confirmation as application/json")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise TerminalError(413, "too_large", f"request body over {MAX_BODY} bytes")
        try:
            req = ConfirmRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise TerminalError(422, "invalid_request", _validation_message(list(exc.errors()))) from exc
        if req.action == "open_box" and not req.result.strip():
            raise TerminalError(422, "invalid_request", "result: the open-box result is required")
        try:
            ev = await asyncio.to_thread(
                agent.pipeline.confirm, req.tracking_id, req.action, req.result.strip(), req.operator.strip()
            )
        except LookupError as exc:
            raise TerminalError(404, "unknown_parcel", str(exc).strip("'\"")) from exc
        except StoreError as exc:
            log.error("operator confirmation for %s not stored: %s", req.tracking_id, exc)
            raise TerminalError(503, "store_unavailable", "the record could not be saved; try again") from exc
        return JSONResponse({"event": ev.model_dump(mode="json")}, status_code=201)

    @app.get("/api/stream")
    async def stream(request: Request) -> StreamingResponse:
        if not streams.enter():
            raise TerminalError(503, "too_many_streams", "too many terminals are connected to this station")
        try:
            last_id = int(request.headers.get("last-event-id") or 0)
        except ValueError:
            last_id = 0
        q = agent.feed.subscribe()
        return StreamingResponse(
            _events(q, last_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _events(q: queue.Queue[dict[str, Any]], last_id: int) -> Any:
        try:
            yield "retry: 2000\n\n"
            # A reconnecting page gets what it missed from the feed's short history, then the live feed.
            if last_id:
                for item in agent.feed.recent():
                    if item["id"] > last_id:
                        yield _sse(item["type"], item, item["id"])
            next_health = 0.0
            while not stopping.is_set():
                while True:
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                    if item["id"] > last_id:
                        yield _sse(item["type"], item, item["id"])
                if time.monotonic() >= next_health:
                    next_health = time.monotonic() + HEALTH_EVERY_S
                    yield _sse("snapshot", await asyncio.to_thread(health_view, agent))
                await asyncio.sleep(POLL_S)
        finally:
            # Runs on client disconnect too: starlette cancels the generator when the socket closes.
            agent.feed.unsubscribe(q)
            streams.leave()

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
