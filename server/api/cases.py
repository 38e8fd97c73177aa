"""Case endpoints: open and work a case, the rights holders registry, notices, samples and disposals."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.accounts import Principal
from server.api.station import IMAGE_BODY, insert_image, read_image_body
from server.authz import Caller
from server.cases import custody, holders, notices, read, store
from server.cases.rules import DISPOSAL_METHODS, REPLIES
from server.db import utcnow
from server.deps import ServicesDep
from server.errors import BadInput
from server.scope import link_images, record
from server.sites import local_day, site_zone

# Who may call each route is in server.authz.RULES; a case is shown only to callers of all its sites.
router = APIRouter(prefix="/api/v1", tags=["cases"])

CaseId = Annotated[int, Path(ge=1, le=2**62, description="case id")]
HolderId = Annotated[int, Path(ge=1, le=2**62, description="rights holder id")]
NoticeId = Annotated[int, Path(ge=1, le=2**62, description="notification id")]
ItemIds = Annotated[list[Annotated[int, Field(ge=1, le=2**62)]], Field(min_length=1, max_length=500)]
Text = Annotated[str, Field(min_length=1, max_length=500)]


class CaseOpenRequest(BaseModel):
    """A new case from review items (parcels of one sender or one consignment)."""

    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, Field(min_length=1, max_length=200)]
    items: ItemIds


class CaseItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: ItemIds


class CaseOwnerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: Annotated[str, Field(min_length=1, max_length=64)]


class CaseHolderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rights_holder_id: Annotated[int, Field(ge=1, le=2**62)]


class CaseStepRequest(BaseModel):
    """A step of the state machine; notify, deliver and reply have routes of their own."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["detain", "refer", "release", "destroy", "close"]
    fields: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=dict,
        description="detain: legal_basis, storage_location; refer: authority (market_regulator|police), "
        "case_reference; release: note",
    )


class DeliveredRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delivered_at: datetime | None = Field(None, description="when the exported notice was handed over")

    @field_validator("delivered_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. +08:00 or Z)")
        return value


class ReplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reply: Literal["counterfeit", "genuine", "no_reply"] = Field(description=" / ".join(REPLIES))
    note: Annotated[str, Field(max_length=2000)] = ""


class SampleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    review_id: Annotated[int, Field(ge=1, le=2**62)]
    description: Text
    quantity: Annotated[int, Field(ge=1, le=1_000_000)]
    released_to: Annotated[str, Field(min_length=1, max_length=200)]
    receipt_reference: Annotated[str, Field(min_length=1, max_length=128)]


class DisposalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    review_id: Annotated[int, Field(ge=1, le=2**62)]
    method: Literal["destruction", "donation", "return", "handover"] = Field(
        description=", ".join(DISPOSAL_METHODS) + " (donation only after de-branding)"
    )
    place: Annotated[str, Field(min_length=1, max_length=300)]
    done_on: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD, the site's day")]
    witnesses: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=100)]], Field(min_length=1, max_length=20)
    ]
    photos: Annotated[list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]], Field(max_length=50)] = []
    certificate_ref: Annotated[str, Field(min_length=1, max_length=128)]

    @field_validator("done_on")
    @classmethod
    def _day(cls, value: str) -> str:
        datetime.strptime(value, "%Y-%m-%d")  # raises ValueError on 2026-02-30
        return value


class Trademark(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: Annotated[str, Field(min_length=1, max_length=32, description="registration number")]
    mark: Annotated[str, Field(min_length=1, max_length=128)]
    classes: Annotated[list[Annotated[int, Field(ge=1, le=45)]], Field(max_length=45)] = []


class HolderRequest(BaseModel):
    """A rights holder: brand, contact, the language of its notices, recorded trademarks."""

    model_config = ConfigDict(extra="forbid")
    brand: Annotated[str, Field(min_length=1, max_length=128)]
    contact_name: Annotated[str, Field(min_length=1, max_length=128)]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)] | None = None
    phone: Annotated[str, Field(pattern=r"^[0-9+() -]{5,32}$")] | None = None
    address: Annotated[str, Field(max_length=500)] = ""
    language: Literal["zh", "en"] = "zh"
    trademarks: Annotated[list[Trademark], Field(max_length=200)] = []


class HolderChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact_name: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)] | None = None
    phone: Annotated[str, Field(pattern=r"^[0-9+() -]{5,32}$")] | None = None
    address: Annotated[str, Field(max_length=500)] | None = None
    language: Literal["zh", "en"] | None = None
    trademarks: Annotated[list[Trademark], Field(max_length=200)] | None = None
    active: bool | None = None


class CaseSummary(BaseModel):
    id: int
    title: str
    site_id: str
    sites: list[str]
    owner: str
    state: str
    state_since: str
    due_key: str | None
    due_at: str | None
    overdue: bool
    rights_holder_id: int | None
    outcome: str | None
    fields: dict[str, Any]
    version: int
    created_by: str
    created_at: str
    closed_at: str | None


