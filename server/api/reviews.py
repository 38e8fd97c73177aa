"""Review endpoints for officers: the queue, one item's evidence, claims and decisions; evidence images."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from server.accounts import Principal
from server.api.responses import ReviewEvidence, ReviewItem
from server.authz import Caller
from server.db import utcnow
from server.deps import ServicesDep
from server.errors import NotFound
from server.review_queue import next_item
from server.reviews import MAX_BULK, act, bulk_release, evidence, followups, queue
from server.schema import images
from server.scope import image_visible, record

# Who may call each route is in server.authz.RULES; items and images are bounded to the caller's sites.
router = APIRouter(prefix="/api/v1", tags=["reviews"])

ItemId = Annotated[int, Path(ge=1, le=2**62, description="review item id")]


class DecisionRequest(BaseModel):
    """An officer's decision on a claimed item, with the fields that decision requires."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["release", "open_inspection", "detain", "seize", "refer"] = Field(
        description="the decision"
    )
    fields: dict[str, Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=dict,
        description="release/open_inspection: note; detain: legal_basis, storage_location; "
        "seize: legal_basis, seizure_record, rights_holder; refer: authority (market_regulator|police), "
        "case_reference. legal_basis is one of [server.review] legal_bases, with optional free text in "
        "legal_basis_detail; text fields must say something (not 'x'), record numbers carry a number",
    )
    add_to_gallery: bool = Field(
        False, description="detain/seize: add the parcel's images to the counterfeit gallery"
    )
    gallery_label: str = Field(
        "", max_length=128, description="label of the gallery references (default category)"
    )


@router.get(
    "/reviews",
    response_model=list[ReviewItem],
    summary="The review queue (most urgent first) or the statutory follow-ups due",
)
def get_queue(
    who: Caller,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    view: Annotated[
        Literal["queue", "followups"],
        Query(description="queue: awaiting a decision; followups: by statutory date"),
    ] = "queue",
) -> list[dict[str, Any]]:
    with svc.db.read() as conn:
        if view == "followups":
            return followups(conn, who, limit)
        return queue(conn, who, utcnow(), limit)


class NextItem(BaseModel):
    """The item to open after one is decided; null when the queue is empty."""

    id: int | None


# Declared before /reviews/{item_id}, which would otherwise take "next" for an id.
@router.get("/reviews/next", response_model=NextItem, summary="The item that follows one in queue order")
def get_next(
    who: Caller,
    svc: ServicesDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="the item just decided")] = 0,
    stage: Annotated[
        int, Query(ge=0, le=1, description="0 when that item was back from inspection when opened, else 1")
    ] = 1,
) -> dict[str, Any]:
    with svc.db.read() as conn:
        return {"id": next_item(conn, who, utcnow(), after, stage)}


@router.get("/reviews/{item_id}", response_model=ReviewEvidence, summary="One review item with its evidence")
def get_item(item_id: ItemId, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.read() as conn:
        return evidence(conn, item_id, who, svc.settings.regions)


def _act(
    svc: ServicesDep, who: Principal, item_id: int, action: str, body: DecisionRequest | None
) -> dict[str, Any]:
    with svc.db.write() as conn:
        item = act(
            conn,
            item_id,
            who,
            action,
            utcnow(),
            svc.settings,
            body.fields if body else None,
            bool(body and body.add_to_gallery),
            body.gallery_label if body else "",
        )
        detail: dict[str, Any] = {"action": action}
        if body is not None:
            detail.update(fields=body.fields, gallery=body.add_to_gallery)
        target = f"review:{item_id}"
        record(conn, svc.secret, who.name, f"review_{action}", target, [item["site_id"]], detail)
    return item


@router.post("/reviews/{item_id}/claim", response_model=ReviewItem, summary="Claim an item (lease)")
def claim(item_id: ItemId, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    return _act(svc, who, item_id, "claim", None)


@router.post(
    "/reviews/{item_id}/unclaim", response_model=ReviewItem, summary="Give a claimed item back to the queue"
)
def unclaim(item_id: ItemId, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    return _act(svc, who, item_id, "unclaim", None)


@router.post("/reviews/{item_id}/decision", response_model=ReviewItem, summary="Decide a claimed item")
def decide(item_id: ItemId, body: DecisionRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    return _act(svc, who, item_id, body.action, body)


class BulkReleaseRequest(BaseModel):
    """Low-risk HOLD items of one site released together under one typed reason."""

    model_config = ConfigDict(extra="forbid")

    item_ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(
        min_length=1, max_length=MAX_BULK, description="the items (open HOLDs at or below the risk limit)"
    )
    reason: str = Field(min_length=1, max_length=500, description="why these parcels may go on")


@router.post(
    "/reviews/bulk-release",
    response_model=list[ReviewItem],
    summary="Release low-risk HOLD items of one site together (audited per item)",
)
def post_bulk_release(body: BulkReleaseRequest, who: Caller, svc: ServicesDep) -> list[dict[str, Any]]:
    with svc.db.write() as conn:
        done = bulk_release(conn, body.item_ids, who, body.reason, utcnow(), svc.settings)
        for item in done:
            detail = {"action": "release", "fields": {"note": body.reason.strip()}, "bulk": len(done)}
            record(
                conn,
                svc.secret,
                who.name,
                "review_release",
                f"review:{item['id']}",
                [item["site_id"]],
                detail,
            )
    return done


@router.get(
    "/images/{sha256}",
    summary="An uploaded image (evidence for officers, gallery for stations)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/bmp": {}, "image/tiff": {}}}},
)
def get_image(
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    who: Caller,
    svc: ServicesDep,
) -> Response:
    with svc.db.read() as conn:
        # Stations fetch gallery references only; readers also the evidence of their sites' events.
        if not image_visible(conn, who, sha256):
            raise NotFound("no such image")
        row = conn.execute(
            select(images.c.content_type, images.c.data).where(images.c.sha256 == sha256)
        ).first()
    if row is None:
        raise NotFound("no such image")
    return Response(content=bytes(row.data), media_type=row.content_type)
