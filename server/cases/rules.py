"""The case state machine as a pure function: which step may follow which, what it needs, what falls due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from server.errors import BadInput, Conflict
from server.review_rules import AUTHORITIES as AUTHORITIES
from server.review_rules import REQUIRED_FIELDS as REVIEW_FIELDS
from server.review_rules import check_fields as check_review_fields

State = Literal[
    "open",
    "detained",
    "notified",
    "awaiting_rights_holder",
    "decided",
    "referred",
    "released",
    "destroyed",
    "closed",
]
Action = Literal["detain", "notify", "deliver", "reply", "refer", "release", "destroy", "close"]
Reply = Literal["counterfeit", "genuine", "no_reply"]

STATES: tuple[State, ...] = get_args(State)
ACTIONS: tuple[Action, ...] = get_args(Action)
REPLIES: tuple[Reply, ...] = get_args(Reply)
NEXT_STATE: dict[tuple[str, str], State] = {
    ("open", "detain"): "detained",
    ("detained", "notify"): "notified",
    ("notified", "deliver"): "awaiting_rights_holder",
    ("awaiting_rights_holder", "reply"): "decided",
    ("decided", "refer"): "referred",
    ("decided", "release"): "released",
    ("decided", "destroy"): "destroyed",
    ("referred", "close"): "closed",
    ("released", "close"): "closed",
    ("destroyed", "close"): "closed",
}
# Detain, refer and release need what the same decisions on a review item need.
SHARED_WITH_REVIEW = ("detain", "refer", "release")
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    **{a: REVIEW_FIELDS[a] for a in SHARED_WITH_REVIEW},
    "reply": ("reply",),
}
# Items may join a case until the rights holder has been written to about them.
ITEM_STATES = frozenset({"open", "detained"})
RIGHTS_HOLDER_STATES = frozenset({"open", "detained"})
SAMPLE_STATES = frozenset({"detained", "notified", "awaiting_rights_holder", "decided"})
DISPOSAL_STATES = frozenset({"decided", "referred", "released", "destroyed"})
DISPOSAL_METHODS = ("destruction", "donation", "return", "handover")
# Review states in which an item's goods are held by the site (a case detains only held goods).
HELD_REVIEW_STATES = frozenset({"detained", "seized"})


@dataclass(frozen=True)
class CaseView:
    """What the rules need to know about a case."""

    state: str
    items: int
    items_held: bool  # every item's review state is detained or seized
    rights_holder: bool
    outcome: str | None = None
    due_at: datetime | None = None  # the current state's deadline (while awaiting: the reply's)
    seized: int = 0  # items whose goods are seized (confirmed counterfeit, or a seize decision)
    undisposed: int = 0  # of those, items without a disposal record


@dataclass(frozen=True)
class CaseStep:
    """The case after a step: its new state, the deadline rule that now runs, and the outcome."""

    state: State
    due_key: str | None
    outcome: str | None


def due_key(state: str, outcome: str | None) -> str | None:
    """The jurisdiction's deadline key that runs while a case is in `state` (server.jurisdictions)."""
    if state in ("detained", "notified"):
        return "case_notify"
    if state == "awaiting_rights_holder":
        return "detain"  # the rights holder's application is due from the notice's delivery
    if state == "decided":
        return "refer" if outcome == "counterfeit" else "case_release"
    return None


def check_fields(action: str, fields: dict[str, str], legal_bases: tuple[str, ...] = ()) -> None:
    if action in SHARED_WITH_REVIEW:
        check_review_fields(action, fields, legal_bases)
        return
    missing = [f for f in REQUIRED_FIELDS.get(action, ()) if not str(fields.get(f, "")).strip()]
    if missing:
        raise BadInput(f"{action} needs {', '.join(missing)}", "missing_fields")
    if action == "reply" and fields.get("reply") not in REPLIES:
        raise BadInput("reply must be counterfeit, genuine or no_reply", "bad_reply")


def _guard(case: CaseView, action: str, now: datetime, fields: dict[str, str]) -> None:
    """Refuse a step whose preconditions the case does not meet (Conflict with a stable code)."""
    if action == "detain":
        if case.items < 1:
            raise Conflict("add at least one review item before detaining", "no_items")
        if not case.items_held:
            raise Conflict("every item must be detained or seized at review first", "items_not_held")
    elif action == "notify" and not case.rights_holder:
        raise Conflict("name the rights holder before notifying", "no_rights_holder")
    elif action == "reply":
        late = case.due_at is not None and now > case.due_at
        if fields["reply"] == "no_reply" and not late:
            raise Conflict("the reply is not yet overdue; record no_reply after the deadline", "reply_early")
        if fields["reply"] != "no_reply" and late:
            due = case.due_at.isoformat() if case.due_at else ""
            raise Conflict(f"the reply was due by {due}; record no_reply", "reply_late")
    elif action == "refer" and case.outcome != "counterfeit":
        raise Conflict("only goods confirmed counterfeit are referred", "not_counterfeit")
    elif action == "release" and case.outcome == "counterfeit":
        raise Conflict("goods confirmed counterfeit are not released", "counterfeit")
    elif action == "destroy":
        if case.outcome != "counterfeit":
            raise Conflict("only goods confirmed counterfeit are destroyed", "not_counterfeit")
        if case.undisposed or not case.seized:
            raise Conflict(f"{case.undisposed} item(s) of seized goods have no disposal record", "undisposed")
    elif action == "close" and case.undisposed:
        raise Conflict(
            f"{case.undisposed} item(s) of seized goods have no disposal record; the case cannot close",
            "undisposed",
        )


def next_step(
    case: CaseView,
    action: str,
    now: datetime,
    fields: dict[str, str] | None = None,
    legal_bases: tuple[str, ...] = (),
) -> CaseStep:
    """The case after `action` at `now`; raises BadInput (unknown action, fields) or Conflict (not now).

    A legal basis must be one of `legal_bases` (the configured provisions, review.legal_bases).
    """
    fields = fields or {}
    if action not in ACTIONS:
        raise BadInput(f"unknown case action {action!r}", "bad_action")
    target = NEXT_STATE.get((case.state, action))
    if target is None:
        raise Conflict(f"'{action}' is not allowed while the case is {case.state}", "not_allowed")
    check_fields(action, fields, legal_bases)
    _guard(case, action, now, fields)
    outcome = fields["reply"] if action == "reply" else case.outcome
    return CaseStep(target, due_key(target, outcome), outcome)
