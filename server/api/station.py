"""Station endpoints: sync batches, content-addressed image uploads and the long poll for pull orders."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from edge.wire import (
    FEATURES_HEADER,
    SENDER_RISK_FEATURE,
    OrdersPollReply,
    PullOrderWire,
    SyncReply,
    SyncRequest,
)
from scanner_drivers.image_gate import ImageLimits, ImageRefused, probe
from server.api.responses import ImageStored
from server.authz import Caller
from server.db import iso, utcnow
from server.deps import Services, ServicesDep
from server.errors import BadInput, TooLarge, UnsupportedMedia
from server.ingest import ingest_batch
from server.notify import publish_orders_changed
from server.orders import last_order_seq, pending_orders
from server.registry_feed import registry_changes
from server.schema import images
from server.stations import touch_station

router = APIRouter(prefix="/api/v1", tags=["station"])
# Fields of the sync reply that only stations naming the sender-risk feature receive.
LEGACY_EXCLUDE: Any = {"registry": {"senders": {"__all__": {"risk", "qualified", "customer_token"}}}}

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


@router.post("/sync", response_model=SyncReply, summary="Store a station's event batch and reply with orders")
def sync(body: SyncRequest, station: Caller, svc: ServicesDep, request: Request) -> SyncReply | Response:
    if len(body.events) > svc.settings.limits.max_batch_events:
        raise TooLarge(f"batch has {len(body.events)} events; at most {svc.settings.limits.max_batch_events}")
    now = utcnow()
    for attempt in (1, 2):
        try:
            with svc.db.write() as conn:
                result = ingest_batch(conn, svc.settings, station, body, now)
                if result.orders_changed:
                    publish_orders_changed(conn)
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
        svc.notifier.notify()
    with svc.db.read() as conn:
        pending = pending_orders(conn, station.name, station.sites[0], now)
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
    )
    if SENDER_RISK_FEATURE in request.headers.get(FEATURES_HEADER, "").split(","):
        return reply
    # A station that does not read the sender-risk fields would refuse them: leave them out.
    return Response(reply.model_dump_json(exclude=LEGACY_EXCLUDE), media_type="application/json")


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
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in IMAGE_TYPES:
        raise UnsupportedMedia(f"Content-Type must be one of {', '.join(sorted(IMAGE_TYPES))}")
    data = await request.body()
    if len(data) > svc.settings.limits.max_image_bytes:
        raise TooLarge(f"image over {svc.settings.limits.max_image_bytes} bytes")
    if not data:
        raise BadInput("image body is empty", "empty")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BadInput("body does not hash to the sha256 in the address", "hash_mismatch")
    if not data.startswith(MAGIC[ctype]):
        raise UnsupportedMedia(f"body is not a {ctype} image")
    check_upload(data, ctype, svc.settings.limits.max_image_bytes)
    return await run_in_threadpool(_store_image, svc, sha256, ctype, data, station.name)


def check_upload(data: bytes, ctype: str, max_bytes: int) -> None:
    """The image gate on the header alone: the server stores and serves images, it never decodes them, and
    the header check costs microseconds. Officers' browsers are spared bombs and lying headers."""
    limits = replace(UPLOAD_LIMITS, max_bytes=max_bytes, formats=frozenset({FORMAT_OF[ctype]}))
    try:
        probe(data, limits)
    except ImageRefused as exc:
        raise BadInput(f"image refused ({exc.reason}): {exc}", "image_refused") from None


def _store_image(svc: Services, sha256: str, ctype: str, data: bytes, station_id: str) -> dict[str, object]:
    with svc.db.write() as conn:
        if conn.execute(select(images.c.sha256).where(images.c.sha256 == sha256)).first() is None:
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
            stored = True
        else:
            stored = False
    return {"sha256": sha256, "size": len(data), "content_type": ctype, "stored": stored}


@router.get("/orders/poll", response_model=OrdersPollReply, summary="Wait for pull orders newer than `after`")
async def poll_orders(
    station: Caller,
    svc: ServicesDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="last order seq the station holds")] = 0,
    timeout: Annotated[float, Query(ge=0, le=30, description="seconds to wait when nothing is new")] = 25.0,
) -> OrdersPollReply:
    deadline = time.monotonic() + min(timeout, svc.settings.orders.max_poll_seconds)
    site = station.sites[0]

    def heard() -> None:
        with svc.db.write() as conn:
            touch_station(conn, station.name, utcnow())

    # A poll is a sign of life too: a station whose batches are all refused is not silent.
    await run_in_threadpool(heard)

    def query() -> tuple[list[PullOrderWire], int]:
        with svc.db.read() as conn:
            found = pending_orders(conn, station.name, site, utcnow(), after=after)
            return list(found), last_order_seq(conn, station.name, site)

    while True:
        # Subscribe before querying so that an order committed in between still wakes us.
        sub = svc.notifier.subscribe()
        try:
            found, last = await run_in_threadpool(query)
            left = deadline - time.monotonic()
            if found or left <= 0:
                return OrdersPollReply(orders=found, last_seq=last, server_time=utcnow())
            try:
                await sub.wait(left)
            except asyncio.CancelledError:
                # The server is shutting down: answer "nothing new" so the edge simply polls again later.
                return OrdersPollReply(orders=[], last_seq=last, server_time=utcnow())
        finally:
            sub.close()
