"""Desk pages of the link graph: a sender's neighbourhood and a split-shipment cluster, drawn as a picture."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.accounts import Principal
from server.deps import get_services
from server.errors import ApiError
from server.links.neighbourhood import cluster_view, sender_neighbourhood
from server.web.common import PageDenied, error_page, need_user, pick_language, render
from server.web.words import words

router = APIRouter()
SIZE = 720
RADII = (0, 170, 310)
# Fill of each kind of node (senders, the values they share, places, the cluster itself).
COLOURS = {
    "sender": "#2f6fb3", "cluster": "#b3261e", "phone": "#7a5195", "address": "#ef8a17", "org": "#3b8b5a",
    "outlet": "#777777", "dest": "#00838f",
}  # fmt: skip


def layout(graph: dict[str, Any]) -> dict[str, Any]:
    """Rings around the centre; the outer ring in the order of the inner nodes each is linked to."""
    nodes = {n["id"]: dict(n) for n in graph["nodes"]}
    rings: dict[int, list[str]] = {0: [], 1: [], 2: []}
    for n in nodes.values():
        rings[min(2, int(n["ring"]))].append(n["id"])
    angle: dict[str, float] = {}
    for ring in (0, 1):
        for i, nid in enumerate(rings[ring]):
            angle[nid] = 2 * math.pi * i / max(1, len(rings[ring]))
    # Outer nodes follow their inner neighbour's angle, spread so that labels do not pile up.
    anchor = {}
    for a, b in graph["edges"]:
        for inner, outer in ((a, b), (b, a)):
            if outer in rings[2] and inner in angle and outer not in anchor:
                anchor[outer] = angle[inner]
    outer = sorted(rings[2], key=lambda nid: (anchor.get(nid, 0.0), nid))
    for i, nid in enumerate(outer):
        angle[nid] = 2 * math.pi * i / max(1, len(outer))
    c = SIZE / 2
    for nid, n in nodes.items():
        r = RADII[min(2, int(n["ring"]))]
        n["x"] = round(c + r * math.cos(angle.get(nid, 0.0)), 1)
        n["y"] = round(c + r * math.sin(angle.get(nid, 0.0)), 1)
        n["fill"] = COLOURS.get(n["kind"], "#444444")
        n["r"] = 16 if n["ring"] == 0 else 11 if n["kind"] == "sender" else 9
    lines = [(nodes[a], nodes[b]) for a, b in graph["edges"] if a in nodes and b in nodes]
    return {"size": SIZE, "nodes": list(nodes.values()), "lines": lines}


def _page(
    request: Request, valid: bool, what: str, template: str, build: Callable[..., dict[str, Any]]
) -> Response:
    """A link page for an officer: the picture of what `build` finds, or the readable error page."""
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        if not valid:
            return error_page(request, 404, f"no {what}")
        t = words(pick_language(request))
        with get_services(request).db.read() as conn:
            found = build(conn, who, t)
        return render(request, template, who, view=found, picture=layout(found), colours=COLOURS)
    except (PageDenied, ApiError) as exc:
        return error_page(request, exc.status, exc.message)


@router.get("/desk/links/senders/{token}")
def sender_page(request: Request, token: str) -> Response:
    valid = len(token) == 64 and all(ch in "0123456789abcdef" for ch in token)
    return _page(
        request, valid, f"sender {token[:20]!r}", "links_sender.html",
        lambda conn, who, t: sender_neighbourhood(conn, who, token, t),
    )  # fmt: skip


@router.get("/desk/links/clusters/{cluster_id}")
def cluster_page(request: Request, cluster_id: str) -> Response:
    return _page(
        request, len(cluster_id) == 36, f"cluster {cluster_id[:40]!r}", "links_cluster.html",
        lambda conn, who, t: cluster_view(conn, who, cluster_id, t),
    )  # fmt: skip
