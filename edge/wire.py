"""Wire contract v1 between edge stations and the central server (pydantic only, no other imports of ours)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

WIRE_VERSION = 1
# A station names the additions to wire v1 it reads in this request header (comma-separated); the
# server sends an addition's fields only to stations that name it, so older stations, whose models
# refuse unknown fields, keep working, and a newer station talks to an older server unchanged.
FEATURES_HEADER = "X-Parcelguard-Features"
# SenderWire's risk, qualified and customer_token.
FEATURE_SENDER_RISK = "sender-risk"
# The `cancelled` list of SyncReply and OrdersPollReply (pull orders an officer cancelled).
FEATURE_ORDER_CANCEL = "order-cancel"

Decision = Literal["CLEAR", "HOLD", "PULL"]
ImageKindWire = Literal["xray", "xray_low", "camera", "label"]
OrderState = Literal["pending", "delivered", "diverted", "missed", "expired"]
OrderScope = Literal["waybill", "sender"]
# PENDING: the intent, recorded before the command is sent (its outcome follows as a DivertOutcomeEvent);
# LATE: not sent, the parcel had passed the divert point; UNKNOWN: the station stopped between
# intent and outcome and cannot know what the controller did.
DivertOutcome = Literal["DIVERTED", "MISSED", "TIMEOUT", "NOT_SENT", "PENDING", "LATE", "UNKNOWN"]


class WireModel(BaseModel):
    """Base for every message: unknown fields are refused so that drift is caught early."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageRef(WireModel):
    """An image held by the edge; uploaded content-addressed for hits only."""

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    kind: ImageKindWire
    content_type: str
    size: Annotated[int, Field(ge=0)]


class GalleryMatchWire(WireModel):
    ref_id: str
    similarity: float
    label: str = ""


class ClassificationWire(WireModel):
    """The classifier's view of one image."""

    image_sha256: str
    category: str
    category_prob: Annotated[float, Field(ge=0.0, le=1.0)]
    counterfeit_score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    gallery: list[GalleryMatchWire] = Field(default_factory=list)
    uncertain: bool = False
    model_version: str
    shadow: bool = False


class DivertWire(WireModel):
    """What the sorter link said about a divert command."""

    outcome: DivertOutcome
    chute: str | None = None
    detail: str = ""


class EventBase(WireModel):
    """Fields every event carries; `key` is `station_id:boot_id:seq` and is the idempotency key."""

    key: str
    station_id: str
    boot_id: str
    seq: Annotated[int, Field(ge=0)]
    at: datetime


class ParcelEvent(EventBase):
    """One parcel passing one station, with what the edge decided and did."""

    type: Literal["parcel"] = "parcel"
    tracking_id: str
    waybill: str | None
    codes: list[str] = Field(default_factory=list)
    decision: Decision
    reasons: list[str]
    risk: Annotated[float, Field(ge=0.0, le=1.0)]
    sender_token: str | None = None
    declared_category: str | None = None
    classifier: str
    classifications: list[ClassificationWire] = Field(default_factory=list)
    order_ids: list[str] = Field(default_factory=list)
    divert: DivertWire | None = None
    images: list[ImageRef] = Field(default_factory=list)
    # The id the sorter was sent: the controller's own parcel id, else the waybill, else a code read.
    sorter_id: str | None = None
    # Class name of the error that stopped processing (reason PROCESSING_ERROR); never data.
    error: str | None = None


class DivertOutcomeEvent(EventBase):
    """What became of a divert whose intent a parcel event recorded (outcome PENDING there)."""

    type: Literal["divert_outcome"] = "divert_outcome"
    tracking_id: str
    waybill: str | None = None
    sorter_id: str | None = None
    decision: Decision
    outcome: DivertOutcome
    chute: str | None = None
    detail: str = ""


class OrderStatusEvent(EventBase):
    """The state of one pull order at this station."""

    type: Literal["order_status"] = "order_status"
    order_id: str
    state: OrderState
    tracking_id: str | None = None
    waybill: str | None = None


