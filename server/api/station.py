"""Station endpoints: sync batches, content-addressed image uploads and the long poll for pull orders."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from edge.wire import (
    FEATURE_ORDER_CANCEL,
    FEATURE_SENDER_RISK,
    FEATURES_HEADER,
    OrderCancelWire,
    OrdersPollReply,
    PullOrderWire,
    SyncReply,
    SyncRequest,
)
from scanner_drivers.image_gate import ImageLimits, ImageRefused, probe
from server.accounts import Principal
from server.api.responses import ImageStored
from server.authz import Caller
from server.db import iso, utcnow
from server.deps import Services, ServicesDep
from server.errors import BadInput, TooLarge, UnsupportedMedia
from server.ingest import ingest_batch, prepare_batch
from server.notify import publish_orders_changed
from server.orders import cancelled_orders, last_order_seq, pending_orders
from server.registry_feed import registry_changes
from server.schema import images
from server.stations import touch_station

router = APIRouter(prefix="/api/v1", tags=["station"])
# Fields of the sync reply that only stations naming the sender-risk feature receive.
LEGACY_EXCLUDE: Any = {"registry": {"senders": {"__all__": {"risk", "qualified", "customer_token"}}}}

# Or a quarter of `stations.offline_after_s` if less, so that a station that only polls stays online.
HEARD_EVERY_S = 10.0
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/bmp", "image/tiff"})
FORMAT_OF = {"image/jpeg": "jpeg", "image/png": "png", "image/bmp": "bmp", "image/tiff": "tiff"}
# What stations send: X-ray images up to the hot folder's pixel limit, camera photos below it.
UPLOAD_LIMITS = ImageLimits(max_pixels=100_000_000)
# Leading bytes of each accepted type: the declared type must match what was sent.
MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/bmp": (b"BM",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}


def wanted_features(request: Request) -> frozenset[str]:
    """The wire v1 additions the station names in FEATURES_HEADER (comma-separated)."""
    asked = request.headers.get(FEATURES_HEADER, "")
    return frozenset(f.strip().lower() for f in asked.split(",") if f.strip())


def wire_reply(reply: SyncReply | OrdersPollReply, features: frozenset[str]) -> Response:
    """The reply as v1 JSON with only the additions the station named: a station built before an
    addition refuses fields it does not know."""
    exclude: dict[str, Any] = {}
    if FEATURE_ORDER_CANCEL not in features:
        exclude["cancelled"] = True
    if isinstance(reply, SyncReply) and FEATURE_SENDER_RISK not in features:
        exclude.update(LEGACY_EXCLUDE)
    return Response(reply.model_dump_json(exclude=exclude or None), media_type="application/json")


# The body is parsed and validated straight from its bytes on a worker thread (pydantic-core, no dict of
# dicts in between), not by FastAPI on the event loop: a batch of 1,000 full events took ~20 ms there,
# during which no long poll could answer. So its schema is documented here rather than by a parameter;
# definitions sit inside it and references point to them by their place in the OpenAPI document.
SYNC_SCHEMA_AT = "#/paths/~1api~1v1~1sync/post/requestBody/content/application~1json/schema/$defs/{model}"
SYNC_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SyncRequest.model_json_schema(ref_template=SYNC_SCHEMA_AT)}
        },
    }
}


@router.post(
    "/sync",
    response_model=SyncReply,
    summary="Store a station's event batch and reply with orders",
    openapi_extra=SYNC_BODY,
)
async def sync(request: Request, station: Caller, svc: ServicesDep) -> Response:
    raw = await request.body()
    return await run_in_threadpool(store_batch, raw, station, svc, wanted_features(request))


def store_batch(raw: bytes, station: Principal, svc: Services, features: frozenset[str]) -> Response:
    try:
        body = SyncRequest.model_validate_json(raw)
    except ValidationError as exc:
        # The same 422 as every other body FastAPI validates.
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None
    if len(body.events) > svc.settings.limits.max_batch_events:
        raise TooLarge(f"batch has {len(body.events)} events; at most {svc.settings.limits.max_batch_events}")
    now = utcnow()
    prepared = prepare_batch(body, station, now, svc.settings)
    svc.db.ensure_partitions(prepared.days)
    for attempt in (1, 2):
        try:
            with svc.db.write() as conn:
                result = ingest_batch(conn, svc.settings, station, body, now, prepared)
                if result.orders_changed:
                    publish_orders_changed(conn, result.order_sites)
            break
        except IntegrityError:
            # A concurrent identical batch stored the same keys first; the retry sees them as duplicates.
            if attempt == 2:
                raise
    new, types = set(result.accepted), []
    for ev in body.events:
        # A key repeated within the batch was stored once: count it once.
        if ev.key in new:
            new.remove(ev.key)
            types.append(ev.type)
    svc.metrics.stored(types)
    if result.orders_changed:
        svc.notifier.notify(result.order_sites)
    with svc.db.read() as conn:
        pending = pending_orders(conn, station.name, station.sites[0], now)
        asked = FEATURE_ORDER_CANCEL in features
        cancelled = cancelled_orders(conn, station.name, station.sites[0], now) if asked else []
        registry = registry_changes(
            conn,
            body.registry_cursor,
            svc.settings.limits.registry_page_size,
            now,
            station.sites[0],
            svc.settings.regions,
            svc.settings.links.valid_qualifications,
        )
    reply = SyncReply(
        accepted=result.accepted,
        duplicates=result.duplicates,
        orders=pending,
        registry=registry,
        server_time=now,
        cancelled=cancelled,
    )
    return wire_reply(reply, features)


IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in sorted(IMAGE_TYPES)},
    }
}


@router.put(
    "/images/{sha256}",
    status_code=201,
    response_model=ImageStored,
    openapi_extra=IMAGE_BODY,
    summary="Upload a hit image, addressed by its sha256",
    responses={200: {"description": "already held"}},
)
async def put_image(
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="sha256 of the body, lower-case hex")],
    request: Request,
    station: Caller,
    svc: ServicesDep,
) -> dict[str, object]:
    ctype, data = await read_image_body(request, svc.settings.limits.max_image_bytes, sha256)
    return await run_in_threadpool(_store_image, svc, sha256, ctype, data, station.name)


async def read_image_body(request: Request, max_bytes: int, sha256: str | None = None) -> tuple[str, bytes]:
    """The upload's content type and bytes, once they pass every check (and hash to `sha256` if given)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in IMAGE_TYPES:
        raise UnsupportedMedia(f"Content-Type must be one of {', '.join(sorted(IMAGE_TYPES))}")
    data = await request.body()
    if len(data) > max_bytes:
        raise TooLarge(f"image over {max_bytes} bytes")
    if not data:
        raise BadInput("image body is empty", "empty")
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise BadInput("body does not hash to the sha256 in the address", "hash_mismatch")
    if not data.startswith(MAGIC[ctype]):
        raise UnsupportedMedia(f"body is not a {ctype} image")
    check_upload(data, ctype, max_bytes)
    return ctype, data


