"""decide() by table: every reason code, the decision it forces and the stable order of reasons."""

from __future__ import annotations

import pytest

from edge.config import PolicyConfig
from edge.decide import PULL_REASONS, ImageView, ParcelFacts, Reason, combine_risk, decide

OK: dict[str, object] = {"identify_status": "ok", "waybill": "EA123456785CN"}
GOOD: dict[str, object] = {**OK, "in_manifest": True, "has_sender_record": True, "sender_verified": True}
SHOE = ImageView("footwear_clothing", 0.9, 0.1, None, False, "camera")

CASES: list[tuple[str, dict[str, object], str, tuple[Reason, ...]]] = [
    ("clear", GOOD, "CLEAR", ()),
    ("no read", {"identify_status": "no_read", "waybill": None}, "HOLD", (Reason.NO_READ,)),
    (
        "check digit fails",
        {"identify_status": "no_valid_waybill", "waybill": None},
        "HOLD",
        (Reason.NO_VALID_WAYBILL,),
    ),
    ("two waybills", {"identify_status": "conflict", "waybill": None}, "HOLD", (Reason.WAYBILL_CONFLICT,)),
    ("unknown waybill", OK, "HOLD", (Reason.UNKNOWN_WAYBILL,)),
    ("no real-name record", {**OK, "in_manifest": True}, "HOLD", (Reason.NO_REALNAME,)),
    (
        "unverified",
        {**OK, "in_manifest": True, "has_sender_record": True},
        "HOLD",
        (Reason.REALNAME_UNVERIFIED,),
    ),
    ("blacklisted", {**GOOD, "blacklisted": True}, "PULL", (Reason.SENDER_BLACKLISTED,)),
    ("watchlisted", {**GOOD, "watchlisted": True}, "HOLD", (Reason.WATCHLIST_MATCH,)),
    (
        "black wins over watch",
        {**GOOD, "blacklisted": True, "watchlisted": True},
        "PULL",
        (Reason.SENDER_BLACKLISTED,),
    ),
    ("order", {**GOOD, "order_ids": ("o1",)}, "PULL", (Reason.INTERCEPT_ORDER,)),
    (
        "order + unverified",
        {**OK, "in_manifest": True, "has_sender_record": True, "order_ids": ("o1",)},
        "PULL",
        (Reason.INTERCEPT_ORDER, Reason.REALNAME_UNVERIFIED),
    ),
    (
        "counterfeit",
        {
            **GOOD,
            "classifier_state": "on",
            "images": (ImageView("bags_leather", 0.9, 0.95, None, False),),
        },
        "PULL",
        (Reason.COUNTERFEIT_SUSPECT,),
    ),
    (
        "below threshold",
        {
            **GOOD,
            "classifier_state": "on",
            "images": (ImageView("bags_leather", 0.9, 0.5, None, False),),
        },
        "CLEAR",
        (),
    ),
    (
        "gallery match",
        {
            **GOOD,
            "classifier_state": "on",
            "images": (ImageView("watches_jewellery", 0.9, None, 0.97, False),),
        },
        "PULL",
        (Reason.GALLERY_MATCH,),
    ),
    (
        "uncertain",
        {
            **GOOD,
            "classifier_state": "on",
            "images": (ImageView("other", 0.3, 0.99, None, True),),
        },
        "HOLD",
        (Reason.MODEL_UNCERTAIN,),
    ),
    (
        "declared mismatch",
        {
            **GOOD,
            "declared_category": "food",
            "classifier_state": "on",
            "images": (SHOE,),
        },
        "HOLD",
        (Reason.DECLARED_MISMATCH,),
    ),
    (
        "xray does not judge declared",
        {
            **GOOD,
            "declared_category": "food",
            "classifier_state": "on",
            "images": (ImageView("electronics", 0.9, 0.1, None, False, "xray"),),
        },
        "CLEAR",
        (),
    ),
    (
        "declared matches",
        {
            **GOOD,
            "declared_category": "footwear_clothing",
            "classifier_state": "on",
            "images": (SHOE,),
        },
        "CLEAR",
        (),
    ),
    (
        "image missing",
        {**GOOD, "classifier_state": "off", "images_missing": 1},
        "HOLD",
        (Reason.IMAGE_MISSING,),
    ),
    ("classifier error", {**GOOD, "classifier_state": "error"}, "HOLD", (Reason.CLASSIFIER_ERROR,)),
    ("classifier off judges nothing", {**GOOD, "classifier_state": "off"}, "CLEAR", ()),
    (
        "late: images not looked at, whatever the classifier said",
        {
            **GOOD,
            "classifier_state": "on",
            "images": (ImageView("footwear", 0.9, 0.99, None, False),),
            "late": True,
        },
        "HOLD",
        (Reason.LATE,),
    ),
    (
        "late and an image missing",
        {**GOOD, "images_missing": 1, "late": True},
        "HOLD",
        (Reason.IMAGE_MISSING, Reason.LATE),
    ),
    (
        "late does not hide a blacklisted sender",
        {**GOOD, "blacklisted": True, "late": True},
        "PULL",
        (Reason.SENDER_BLACKLISTED, Reason.LATE),
    ),
    (
        "processing error: nothing else is trusted",
        {**GOOD, "blacklisted": True, "processing_error": True},
        "HOLD",
        (Reason.PROCESSING_ERROR,),
    ),
    ("risky sender held", {**GOOD, "sender_risk": 0.8}, "HOLD", (Reason.SENDER_RISK,)),
    ("some sender risk only weighs", {**GOOD, "sender_risk": 0.3}, "CLEAR", (Reason.SENDER_RISK,)),
    ("slight sender risk is no reason", {**GOOD, "sender_risk": 0.1}, "CLEAR", ()),
    (
        "unqualified agreement customer held",
        {**GOOD, "unqualified_customer": True},
        "HOLD",
        (Reason.UNQUALIFIED_CUSTOMER,),
    ),
    (
        "not inspected on receipt only weighs",
        {**GOOD, "not_inspected": True},
        "CLEAR",
        (Reason.NOT_INSPECTED,),
    ),
    (
        "weights add up to a hold",
        {**GOOD, "sender_risk": 0.58, "not_inspected": True},
        "HOLD",
        (Reason.SENDER_RISK, Reason.NOT_INSPECTED),
    ),
    (
        "history never hides a blacklisted sender",
        {**GOOD, "blacklisted": True, "sender_risk": 0.9, "unqualified_customer": True},
        "PULL",
        (Reason.SENDER_BLACKLISTED, Reason.SENDER_RISK, Reason.UNQUALIFIED_CUSTOMER),
    ),
    (
        "history is not read for an unidentified parcel",
        {"identify_status": "no_read", "waybill": None, "sender_risk": 0.9},
        "HOLD",
        (Reason.NO_READ,),
    ),
]