class OperatorEvent(EventBase):
    """What the operator confirmed at the terminal for a pulled parcel."""

    type: Literal["operator"] = "operator"
    tracking_id: str
    waybill: str | None
    action: Literal["pulled", "not_found", "open_box"]
    result: str = ""
    operator: str = ""


class DeviceStatusEvent(EventBase):
    """A device going up or down at the station (feeds device uptime in reports)."""

    type: Literal["device_status"] = "device_status"
    device: str
    up: bool
    detail: str = ""


Event = Annotated[
    ParcelEvent | OrderStatusEvent | OperatorEvent | DeviceStatusEvent | DivertOutcomeEvent,
    Field(discriminator="type"),
]


class SyncRequest(WireModel):
    """A batch of outbox events from one station; `registry_cursor` is the last change it holds."""

    version: Literal[1] = 1
    station_id: str
    boot_id: str
    registry_cursor: Annotated[int, Field(ge=0)] = 0
    events: list[Event]


class PullOrderWire(WireModel):
    """An interception order: divert this waybill, or every parcel of this sender."""

    order_id: str
    # Server-assigned, strictly increasing across the network: the long poll resumes after it.
    seq: Annotated[int, Field(ge=0)]
    scope: OrderScope
    waybill: str | None = None
    sender_token: str | None = None
    reason: str
    issuer: str
    site_id: str | None = None
    created_at: datetime
    expires_at: datetime




class OrderCancelWire(WireModel):
    """A pull order an officer cancelled: the station stops pulling for it (feature order-cancel)."""

    order_id: str
    seq: Annotated[int, Field(ge=0)]
    cancelled_at: datetime


class SenderWire(WireModel):
    """The edge's copy of a real-name sender record: tokens and masked forms only."""

    sender_token: str
    id_masked: str
    name_masked: str = ""
    phone_token: str | None = None
    # Keyed token of the sender's address, for address entries on the black- and watchlists.
    address_token: str | None = None
    verified: bool
    agreement_customer: bool = False
    # Feature "sender-risk": the sender's risk from the server's history (0-1), whether an agreement
    # customer's qualification is valid, and the token of its credit code (organisation watch entries).
    risk: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    qualified: bool | None = None
    customer_token: str | None = None


class ManifestWire(WireModel):
    """A waybill from the courier's acceptance system, with declared contents."""

    waybill: str
    sender_token: str
    declared_name: str = ""
    declared_category: str = "other"
    quantity: Annotated[int, Field(ge=0)] = 1
    inspected_on_receipt: bool = False


class WatchWire(WireModel):
    """A blacklist or watchlist entry; `active` false means the edge must drop it."""

    entry_id: str
    list: Literal["blacklist", "watchlist"]
    kind: Literal["sender", "phone", "address", "organisation"]
    token: str
    reason: str
    expires_at: datetime | None = None
    active: bool = True


class RegistryChanges(WireModel):
    """Registry rows changed since the station's cursor; `cursor` is the new high-water mark."""

    cursor: Annotated[int, Field(ge=0)]
    senders: list[SenderWire] = Field(default_factory=list)
    manifests: list[ManifestWire] = Field(default_factory=list)
    watchlist: list[WatchWire] = Field(default_factory=list)
    more: bool = False


class SyncReply(WireModel):
    """Which keys were stored, which were already there, and what the station must know now."""

    version: Literal[1] = 1
    accepted: list[str]
    duplicates: list[str]
    orders: list[PullOrderWire]
    registry: RegistryChanges
    server_time: datetime
    # Feature order-cancel: live orders for this station that were cancelled (absent unless asked for).
    cancelled: list[OrderCancelWire] = Field(default_factory=list)


class OrdersPollReply(WireModel):
    """Reply to a long poll for new pull orders."""

    version: Literal[1] = 1
    orders: list[PullOrderWire]
    # Highest order seq the server has for this station (pass it as `after` next time).
    last_seq: Annotated[int, Field(ge=0)]
    server_time: datetime
    # Feature order-cancel, as in SyncReply.
    cancelled: list[OrderCancelWire] = Field(default_factory=list)


class ErrorBody(WireModel):
    code: str
    message: str


class ErrorReply(WireModel):
    """The one error shape of every API error."""

    error: ErrorBody
