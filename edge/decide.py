"""decide(): the pure rule that turns what is known about one parcel into CLEAR, HOLD or PULL."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from edge.config import PolicyConfig
from edge.identify import IdentifyStatus

DecisionName = Literal["CLEAR", "HOLD", "PULL"]


class Reason(StrEnum):
    """Stable reason codes: reports, the review queue and the operator screen key on these strings."""

    NO_READ = "NO_READ"
    NO_VALID_WAYBILL = "NO_VALID_WAYBILL"
    WAYBILL_CONFLICT = "WAYBILL_CONFLICT"
    UNKNOWN_WAYBILL = "UNKNOWN_WAYBILL"
    NO_REALNAME = "NO_REALNAME"
    REALNAME_UNVERIFIED = "REALNAME_UNVERIFIED"
    SENDER_BLACKLISTED = "SENDER_BLACKLISTED"
    WATCHLIST_MATCH = "WATCHLIST_MATCH"
    INTERCEPT_ORDER = "INTERCEPT_ORDER"
    COUNTERFEIT_SUSPECT = "COUNTERFEIT_SUSPECT"
    GALLERY_MATCH = "GALLERY_MATCH"
    DECLARED_MISMATCH = "DECLARED_MISMATCH"
    MODEL_UNCERTAIN = "MODEL_UNCERTAIN"
    IMAGE_MISSING = "IMAGE_MISSING"
    CLASSIFIER_ERROR = "CLASSIFIER_ERROR"
    # The station could not decide before the parcel reached the divert point (queue behind).
    LATE = "LATE"
    # Processing failed with an error; the parcel is held, never passed as if cleared.
    PROCESSING_ERROR = "PROCESSING_ERROR"
    # The sender's risk from the server's history (confirmed counterfeits, split shipments, ...).
    SENDER_RISK = "SENDER_RISK"
    # An agreement customer whose qualification (协议客户资格) is not valid.
    UNQUALIFIED_CUSTOMER = "UNQUALIFIED_CUSTOMER"
    # The courier did not inspect the parcel on receipt (收寄验视).
    NOT_INSPECTED = "NOT_INSPECTED"


# Which decision each reason forces, and the risk it carries on its own.
PULL_REASONS = frozenset(
    {Reason.SENDER_BLACKLISTED, Reason.INTERCEPT_ORDER, Reason.COUNTERFEIT_SUSPECT, Reason.GALLERY_MATCH}
)
REASON_RISK: dict[Reason, float] = {
    Reason.NO_READ: 0.5,
    Reason.NO_VALID_WAYBILL: 0.5,
    Reason.WAYBILL_CONFLICT: 0.6,
    Reason.UNKNOWN_WAYBILL: 0.5,
    Reason.NO_REALNAME: 0.6,
    Reason.REALNAME_UNVERIFIED: 0.4,
    Reason.SENDER_BLACKLISTED: 1.0,
    Reason.WATCHLIST_MATCH: 0.5,
    Reason.INTERCEPT_ORDER: 1.0,
    Reason.COUNTERFEIT_SUSPECT: 0.9,
    Reason.GALLERY_MATCH: 0.9,
    Reason.DECLARED_MISMATCH: 0.4,
    Reason.MODEL_UNCERTAIN: 0.3,
    Reason.IMAGE_MISSING: 0.3,
    Reason.CLASSIFIER_ERROR: 0.3,
    Reason.LATE: 0.5,
    Reason.PROCESSING_ERROR: 0.5,
    # Defaults only: decide() weighs these three by the sender's risk and the policy.
    Reason.SENDER_RISK: 0.5,
    Reason.UNQUALIFIED_CUSTOMER: 0.4,
    Reason.NOT_INSPECTED: 0.3,
}


@dataclass(frozen=True)
class ImageView:
    """What decide() needs from one live classification."""

    category: str
    category_prob: float
    counterfeit_score: float | None
    best_gallery_similarity: float | None
    uncertain: bool
    kind: str = "camera"


@dataclass(frozen=True)
class ParcelFacts:
    """Everything known about one parcel at decision time, as plain data."""

    identify_status: IdentifyStatus
    waybill: str | None
    in_manifest: bool = False
    declared_category: str | None = None
    has_sender_record: bool = False
    sender_verified: bool = False
    blacklisted: bool = False
    watchlisted: bool = False
    order_ids: tuple[str, ...] = ()
    classifier_state: Literal["on", "off", "error"] = "off"
    images: tuple[ImageView, ...] = field(default=())
    # Images the station waited for that never came (an X-ray shot lost between machine and folder).
    images_missing: int = 0
    # No time was left to look at the images before the divert point: they were not classified.
    late: bool = False
    # Processing raised before the facts were complete: none of the others can be trusted.
    processing_error: bool = False
    # The sender's risk score from the server (0: none known).
    sender_risk: float = 0.0
    # The sender is an agreement customer whose qualification the server holds as not valid.
    unqualified_customer: bool = False
    # The manifest says the parcel was not inspected on receipt.
    not_inspected: bool = False


@dataclass(frozen=True)
class Decision:
    decision: DecisionName
    reasons: tuple[Reason, ...]
    risk: float


def combine_risk(reasons: tuple[Reason, ...], weights: dict[Reason, float] | None = None) -> float:
    """Independent-evidence combination: 1 - prod(1 - r); one certain reason makes 1.0."""
    remaining = 1.0
    for reason in reasons:
        remaining *= 1.0 - (weights or {}).get(reason, REASON_RISK[reason])
    return round(1.0 - remaining, 4)


def _history_reasons(
    facts: ParcelFacts, policy: PolicyConfig
) -> tuple[list[Reason], set[Reason], dict[Reason, float]]:
    """Reasons from the server's view of the sender and the courier's acceptance record.

    Returns the reasons, those of them that only add weight (they hold nothing by themselves), and
    the weight each carries.
    """
    reasons: list[Reason] = []
    weight_only: set[Reason] = set()
    weights: dict[Reason, float] = {}
    if facts.sender_risk >= min(policy.sender_risk_hold, policy.sender_risk_weight_from):
        reasons.append(Reason.SENDER_RISK)
        weights[Reason.SENDER_RISK] = min(1.0, facts.sender_risk)
        if facts.sender_risk < policy.sender_risk_hold:
            weight_only.add(Reason.SENDER_RISK)
    for flagged, reason, mode, weight in (
        (facts.unqualified_customer, Reason.UNQUALIFIED_CUSTOMER, policy.unqualified_customer,
         policy.unqualified_customer_weight),
        (facts.not_inspected, Reason.NOT_INSPECTED, policy.not_inspected, policy.not_inspected_weight),
    ):  # fmt: skip
        if flagged:
            reasons.append(reason)
            weights[reason] = weight
            if mode == "weight":
                weight_only.add(reason)
    return reasons, weight_only, weights


def _image_reasons(facts: ParcelFacts, policy: PolicyConfig) -> list[Reason]:
    reasons: list[Reason] = []
    if facts.images_missing:
        # Never cleared unseen: with or without a classifier, a missing X-ray means nobody looked.
        reasons.append(Reason.IMAGE_MISSING)
    if facts.late:
        # Decided without its images: whatever they would have shown, nobody looked.
        reasons.append(Reason.LATE)
        return reasons
    if facts.classifier_state == "error":
        reasons.append(Reason.CLASSIFIER_ERROR)
    if facts.classifier_state != "on":
        return reasons
    for img in facts.images:
        threshold = policy.category_thresholds.get(img.category, policy.counterfeit_threshold)
        if img.counterfeit_score is not None and img.counterfeit_score >= threshold and not img.uncertain:
            reasons.append(Reason.COUNTERFEIT_SUSPECT)
        sim = img.best_gallery_similarity
        if sim is not None and sim >= policy.gallery_similarity:
            reasons.append(Reason.GALLERY_MATCH)
        if img.uncertain:
            if policy.hold_when_head_unsure:
                reasons.append(Reason.MODEL_UNCERTAIN)
        elif (
            img.kind == "camera"
            and facts.declared_category
            and img.category not in ("other", facts.declared_category)
            and img.category_prob >= policy.mismatch_probability
        ):
            reasons.append(Reason.DECLARED_MISMATCH)
    return reasons


def decide(facts: ParcelFacts, policy: PolicyConfig) -> Decision:
    """Pure: the same facts and policy always give the same decision, reasons in a stable order."""
    if facts.processing_error:
        failed = (Reason.PROCESSING_ERROR,)
        return Decision("HOLD", failed, combine_risk(failed))
    reasons: list[Reason] = []
    weight_only: set[Reason] = set()
    weights: dict[Reason, float] = {}
    status = facts.identify_status
    if status == "no_read":
        reasons.append(Reason.NO_READ)
    elif status == "no_valid_waybill":
        reasons.append(Reason.NO_VALID_WAYBILL)
    elif status == "conflict":
        reasons.append(Reason.WAYBILL_CONFLICT)
    else:
        if facts.order_ids:
            reasons.append(Reason.INTERCEPT_ORDER)
        if not facts.in_manifest:
            if policy.hold_unknown_waybill:
                reasons.append(Reason.UNKNOWN_WAYBILL)
        elif not facts.has_sender_record:
            reasons.append(Reason.NO_REALNAME)
        elif not facts.sender_verified:
            reasons.append(Reason.REALNAME_UNVERIFIED)
        if facts.blacklisted:
            reasons.append(Reason.SENDER_BLACKLISTED)
        elif facts.watchlisted:
            reasons.append(Reason.WATCHLIST_MATCH)
        history, weight_only, weights = _history_reasons(facts, policy)
        reasons.extend(history)
    reasons.extend(_image_reasons(facts, policy))
    ordered = tuple(dict.fromkeys(reasons))
    risk = combine_risk(ordered, weights)
    if any(r in PULL_REASONS for r in ordered):
        name: DecisionName = "PULL"
    elif any(r not in weight_only for r in ordered) or (ordered and risk >= policy.weight_hold_risk):
        name = "HOLD"
    else:
        # Nothing that holds by itself: the weights are recorded with the parcel, which passes.
        name = "CLEAR"
    return Decision(name, ordered, risk)


def decide_failed() -> Decision:
    """The decision for a parcel whose processing raised: held, whatever else might have been known."""
    return decide(ParcelFacts("no_read", None, processing_error=True), PolicyConfig())
