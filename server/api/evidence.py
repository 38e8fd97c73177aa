"""Evidence endpoints: a signed bundle of review items, referrals with their package and the reply."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.accounts import Role
from server.authz import Caller
from server.db import utcnow
from server.deps import ServicesDep
from server.errors import Forbidden, Unavailable
from server.evidence.case_source import load_case
from server.evidence.collect import MAX_ITEMS, BundleRequest
from server.evidence.export import export_bundle
from server.evidence.fonts import FontMissing
from server.evidence.referrals import ReplyRequest, create_referral, get_package, get_referral, record_reply
from server.evidence.signing import SigningKeyError

# Who may call each route is in server.authz.RULES; items and referrals are bounded to the caller's sites.
router = APIRouter(prefix="/api/v1", tags=["evidence"])

ReferralId = Annotated[int, Path(ge=1, le=2**62, description="referral id")]
ItemIds = Annotated[list[Annotated[int, Field(ge=1, le=2**62)]], Field(max_length=MAX_ITEMS)]
CaseId = Annotated[int | None, Field(ge=1, le=2**62)]


class _Target(BaseModel):
    """A case, or review items without one: exactly one of the two."""

    model_config = ConfigDict(extra="forbid")

    item_ids: ItemIds = Field(default_factory=list, description="review item ids (without a case)")
    case_id: CaseId = Field(None, description="a case: its items, records and audit entries")

    @model_validator(mode="after")
    def _one_target(self) -> _Target:
        if (self.case_id is None) == (not self.item_ids):
            raise ValueError("give either case_id or item_ids")
        return self


ZIP: dict[int | str, dict[str, Any]] = {200: {"content": {"application/zip": {}}}}
# A server without its signing key (or, for the letter, a font with Chinese glyphs) cannot sign.
UNSIGNABLE: dict[int | str, dict[str, Any]] = {503: {"description": "no signing key or no Chinese font"}}


class BundleBody(_Target):
    """What to bundle; a reason includes the senders' full records (officers; audited)."""

    reveal_reason: str = Field(
        "", max_length=500, description="why the full sender records are needed (at least 10 characters)"
    )


class ReferralBody(_Target):
    """A referred case, or items decided `refer` to one authority, and the provisions it rests on."""

    legal_basis: str = Field(min_length=1, max_length=2000, description="the provisions cited")


class ReplyBody(BaseModel):
    """The authority's reply: its receipt and, once it opens one, its own case number."""

    model_config = ConfigDict(extra="forbid")

    receipt_ref: str = Field("", max_length=200, description="the receipt's reference")
    received_at: str = Field("", max_length=40, description="when the authority received it (date or time)")
    authority_case_number: str = Field("", max_length=200, description="the authority's case number")


class Referral(BaseModel):
    """A referral as stored: what was sent, its fingerprint, and the reply so far."""

    id: int
    item_ids: list[int]
    case_id: str | None
    sites: list[str]
    authority: str
    case_reference: str
    legal_basis: str
    fingerprint: str
    key_sha256: str
    package_sha256: str
    package_url: str
    created_by: str
    created_at: str
    receipt_ref: str | None
    received_at: str | None
    authority_case_number: str | None
    reply_by: str | None
    reply_at: str | None


def _unavailable(exc: Exception) -> Unavailable:
    code = "no_signing_key" if isinstance(exc, SigningKeyError) else "no_font"
    return Unavailable(str(exc), code)


@router.post(
    "/evidence/bundles",
    summary="A signed evidence bundle (zip) of review items; audited",
    response_class=Response,
    responses={**ZIP, **UNSIGNABLE},
)
def post_bundle(body: BundleBody, who: Caller, svc: ServicesDep) -> Response:
    if body.reveal_reason and who.role is not Role.OFFICER:
        raise Forbidden("only officers may include full sender records")
    item_ids = body.item_ids
    try:
        with svc.db.write() as conn:
            case = None
            if body.case_id is not None:
                item_ids, case = load_case(conn, who, body.case_id, svc.settings)
            req = BundleRequest(item_ids=item_ids, case=case, reveal_reason=body.reveal_reason)
            bundle, _ = export_bundle(conn, who, req, svc.settings, svc.privacy)
    except SigningKeyError as exc:
        raise _unavailable(exc) from exc
    named = f"case-{body.case_id}" if body.case_id else "items-" + "-".join(map(str, item_ids[:5]))
    name = f"evidence-{named}-{bundle.fingerprint[:12]}.zip"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Bundle-Fingerprint": bundle.fingerprint,
    }
    return Response(bundle.data, media_type="application/zip", headers=headers)


@router.post(
    "/referrals",
    response_model=Referral,
    status_code=201,
    summary="Refer a case or items: letter and bundle",
    responses=UNSIGNABLE,
)
def post_referral(body: ReferralBody, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    try:
        with svc.db.write() as conn:
            return create_referral(
                conn, who, body.item_ids, body.case_id, body.legal_basis, svc.settings, svc.privacy, utcnow()
            )
    except (SigningKeyError, FontMissing) as exc:
        raise _unavailable(exc) from exc


@router.get("/referrals/{referral_id}", response_model=Referral, summary="One referral and its reply")
def get_one(referral_id: ReferralId, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.read() as conn:
        return get_referral(conn, who, referral_id)


@router.get(
    "/referrals/{referral_id}/package",
    summary="The referral package as sent: letter (PDF) and evidence bundle",
    response_class=Response,
    responses=ZIP,
)
def get_one_package(referral_id: ReferralId, who: Caller, svc: ServicesDep) -> Response:
    with svc.db.read() as conn:
        data = get_package(conn, who, referral_id)
    headers = {"Content-Disposition": f'attachment; filename="referral-{referral_id}.zip"'}
    return Response(data, media_type="application/zip", headers=headers)


@router.post(
    "/referrals/{referral_id}/reply", response_model=Referral, summary="Record the authority's reply"
)
def post_reply(referral_id: ReferralId, body: ReplyBody, who: Caller, svc: ServicesDep) -> dict[str, Any]:
    reply = ReplyRequest(body.receipt_ref, body.received_at, body.authority_case_number)
    with svc.db.write() as conn:
        return record_reply(conn, who, referral_id, reply, svc.secret, utcnow())
