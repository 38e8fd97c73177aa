"""Legal hold endpoints: place a hold on a review item, release it, list the holds of the caller's sites."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from server.authz import Caller
from server.db import utcnow
from server.deps import ServicesDep
from server.legal_holds import HoldRequest, ReleaseRequest, list_holds, place_hold, release_hold
from server.scope import record

# Who may call each route is in server.authz.RULES; holds are bounded to the caller's sites.
router = APIRouter(prefix="/api/v1", tags=["holds"])

HoldId = Annotated[int, Path(ge=1, le=2**62, description="legal hold id")]


class LegalHold(BaseModel):
    """A hold as stored; `active` until released."""

    id: int
    target_type: str
    target_id: str
    site_id: str
    reason: str
    placed_by: str
    placed_at: str
    released_by: str | None
    released_at: str | None
    release_reason: str | None
    active: bool


@router.post("/holds", status_code=201, response_model=LegalHold, summary="Place a legal hold on an item")
def post_hold(body: HoldRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        hold = place_hold(conn, who, body, utcnow())
        target = f"{hold['target_type']}:{hold['target_id']}"
        detail = {"hold": hold["id"], "target": target, "reason": body.reason}
        record(conn, svc.secret, who.name, "hold_place", f"hold:{hold['id']}", [hold["site_id"]], detail)
    return hold


@router.post("/holds/{hold_id}/release", response_model=LegalHold, summary="Release a legal hold")
def post_release(hold_id: HoldId, body: ReleaseRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        hold = release_hold(conn, who, hold_id, body.reason, utcnow())
        target = f"{hold['target_type']}:{hold['target_id']}"
        detail = {"hold": hold_id, "target": target, "reason": body.reason}
        record(conn, svc.secret, who.name, "hold_release", f"hold:{hold_id}", [hold["site_id"]], detail)
    return hold


@router.get("/holds", response_model=list[LegalHold], summary="Legal holds of your sites, newest first")
def get_holds(
    who: Caller,
    svc: ServicesDep,
    active: Annotated[bool, Query(description="only holds not yet released")] = True,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    with svc.db.read() as conn:
        return list_holds(conn, who, active, limit)
