"""Response models of the API (not on the wire to edges): they make the OpenAPI document complete."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# Times in these replies are the stored UTC ISO 8601 strings.


class WatchEntry(BaseModel):
    entry_id: str
    list: str
    kind: str
    token: str
    masked: str
    reason: str
    source: str
    expires_at: str | None
    appeal_status: str
    active: bool
    created_by: str
    created_at: str
    scope: str
    scope_ref: str | None


class OrderItem(BaseModel):
    order_id: str
    seq: int
    scope: str
    waybill: str | None
    sender_token: str | None
    reason: str
    issuer: str
    site_id: str | None
    created_at: str
    expires_at: str
    origin_station_id: str | None
    cancelled: bool
    cancelled_at: str | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    stations: dict[str, str]


class ReviewItem(BaseModel):
    id: int
    event_key: str
    station_id: str
    site_id: str
    line_id: str
    waybill: str | None
    tracking_id: str
    decision: str
    reasons: list[str]
    risk: float
    sender_token: str | None
    category: str | None
    priority: int
    state: str
    created_at: str
    due_at: str
    claimed_by: str | None
    lease_until: str | None
    outcome: str | None
    outcome_fields: dict[str, str] | None
    decided_by: str | None
    decided_at: str | None
    statutory_due_at: str | None


class SenderMasked(BaseModel):
    sender_token: str
    id_type: str
    id_masked: str
    name_masked: str
    phone_masked: str | None
    verified: bool
    verified_at: str | None
    outlet: str
    courier: str
    agreement_customer: bool
    usc_code: str | None
    qualification: str
    updated_at: str | None = None


class SenderRevealed(SenderMasked):
    id_number: str
    name: str
    phone: str
    address: str


class ListedAs(BaseModel):
    list: str
    kind: str
    reason: str
    expires_at: str | None
    active: bool


class DeclaredContents(BaseModel):
    declared_name: str
    declared_category: str
    quantity: int
    inspected_on_receipt: bool


class ReviewEvidence(ReviewItem):
    images: list[dict[str, Any]]
    classifications: list[dict[str, Any]]
    divert: dict[str, Any] | None
    codes: list[str]
    sender: SenderMasked | None
    sender_history: list[ReviewItem]
    sender_listed: list[ListedAs]
    manifest: DeclaredContents | None


class Me(BaseModel):
    name: str
    kind: str
    role: str
    sites: list[str]


class LoginReply(BaseModel):
    username: str
    role: str
    csrf_token: str


class LoggedOut(BaseModel):
    logged_out: bool


class UserItem(BaseModel):
    username: str
    role: str
    sites: list[str]
    active: bool


class TokenReply(BaseModel):
    token: str


class StationItem(BaseModel):
    station_id: str
    site_id: str
    line_id: str
    active: bool
    last_seen_at: str | None


class StationRegistered(BaseModel):
    station_id: str
    site_id: str
    line_id: str
    token: str


class Revoked(BaseModel):
    station_id: str
    revoked: int


class Deactivated(BaseModel):
    username: str
    active: bool


class AuditEntry(BaseModel):
    n: int
    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    hash: str


class AuditCheck(BaseModel):
    entries: int
    ok: bool
    problems: list[str]


class ImageStored(BaseModel):
    sha256: str
    size: int
    content_type: str
    stored: bool


class ModelArtefact(BaseModel):
    name: str
    kind: str
    version: str
    sha256: str
    size: int
    mode: str
    manifest: dict[str, Any]
    published_by: str
    created_at: str
    url: str


class GalleryRef(BaseModel):
    ref_id: str
    image_sha256: str
    label: str
    category: str | None
    kind: str | None = None
    image_url: str
    created_at: str


class Gallery(BaseModel):
    total: int
    refs: list[GalleryRef]
    digest: str


class PullCounts(BaseModel):
    """requested = diverted + missed + pending, for every figure and filter."""

    requested: int
    diverted: int
    missed: int
    pending: int


class CountsSummary(BaseModel):
    parcels: int
    cleared: int
    held: int
    pulled: int
    no_reads: int
    realname_failures: int
    hits_by_reason: dict[str, int]
    hits_by_category: dict[str, int]
    pulls: PullCounts
    operator_actions: dict[str, int]


class ReviewSummary(BaseModel):
    review_items: int
    review_outcomes: dict[str, int]
    confirmed_hit_rate: float | None
    median_seconds_to_decision: float | None


class StationReport(CountsSummary, ReviewSummary):
    station_id: str
    site_id: str
    line_id: str
    device_uptime: dict[str, float]
    online: bool
    last_seen_at: str | None
    devices_down: list[str]


class LineReport(CountsSummary):
    site_id: str
    line_id: str


class OrderCounts(BaseModel):
    created: int
    by_state: dict[str, int]


class TrendDay(BaseModel):
    date: str
    parcels: int
    held: int
    pulled: int
    requested: int
    diverted: int
    missed: int
    pending: int


class DailyReport(CountsSummary, ReviewSummary):
    date: str
    date_to: str
    site: str | None
    line: str | None
    station: str | None
    orders: OrderCounts
    trend: list[TrendDay]
    lines: list[LineReport]
    stations: list[StationReport]
    stations_offline: int