class CaseDetail(CaseSummary):
    items: list[dict[str, Any]]
    rights_holder: dict[str, Any] | None
    notifications: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    disposals: list[dict[str, Any]]
    undisposed: int
    deadline: dict[str, str] | None
    next_actions: list[str]
    required: dict[str, list[str]]
    trail: list[dict[str, Any]]


class HolderItem(BaseModel):
    id: int
    brand: str
    contact_name: str
    email: str | None
    phone: str | None
    address: str
    language: str
    trademarks: list[dict[str, Any]]
    active: bool
    updated_at: str


class NoticeReply(BaseModel):
    case: CaseDetail
    notice_id: int
    sent: bool
    error: str | None


class PhotoStored(BaseModel):
    sha256: str
    size: int
    content_type: str


def _detail(svc: ServicesDep, who: Principal, case_id: int) -> dict[str, Any]:
    with svc.db.read() as conn:
        return read.case_detail(conn, svc.settings, who, case_id, utcnow())


@router.get("/cases", response_model=list[CaseSummary], summary="The caller's cases, nearest deadline first")
def get_cases(
    who: Caller,
    svc: ServicesDep,
    state: Annotated[str | None, Query(max_length=24, description="only cases in this state")] = None,
) -> list[dict[str, Any]]:
    with svc.db.read() as conn:
        return read.list_cases(conn, who, utcnow(), state)