@pytest.mark.parametrize(("name", "facts", "decision", "reasons"), CASES, ids=[c[0] for c in CASES])
def test_decide_table(
    name: str, facts: dict[str, object], decision: str, reasons: tuple[Reason, ...]
) -> None:
    result = decide(ParcelFacts(**facts), PolicyConfig())  # type: ignore[arg-type]
    assert result.decision == decision
    assert result.reasons == reasons
    assert 0.0 <= result.risk <= 1.0
    # A parcel passes with a risk only when all its reasons merely add weight.
    assert (result.risk == 0.0) == (reasons == ())


def test_every_reason_code_is_covered_by_the_table() -> None:
    seen = {r for _, f, _, rs in CASES for r in rs}
    assert seen == set(Reason)


def test_per_category_threshold_overrides_default() -> None:
    facts = ParcelFacts(
        **GOOD,  # type: ignore[arg-type]
        classifier_state="on",
        images=(ImageView("medicines_medical", 0.9, 0.6, None, False),),
    )
    assert decide(facts, PolicyConfig()).decision == "CLEAR"
    strict = PolicyConfig(category_thresholds={"medicines_medical": 0.5})
    assert decide(facts, strict).reasons == (Reason.COUNTERFEIT_SUSPECT,)


def test_unknown_waybill_can_be_let_through_by_policy() -> None:
    assert decide(ParcelFacts(**OK), PolicyConfig(hold_unknown_waybill=False)).decision == "CLEAR"  # type: ignore[arg-type]


def test_a_head_that_cannot_tell_need_not_hold_by_policy() -> None:
    unsure = ImageView("footwear_clothing", 0.9, 0.6, None, True, "camera")
    facts = ParcelFacts(**{**GOOD, "classifier_state": "on", "images": (unsure,)})  # type: ignore[arg-type]
    assert decide(facts, PolicyConfig()).reasons == (Reason.MODEL_UNCERTAIN,)
    relaxed = PolicyConfig(hold_when_head_unsure=False)
    assert decide(facts, relaxed).decision == "CLEAR" and decide(facts, relaxed).reasons == ()
    # A confident counterfeit verdict still pulls under the relaxed policy.
    sure = ImageView("footwear_clothing", 0.9, 0.95, None, False, "camera")
    pulled = decide(ParcelFacts(**{**GOOD, "classifier_state": "on", "images": (sure,)}), relaxed)  # type: ignore[arg-type]
    assert pulled.reasons == (Reason.COUNTERFEIT_SUSPECT,)


def test_risk_combines_and_saturates() -> None:
    assert combine_risk(()) == 0.0
    assert combine_risk((Reason.SENDER_BLACKLISTED,)) == 1.0
    one = combine_risk((Reason.REALNAME_UNVERIFIED,))
    two = combine_risk((Reason.REALNAME_UNVERIFIED, Reason.MODEL_UNCERTAIN))
    assert 0 < one < two < 1


def test_pull_reasons_are_the_interception_ones() -> None:
    assert {
        Reason.SENDER_BLACKLISTED,
        Reason.INTERCEPT_ORDER,
        Reason.COUNTERFEIT_SUSPECT,
        Reason.GALLERY_MATCH,
    } == PULL_REASONS


def test_history_reasons_follow_the_policy() -> None:
    unqualified = ParcelFacts(**{**GOOD, "unqualified_customer": True})  # type: ignore[arg-type]
    weighed = decide(unqualified, PolicyConfig(unqualified_customer="weight"))
    assert (weighed.decision, weighed.reasons, weighed.risk) == ("CLEAR", (Reason.UNQUALIFIED_CUSTOMER,), 0.4)
    uninspected = ParcelFacts(**{**GOOD, "not_inspected": True})  # type: ignore[arg-type]
    assert decide(uninspected, PolicyConfig(not_inspected="hold")).decision == "HOLD"
    assert decide(uninspected, PolicyConfig(not_inspected_weight=0.75)).decision == "HOLD"
    risky = ParcelFacts(**{**GOOD, "sender_risk": 0.45})  # type: ignore[arg-type]
    assert decide(risky, PolicyConfig()).decision == "CLEAR"
    held = decide(risky, PolicyConfig(sender_risk_hold=0.4))
    assert (held.decision, held.risk) == ("HOLD", 0.45)