def check_upload(data: bytes, ctype: str, max_bytes: int) -> None:
    """The image gate on the header alone: the server stores and serves images, it never decodes them, and
    the header check costs microseconds. Officers' browsers are spared bombs and lying headers."""
    limits = replace(UPLOAD_LIMITS, max_bytes=max_bytes, formats=frozenset({FORMAT_OF[ctype]}))
    try:
        probe(data, limits)
    except ImageRefused as exc:
        raise BadInput(f"image refused ({exc.reason}): {exc}", "image_refused") from None


def insert_image(conn: Connection, sha256: str, ctype: str, data: bytes, station_id: str | None) -> bool:
    """Keep the image unless it is already held (images are addressed by content); True when stored now."""
    if conn.execute(select(images.c.sha256).where(images.c.sha256 == sha256)).first() is not None:
        return False
    conn.execute(
        images.insert().values(
            sha256=sha256,
            content_type=ctype,
            size=len(data),
            data=data,
            station_id=station_id,
            created_at=iso(utcnow()),
        )
    )
    return True


def _store_image(svc: Services, sha256: str, ctype: str, data: bytes, station_id: str) -> dict[str, object]:
    with svc.db.write() as conn:
        stored = insert_image(conn, sha256, ctype, data, station_id)
    return {"sha256": sha256, "size": len(data), "content_type": ctype, "stored": stored}


@router.get("/orders/poll", response_model=OrdersPollReply, summary="Wait for pull orders newer than `after`")
async def poll_orders(
    request: Request,
    station: Caller,
    svc: ServicesDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="last order seq the station holds")] = 0,
    timeout: Annotated[float, Query(ge=0, le=30, description="seconds to wait when nothing is new")] = 25.0,
) -> Response:
    features = wanted_features(request)
    cancellations = FEATURE_ORDER_CANCEL in features
    deadline = time.monotonic() + min(timeout, svc.settings.orders.max_poll_seconds)
    site = station.sites[0]

    def heard() -> None:
        with svc.db.write() as conn:
            touch_station(conn, station.name, utcnow())

    # A poll is a sign of life too: a station whose batches are all refused is not silent. It is written
    # at most every HEARD_EVERY_S per station and process: a station re-polls the moment each order
    # reaches it, and a write per re-poll would queue it behind the sync batches (SQLite takes one
    # writer at a time) while the next order is already waiting to be delivered.
    state = request.app.state
    if not hasattr(state, "stations_heard"):
        state.stations_heard = {}
    last_heard: dict[str, float] = state.stations_heard
    every = min(HEARD_EVERY_S, svc.settings.stations.offline_after_s / 4)
    if time.monotonic() - last_heard.get(station.name, -every) >= every:
        await run_in_threadpool(heard)
        last_heard[station.name] = time.monotonic()

    def query() -> tuple[list[PullOrderWire], int, list[OrderCancelWire]]:
        with svc.db.read() as conn:
            now = utcnow()
            found = pending_orders(conn, station.name, site, now, after=after)
            cancelled = cancelled_orders(conn, station.name, site, now) if cancellations else []
            return list(found), last_order_seq(conn, station.name, site), cancelled

    known: set[str] | None = None
    while True:
        # Subscribe before querying so that an order committed in between still wakes us.
        sub = svc.notifier.subscribe(site)
        try:
            found, last, cancelled = await run_in_threadpool(query)
            left = deadline - time.monotonic()
            # A cancellation made while this poll waited wakes it too (the station holds the earlier ones).
            if known is None:
                known = {c.order_id for c in cancelled}
            news = any(c.order_id not in known for c in cancelled)
            if found or news or left <= 0:
                reply = OrdersPollReply(
                    orders=found, last_seq=last, server_time=utcnow(), cancelled=cancelled
                )
                return wire_reply(reply, features)
            try:
                await sub.wait(left)
            except asyncio.CancelledError:
                # The server is shutting down: answer "nothing new" so the edge simply polls again later.
                reply = OrdersPollReply(orders=[], last_seq=last, server_time=utcnow(), cancelled=cancelled)
                return wire_reply(reply, features)
        finally:
            sub.close()
