"""Method checks over the whole route table: a path answers 405 naming every method it supports.

The router tries routes in the order they were added, so a parametrised route (`/senders/{token}`)
added before a literal one (`/senders/import`) would take requests the literal one should refuse,
and a 405 names only the methods of the first route that matched. Here the most specific template
matching the path decides, whatever the order: literal segments beat parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class Template:
    """One route as far as matching goes: its path, how specific it is, and its methods."""

    path_format: str
    regex: re.Pattern[str]
    methods: frozenset[str] | None  # None: any method (a mount)

    @property
    def specificity(self) -> tuple[int, ...]:
        return specificity(self.path_format)


def specificity(path_format: str) -> tuple[int, ...]:
    """Sort key, smaller is more specific: per segment 0 literal, 1 parameter, 2 rest of the path."""
    key = []
    for segment in path_format.strip("/").split("/"):
        if ":path}" in segment:
            key.append(2)
        else:
            key.append(1 if "{" in segment else 0)
    return tuple(key)


def flat_routes(routes: Sequence[Any]) -> list[Any]:
    """The app's routes with included routers opened up, in the order the router tries them."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # FastAPI versions that copy included routes into one flat list
        return list(routes)
    return list(iter_route_contexts(routes))


def route_table(routes: Iterable[Any]) -> list[Template]:
    table = []
    for route in routes:
        regex = getattr(route, "path_regex", None)
        path_format = getattr(route, "path_format", None)
        if regex is None or path_format is None:
            continue
        methods = getattr(route, "methods", None)
        table.append(Template(path_format, regex, frozenset(methods) if methods else None))
    return table


def allowed_methods(table: Sequence[Template], path: str) -> frozenset[str] | None:
    """Methods of the most specific templates matching `path`; None when nothing matches or a
    matching mount takes any method (the router then decides)."""
    best: tuple[int, ...] | None = None
    allowed: set[str] = set()
    any_method = False
    for tpl in table:
        if not tpl.regex.match(path):
            continue
        key = tpl.specificity
        if best is None or key < best:
            best, allowed, any_method = key, set(), False
        elif key > best:
            continue
        if tpl.methods is None:
            any_method = True
        else:
            allowed |= tpl.methods
    if best is None or any_method:
        return None
    return frozenset(allowed)


class MethodCheckMiddleware:
    """Answers 405 with the full `Allow` list before routing when the path's most specific
    templates do not take the method; everything else goes on to the router untouched."""

    def __init__(self, app: ASGIApp, routes_of: Callable[[], Sequence[Any]]) -> None:
        self.app = app
        self.routes_of = routes_of  # read once, at the first request, when every route is in
        self.table: list[Template] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.table is None:
            self.table = route_table(flat_routes(self.routes_of()))
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        allowed = allowed_methods(self.table, path)
        if allowed is None or scope["method"] in allowed:
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(allowed))
        body = json.dumps(
            {
                "error": {
                    "code": "method_not_allowed",
                    "message": f"{scope['method']} not allowed; use {allow}",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 405,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"allow", allow.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