@router.post("/cases", response_model=CaseDetail, status_code=201, summary="Open a case from review items")
def post_case(body: CaseOpenRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        case_id = store.open_case(conn, svc.secret, who, body.title, body.items, utcnow())
    return _detail(svc, who, case_id)


@router.get("/cases/{case_id}", response_model=CaseDetail, summary="One case with everything recorded")
def get_case(case_id: CaseId, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    return _detail(svc, who, case_id)


@router.post("/cases/{case_id}/items", response_model=CaseDetail, summary="Add review items to a case")
def post_items(case_id: CaseId, body: CaseItemsRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        store.add_items(conn, svc.secret, who, case_id, body.items, utcnow())
    return _detail(svc, who, case_id)


@router.post("/cases/{case_id}/owner", response_model=CaseDetail, summary="Hand the case to another officer")
def post_owner(case_id: CaseId, body: CaseOwnerRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        store.set_owner(conn, svc.secret, who, case_id, body.owner)
    return _detail(svc, who, case_id)


@router.post("/cases/{case_id}/rights-holder", response_model=CaseDetail, summary="Name the rights holder")
def post_holder(case_id: CaseId, body: CaseHolderRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        store.set_rights_holder(conn, svc.secret, who, case_id, body.rights_holder_id)
    return _detail(svc, who, case_id)


@router.post("/cases/{case_id}/steps", response_model=CaseDetail, summary="Take a step of the case")
def post_step(case_id: CaseId, body: CaseStepRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        store.take_step(conn, svc.settings, who, case_id, body.action, body.fields, utcnow())
    return _detail(svc, who, case_id)


def _send(svc: ServicesDep, who: Principal, case_id: int, notice_id: int) -> str | None:
    """Send outside any transaction (a slow mail server holds no lock); the outcome is then recorded."""
    with svc.db.read() as conn:
        notice = notices.load_notice(conn, who, case_id, notice_id)
    try:
        notices.send_message(notices.message_of(notice, svc.settings.cases), svc.settings.cases)
    except notices.NoticeNotSent as exc:
        with svc.db.write() as conn:
            notices.record_send_error(conn, notice_id, str(exc))
        return str(exc)
    with svc.db.write() as conn:
        notices.deliver(conn, svc.settings, who, case_id, utcnow(), how="smtp")
    return None


@router.post(
    "/cases/{case_id}/notify",
    response_model=NoticeReply,
    summary="Write the rights holder's notice; sent by SMTP when configured, else to be exported",
)
def post_notify(case_id: CaseId, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        notice_id = notices.notify(conn, svc.settings, who, case_id, utcnow())
        channel = notices.current_notice(conn, case_id).channel
    error = _send(svc, who, case_id, notice_id) if channel == "smtp" else None
    detail = _detail(svc, who, case_id)
    sent = channel == "smtp" and error is None
    return {"case": detail, "notice_id": notice_id, "sent": sent, "error": error}


@router.post(
    "/cases/{case_id}/notices/{notice_id}/send", response_model=NoticeReply, summary="Send the notice again"
)
def post_resend(case_id: CaseId, notice_id: NoticeId, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.read() as conn:
        notices.load_notice(conn, who, case_id, notice_id)
        state = store.load_case(conn, who, case_id).state
    if state != "notified":
        raise BadInput(f"the case is {state}: the notice was already delivered", "delivered")
    error = _send(svc, who, case_id, notice_id)
    return {"case": _detail(svc, who, case_id), "notice_id": notice_id, "sent": error is None, "error": error}


@router.get(
    "/cases/{case_id}/notices/{notice_id}/eml",
    summary="The notice as an e-mail file (RFC 5322), to hand over or send by other means",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}}},
)
def get_eml(case_id: CaseId, notice_id: NoticeId, who: Caller, svc: ServicesDep) -> Response:
    with svc.db.write() as conn:
        notice = notices.load_notice(conn, who, case_id, notice_id)
        sites = store.case_sites(conn, store.load_case(conn, who, case_id))
        record(
            conn,
            svc.secret,
            who.name,
            "case_notice_export",
            store.case_target(case_id),
            sites,
            {"notice": notice_id},
        )
    data = notices.message_of(notice, svc.settings.cases).as_bytes()
    name = f"{notices.case_ref(case_id)}-notice-{notice_id}.eml"
    return Response(
        data, media_type="message/rfc822", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.post(
    "/cases/{case_id}/delivered", response_model=CaseDetail, summary="The exported notice was handed over"
)
def post_delivered(case_id: CaseId, body: DeliveredRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        notices.deliver(conn, svc.settings, who, case_id, utcnow(), body.delivered_at, how="handed_over")
    return _detail(svc, who, case_id)


@router.post("/cases/{case_id}/reply", response_model=CaseDetail, summary="Record the rights holder's reply")
def post_reply(case_id: CaseId, body: ReplyRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        notices.record_reply(conn, svc.settings, who, case_id, body.reply, body.note, utcnow())
    return _detail(svc, who, case_id)


@router.post(
    "/cases/{case_id}/samples", response_model=CaseDetail, summary="Samples released to the rights holder"
)
def post_sample(case_id: CaseId, body: SampleRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        custody.release_sample(conn, svc.secret, who, case_id, body.model_dump(), utcnow())
    return _detail(svc, who, case_id)


@router.post(
    "/cases/{case_id}/disposals",
    response_model=CaseDetail,
    summary="Record how seized goods were disposed of",
)
def post_disposal(case_id: CaseId, body: DisposalRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    now = utcnow()
    with svc.db.write() as conn:
        site = store.load_case(conn, who, case_id).site_id
        today = datetime.strptime(local_day(now, site_zone(svc.settings, site)), "%Y-%m-%d").date()
        custody.record_disposal(conn, svc.secret, who, case_id, body.model_dump(), now, today)
    return _detail(svc, who, case_id)


@router.post(
    "/cases/{case_id}/photos",
    response_model=PhotoStored,
    status_code=201,
    summary="Upload a disposal photo (the image bytes as the body); name its sha256 in the disposal record",
    openapi_extra=IMAGE_BODY,
)
async def post_photo(case_id: CaseId, request: Request, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    ctype, data = await read_image_body(request, svc.settings.limits.max_image_bytes)
    return await run_in_threadpool(_store_photo, svc, who, case_id, ctype, data)


def _store_photo(svc: ServicesDep, who: Principal, case_id: int, ctype: str, data: bytes) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    with svc.db.write() as conn:
        sites = store.case_sites(conn, store.load_case(conn, who, case_id))
        insert_image(conn, sha, ctype, data, None)
        # Officers of the case's sites see the photo, as they see the parcels' own images.
        for site in sites:
            link_images(conn, site, [sha])
        record(conn, svc.secret, who.name, "case_photo", store.case_target(case_id), sites, {"sha256": sha})
    return {"sha256": sha, "size": len(data), "content_type": ctype}


@router.get("/rights-holders", response_model=list[HolderItem], summary="The rights holders registry")
def get_holders(
    who: Caller,
    svc: ServicesDep,
    inactive: Annotated[bool, Query(description="include inactive entries")] = False,
) -> list[dict[str, Any]]:
    with svc.db.read() as conn:
        return holders.list_holders(conn, active_only=not inactive)


@router.post(
    "/rights-holders", response_model=HolderItem, status_code=201, summary="Register a rights holder"
)
def post_rights_holder(body: HolderRequest, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        holder_id = holders.add_holder(conn, svc.secret, who, body.model_dump(), utcnow())
        return holders.get_holder(conn, holder_id)


@router.patch("/rights-holders/{holder_id}", response_model=HolderItem, summary="Change a rights holder")
def patch_rights_holder(
    holder_id: HolderId, body: HolderChange, who: Caller, svc: ServicesDep
) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    if not data:
        raise BadInput("name at least one field to change", "empty")
    if any(v is None for v in data.values()):
        raise BadInput("fields cannot be set to null", "null")
    with svc.db.write() as conn:
        holders.change_holder(conn, svc.secret, who, holder_id, data, utcnow())
        return holders.get_holder(conn, holder_id)
