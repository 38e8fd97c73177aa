"""The review state machine as a pure function: claims with leases, decisions and their required fields."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from server.errors import BadInput, Conflict, Forbidden

State = Literal["open", "claimed", "inspecting", "detained", "released", "seized", "referred"]
Action = Literal["claim", "unclaim", "release", "open_inspection", "detain", "seize", "refer"]
DECISIONS: tuple[Action, ...] = ("release", "open_inspection", "detain", "seize", "refer")
FINAL_STATES = frozenset({"released", "seized", "referred"})
# States an item waits in for an officer to claim it.
CLAIMABLE = frozenset({"open", "inspecting", "detained"})
OUTCOME_STATE: dict[str, State] = {
    "release": "released",
    "open_inspection": "inspecting",
    "detain": "detained",
    "seize": "seized",
    "refer": "referred",
}
# Decisions allowed once the item has reached a state (after claiming it back).
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "open": frozenset(DECISIONS),
    "inspecting": frozenset({"release", "detain", "seize", "refer"}),
    "detained": frozenset({"release", "seize", "refer"}),
}
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "release": ("note",),
    "open_inspection": ("note",),
    "detain": ("legal_basis", "storage_location"),
    "seize": ("legal_basis", "seizure_record", "rights_holder"),
    "refer": ("authority", "case_reference"),
}
# Fields a decision may carry beyond the required ones: free text beside the chosen legal basis.
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "detain": ("legal_basis_detail",),
    "seize": ("legal_basis_detail",),
}
# Record numbers (seizure record, case reference) must carry a number to be found again.
NUMBERED_FIELDS = frozenset({"seizure_record", "case_reference"})
AUTHORITIES = frozenset({"market_regulator", "police"})
GALLERY_DECISIONS = frozenset({"detain", "seize"})
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class ReviewPolicy:
    """What the rules take from the configuration: the lease, the legal bases, the deadline rule."""

    lease: timedelta
    legal_bases: tuple[str, ...] = ()
    # When the follow-up of a decision falls due (the site's jurisdiction's rule), or None.
    due: Callable[[str, datetime], datetime | None] = field(default=lambda _action, _at: None)


@dataclass(frozen=True)
class ItemView:
    """What the rules need to know about a review item."""

    state: str
    claimed_by: str | None
    lease_until: datetime | None
    # The state the item was claimed from (open, inspecting or detained): decides what may follow.
    claimed_from: str | None = None


@dataclass(frozen=True)
class Transition:
    """The item after an action: its new state, claim, lease and, for decisions, outcome and deadline."""

    state: str
    claimed_by: str | None
    lease_until: datetime | None
    claimed_from: str | None
    outcome: str | None = None
    statutory_due_at: datetime | None = None


def lease_live(item: ItemView, now: datetime) -> bool:
    return item.state == "claimed" and item.lease_until is not None and item.lease_until > now


def has_substance(text: str) -> bool:
    """Says something: two different letters or digits, and three unless Chinese or with a number.

    Refuses the "x", "-" and "aa" that a required field gets when it is only in the way.
    """
    signs = [c for c in text if c.isalnum()]
    if len(set(signs)) < 2:
        return False
    return len(signs) >= 3 or bool(_CJK.search(text)) or any(c.isdigit() for c in signs)


def check_fields(action: str, fields: dict[str, str], legal_bases: tuple[str, ...] = ()) -> None:
    """The decision's required fields are there and say something; a legal basis is one of the list."""
    missing = [f for f in REQUIRED_FIELDS.get(action, ()) if not str(fields.get(f, "")).strip()]
    if missing:
        raise BadInput(f"{action} needs {', '.join(missing)}", "missing_fields")
    allowed = set(REQUIRED_FIELDS.get(action, ())) | set(OPTIONAL_FIELDS.get(action, ()))
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise BadInput(f"{action} takes no field {', '.join(unknown)}", "unknown_fields")
    if action == "refer" and fields.get("authority") not in AUTHORITIES:
        raise BadInput("authority must be market_regulator or police", "bad_authority")
    if "legal_basis" in REQUIRED_FIELDS.get(action, ()) and fields["legal_basis"].strip() not in legal_bases:
        raise BadInput(
            "legal_basis must be one of the configured provisions (review.legal_bases)", "bad_legal_basis"
        )
    for name, value in fields.items():
        text = str(value).strip()
        if name in ("authority", "legal_basis") or (not text and name not in missing):
            continue
        if not has_substance(text):
            raise BadInput(f"{name}: {text[:20]!r} says nothing; write what it is", "no_substance")
        if name in NUMBERED_FIELDS and not any(c.isdigit() for c in text):
            raise BadInput(f"{name} must carry the record's number", "no_number")


def apply_action(
    item: ItemView,
    action: str,
    actor: str,
    now: datetime,
    policy: ReviewPolicy,
    fields: dict[str, str] | None = None,
) -> Transition:
    """Next state of `item` when `actor` does `action` at `now`; raises Conflict, Forbidden or BadInput."""
    fields = fields or {}
    lease = policy.lease
    if action == "claim":
        if item.state in CLAIMABLE:
            return Transition("claimed", actor, now + lease, item.state)
        if item.state == "claimed":
            if lease_live(item, now) and item.claimed_by != actor:
                raise Conflict(f"claimed by {item.claimed_by} until the lease ends", "claimed")
            # Renewing one's own claim, or taking over an expired lease.
            return Transition("claimed", actor, now + lease, item.claimed_from)
        raise Conflict(f"item is {item.state}; it cannot be claimed", "final")
    if item.state != "claimed":
        raise Conflict(f"claim the item before '{action}' (it is {item.state})", "not_claimed")
    if item.claimed_by != actor:
        raise Forbidden(f"item is claimed by {item.claimed_by}", "not_your_claim")
    if not lease_live(item, now):
        raise Conflict("your claim has lapsed; claim the item again", "lease_expired")
    back = item.claimed_from or "open"
    if action == "unclaim":
        return Transition(back, None, None, None)
    if action not in DECISIONS:
        raise BadInput(f"unknown action {action!r}", "bad_action")
    if action not in ALLOWED_FROM.get(back, frozenset()):
        raise Conflict(f"'{action}' is not allowed after {back}", "not_allowed")
    check_fields(action, fields, policy.legal_bases)
    due = policy.due(action, now)
    return Transition(OUTCOME_STATE[action], None, None, None, outcome=action, statutory_due_at=due)
