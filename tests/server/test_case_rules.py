"""The case state machine, by table: every legal step, and every refusal with its stable code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.cases.rules import ACTIONS, NEXT_STATE, STATES, CaseView, due_key, next_step
from server.errors import BadInput, Conflict

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER, EARLIER = NOW + timedelta(days=1), NOW - timedelta(days=1)
HELD: dict[str, Any] = dict(items=2, items_held=True, rights_holder=True)
DETAIN = {"legal_basis": "条例第十六条", "storage_location": "cage 3"}
BASES = (DETAIN["legal_basis"],)
RELEASE_NOTE = {"note": "returned to the sender after the check"}
REFER = {"authority": "police", "case_reference": "P-1"}

# (case, action, fields, expected state, expected due key, expected outcome)
ALLOWED = [
    (CaseView("open", **HELD), "detain", DETAIN, "detained", "case_notify", None),
    (CaseView("detained", **HELD), "notify", {}, "notified", "case_notify", None),
    (CaseView("notified", **HELD), "deliver", {}, "awaiting_rights_holder", "detain", None),
    (CaseView("awaiting_rights_holder", **HELD, due_at=LATER), "reply", {"reply": "counterfeit"},
     "decided", "refer", "counterfeit"),
    (CaseView("awaiting_rights_holder", **HELD, due_at=LATER), "reply", {"reply": "genuine"},
     "decided", "case_release", "genuine"),
    (CaseView("awaiting_rights_holder", **HELD, due_at=EARLIER), "reply", {"reply": "no_reply"},
     "decided", "case_release", "no_reply"),
    (CaseView("decided", **HELD, outcome="counterfeit"), "refer", REFER, "referred", None, "counterfeit"),
    (CaseView("decided", **HELD, outcome="genuine"), "release", RELEASE_NOTE, "released", None, "genuine"),
    (CaseView("decided", **HELD, outcome="no_reply"), "release", RELEASE_NOTE, "released", None,
     "no_reply"),
    (CaseView("decided", **HELD, outcome="counterfeit", seized=2), "destroy", {}, "destroyed", None,
     "counterfeit"),
    (CaseView("destroyed", **HELD, outcome="counterfeit", seized=2), "close", {}, "closed", None,
     "counterfeit"),
    (CaseView("referred", **HELD, outcome="counterfeit", seized=2), "close", {}, "closed", None,
     "counterfeit"),
    (CaseView("released", **HELD, outcome="genuine"), "close", {}, "closed", None, "genuine"),
]  # fmt: skip

REFUSED = [
    (CaseView("open", 0, True, True), "detain", DETAIN, Conflict, "no_items"),
    (CaseView("open", 2, False, True), "detain", DETAIN, Conflict, "items_not_held"),
    (CaseView("open", **HELD), "detain", {"legal_basis": "x"}, BadInput, "missing_fields"),
    (CaseView("detained", 2, True, False), "notify", {}, Conflict, "no_rights_holder"),
    (CaseView("awaiting_rights_holder", **HELD, due_at=EARLIER), "reply", {"reply": "counterfeit"},
     Conflict, "reply_late"),
    (CaseView("awaiting_rights_holder", **HELD, due_at=EARLIER), "reply", {"reply": "genuine"},
     Conflict, "reply_late"),
    (CaseView("awaiting_rights_holder", **HELD, due_at=LATER), "reply", {"reply": "no_reply"},
     Conflict, "reply_early"),
    (CaseView("awaiting_rights_holder", **HELD, due_at=LATER), "reply", {"reply": "maybe"},
     BadInput, "bad_reply"),
    (CaseView("decided", **HELD, outcome="genuine"), "refer", REFER, Conflict, "not_counterfeit"),
    (CaseView("decided", **HELD, outcome="counterfeit"), "refer", {**REFER, "authority": "mayor"},
     BadInput, "bad_authority"),
    (CaseView("decided", **HELD, outcome="counterfeit"), "release", RELEASE_NOTE, Conflict, "counterfeit"),
    (CaseView("decided", **HELD, outcome="genuine"), "destroy", {}, Conflict, "not_counterfeit"),
    (CaseView("decided", **HELD, outcome="counterfeit", seized=2, undisposed=1), "destroy", {},
     Conflict, "undisposed"),
    (CaseView("referred", **HELD, outcome="counterfeit", seized=2, undisposed=2), "close", {},
     Conflict, "undisposed"),
    (CaseView("released", **HELD, outcome="genuine", seized=1, undisposed=1), "close", {},
     Conflict, "undisposed"),
    (CaseView("open", **HELD), "explode", {}, BadInput, "bad_action"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "action", "fields", "state", "key", "outcome"), ALLOWED)
def test_allowed_steps(
    case: CaseView, action: str, fields: dict[str, str], state: str, key: str | None, outcome: str | None
) -> None:
    step = next_step(case, action, NOW, fields, BASES)
    assert (step.state, step.due_key, step.outcome) == (state, key, outcome)


@pytest.mark.parametrize(("case", "action", "fields", "error", "code"), REFUSED)
def test_refused_steps(
    case: CaseView, action: str, fields: dict[str, str], error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as caught:
        next_step(case, action, NOW, fields, BASES)
    assert getattr(caught.value, "code", None) == code


def test_every_step_not_in_the_table_is_refused() -> None:
    """Every (state, action) pair outside NEXT_STATE is an illegal transition, closed cases included."""
    fields = {"reply": "counterfeit", "note": "n", **DETAIN, **REFER}
    for state in STATES:
        for action in ACTIONS:
            if (state, action) in NEXT_STATE:
                continue
            case = CaseView(state, **HELD, outcome="counterfeit", due_at=LATER, seized=1)
            with pytest.raises(Conflict) as caught:
                next_step(case, action, NOW, fields, BASES)
            assert caught.value.code == "not_allowed", (state, action)


def test_every_deadline_key_is_a_cn_default() -> None:
    from server.jurisdictions import CN_DEADLINES

    keys = {due_key(s, o) for s in STATES for o in (None, "counterfeit", "genuine", "no_reply")}
    assert keys - {None} <= set(CN_DEADLINES)
    assert {"case_notify", "detain", "refer", "case_release"} <= keys
