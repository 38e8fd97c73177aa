"""The desk's case pages: the list of cases (and opening one from items), and one case to work."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from server.accounts import Principal, Role
from server.cases import notices
from server.cases.holders import list_holders
from server.cases.read import case_detail, case_of_item, list_cases
from server.cases.rules import AUTHORITIES, DISPOSAL_METHODS, ITEM_STATES, STATES
from server.db import utcnow
from server.deps import get_services
from server.errors import ApiError
from server.evidence.referrals import REFERRED_CASE_STATES, referrals_of_case
from server.jurisdictions import CN_DEADLINES
from server.schema import reviews
from server.scope import site_filter
from server.settings import ServerSettings
from server.sites import deadline_rule
from server.web.common import PageDenied, error_page, need_user, render

# Who may open these pages is in server.authz.RULES; what they show is bounded to the officer's sites.
router = APIRouter()


def _item_ids(raw: str) -> list[int]:
    """Review item ids from `?item=1,2` (bad parts are dropped: the form shows what was understood)."""
    return sorted({int(p) for p in raw.split(",")[:50] if p.strip().isdigit() and 0 < int(p) <= 2**62})


def builtin_rule(settings: ServerSettings, site_id: str, key: str) -> bool:
    return deadline_rule(settings, site_id, key) == CN_DEADLINES.get(key)


@router.get("/desk/cases")
def cases_page(request: Request) -> Response:
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        params = request.query_params
        state = params.get("state") or ""
        wanted = _item_ids(params.get("item") or "")
        svc = get_services(request)
        with svc.db.read() as conn:
            listed = list_cases(conn, who, utcnow(), state if state in STATES else None)
            chosen = conn.execute(
                select(reviews).where(reviews.c.id.in_(wanted), site_filter(who, reviews.c.site_id))
            ).fetchall()
            already = {int(r.id): case_of_item(conn, int(r.id)) for r in chosen}
        open_cases = [c for c in listed if c["state"] in ITEM_STATES]
        page = {"items": [i for i, c in already.items() if c is None], "can_act": who.role is Role.OFFICER}
        return render(
            request,
            "cases.html",
            who,
            cases=listed,
            states=STATES,
            state=state,
            chosen=chosen,
            already=already,
            open_cases=open_cases,
            ref=notices.case_ref,
            page_json=json.dumps(page).replace("<", "\\u003c"),
        )
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)


@router.get("/desk/cases/{case_ref}")
def case_page(request: Request, case_ref: str) -> Response:
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        # Parsed here, not by FastAPI, so that a mistyped address gets the page, not a JSON error.
        case_id = int(case_ref) if case_ref.isdigit() and len(case_ref) < 19 else 0
        if not 1 <= case_id <= 2**62:
            return error_page(request, 404, f"no case {case_ref[:40]!r}")
        svc = get_services(request)
        with svc.db.read() as conn:
            case = case_detail(conn, svc.settings, who, case_id, utcnow())
            holders = list_holders(conn)
            referrals = referrals_of_case(conn, who, case_id)
        disposed = {d["review_id"] for d in case["disposals"]}
        page = {
            "id": case_id,
            "version": case["version"],
            "can_act": who.role is Role.OFFICER,
            "notice": case["notifications"][-1]["id"] if case["notifications"] else None,
        }
        return render(
            request,
            "case.html",
            who,
            case=case,
            ref=notices.case_ref(case_id),
            holders=holders,
            disposed=disposed,
            authorities=sorted(AUTHORITIES),
            legal_bases=svc.settings.review.legal_bases,
            # A built-in deadline rule is named in the page's language; a configured one as configured.
            builtin_rule=bool(case["deadline"])
            and builtin_rule(svc.settings, case["site_id"], case["due_key"]),
            methods=DISPOSAL_METHODS,
            # The evidence card (desk_evidence.html): a bundle of the case; its referral once referred.
            evidence_target={"case_id": case_id},
            referrals=referrals,
            can_refer=who.role is Role.OFFICER and case["state"] in REFERRED_CASE_STATES and not referrals,
            can_reply=who.role is Role.OFFICER,
            page_json=json.dumps(page).replace("<", "\\u003c"),
        )
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)
    except ApiError as exc:
        return error_page(request, exc.status, exc.message)
