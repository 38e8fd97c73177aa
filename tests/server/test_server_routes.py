"""Over the whole route table: 405 names every method a path takes, literal paths beat parametrised
ones, and every body-taking endpoint refuses deeply nested JSON with the one error shape."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.db import migrate
from server.json_depth import nests_deeper_than
from server.routing import allowed_methods, flat_routes, route_table, specificity
from tests.server.conftest import make_settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
BODY_METHODS = ("POST", "PUT", "PATCH")
DEPTH = 32  # the default limit


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # Routing and body checks run before any database work: one engine is enough.
    url = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(url)
    with TestClient(create_app(make_settings(url))) as c:
        yield c


def _templates(client: TestClient) -> dict[str, set[str]]:
    """path template -> every method some route of that template takes."""
    out: dict[str, set[str]] = {}
    for route in flat_routes(client.app.routes):  # type: ignore[attr-defined]
        if getattr(route, "path_format", None) and getattr(route, "methods", None):
            out.setdefault(route.path_format, set()).update(route.methods)
    assert len(out) > 30  # the table was read, not an empty list
    return out


def _sample(path_format: str) -> str:
    """A concrete path for a template; parameters get a value no literal segment has."""
    return re.sub(r"\{[^}:]+(:int)?\}", lambda m: "7" if m.group(1) else "zz9sample", path_format)


def _error(r: Any) -> dict[str, str]:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return dict(body["error"])


def test_every_path_answers_405_with_all_its_methods(client: TestClient) -> None:
    table = route_table(flat_routes(client.app.routes))  # type: ignore[attr-defined]
    failures = []
    checked = 0
    for path_format, methods in _templates(client).items():
        path = _sample(path_format)
        assert allowed_methods(table, path) == frozenset(methods), path  # the sample hits its own template
        for method in sorted(set(METHODS) - methods):
            r = client.request(method, path)
            checked += 1
            allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
            if r.status_code != 405 or allow != methods:
                failures.append(
                    f"{method} {path}: {r.status_code} Allow={sorted(allow)} want {sorted(methods)}"
                )
            elif method != "HEAD" and _error(r)["code"] != "method_not_allowed":
                failures.append(f"{method} {path}: error shape {r.text}")
    assert checked > 100
    assert failures == []


def test_a_literal_path_is_not_taken_by_a_parametrised_one(client: TestClient) -> None:
    # /senders/{token} (GET) would match /senders/import, whose only method is POST.
    r = client.get("/api/v1/senders/import")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert _error(r)["code"] == "method_not_allowed"
    # One template served by routes from two modules: both methods are named.
    r = client.delete("/api/v1/images/" + "a" * 64)
    assert r.status_code == 405 and r.headers["allow"] == "GET, PUT"
    # The parametrised route still serves what is not a literal path (here: asks who is calling).
    assert client.get("/api/v1/senders/zz9").status_code == 401
    assert client.get("/api/v1/nowhere").status_code == 404


def test_no_route_is_shadowed_by_an_earlier_less_specific_one(client: TestClient) -> None:
    """The router dispatches to the first match in table order: a more specific template taking the
    same method must come before any less specific one that also matches its paths."""
    routes = route_table(flat_routes(client.app.routes))  # type: ignore[attr-defined]
    shadowed = []
    for i, late in enumerate(routes):
        path = _sample(late.path_format)
        for early in routes[:i]:
            same_method = (early.methods or frozenset(METHODS)) & (late.methods or frozenset(METHODS))
            if (
                early.regex.match(path)
                and specificity(early.path_format) > specificity(late.path_format)
                and same_method
            ):
                shadowed.append(f"{sorted(same_method)} {late.path_format} behind {early.path_format}")
    assert shadowed == []


def _body_routes(client: TestClient) -> list[tuple[str, str]]:
    out = sorted(
        (method, _sample(path_format))
        for path_format, methods in _templates(client).items()
        for method in methods
        if method in BODY_METHODS
    )
    assert ("POST", "/api/v1/senders/import") in out and ("POST", "/api/v1/sync") in out
    return out


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"[" * 200_000, {"Content-Type": "application/json"}),
        (b"[" * 200_000, {}),  # no content type: still parsed as JSON
        (b'{"a":' * 50_000, {"Content-Type": "application/json; charset=utf-8"}),
        (b' {"a":[' * (DEPTH // 2) + b"[1]" + b"]}" * (DEPTH // 2), {"Content-Type": "application/json"}),
        ("[" * 5000, {"Content-Type": "application/vnd.api+json"}),
        ("[" * 5000, {"Content-Type": "application/json; charset=utf-16"}),  # utf-16 below
        (gzip.compress(b"[" * 200_000), {"Content-Type": "application/json", "Content-Encoding": "gzip"}),
    ],
    ids=["brackets", "no-type", "objects", "just-over", "plus-json", "utf16", "gzip"],
)
def test_every_body_endpoint_refuses_deep_json(client: TestClient, body: bytes | str, headers: Any) -> None:
    data = body.encode("utf-16") if isinstance(body, str) and "16" in headers["Content-Type"] else body
    data = data.encode() if isinstance(data, str) else data
    failures = []
    for method, path in _body_routes(client):
        r = client.request(method, path, content=data, headers=headers)
        if r.status_code != 422 or _error(r)["code"] != "too_deep":
            failures.append(f"{method} {path}: {r.status_code} {r.text[:120]}")
    assert failures == []


def test_json_within_the_depth_and_brackets_in_strings_pass(client: TestClient) -> None:
    # At the limit: the parser gets it and the endpoint's own validation answers.
    nested = b"[" * DEPTH + b"]" * DEPTH
    r = client.post("/api/v1/auth/login", content=nested, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and _error(r)["code"] == "invalid"
    # Brackets inside strings, escaped quotes included, nest nothing.
    password = '\\"[' * 80
    login = {"username": "nobody", "password": password}
    assert client.post("/api/v1/auth/login", json=login).status_code == 401


def test_a_deep_json_parameter_is_refused(client: TestClient) -> None:
    from server import admin

    settings = client.app.state.settings  # type: ignore[attr-defined]
    admin.create_user(settings, "root", "a long password 123", "admin", ["*"])
    auth = {"Authorization": f"Bearer {admin.create_api_token(settings, 'root')}"}
    params = {"sha256": hashlib.sha256(b"x").hexdigest(), "manifest": "[" * 4000}
    r = client.put("/api/v1/models/backbone/1", content=b"x", params=params, headers=auth)
    assert r.status_code == 422 and _error(r)["code"] == "too_deep"


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def _random_json(rng: random.Random, depth: int) -> Any:
    if depth == 0:
        return rng.choice([1, "s[", 'q"{', "\\", None, "]}", 2.5])
    inner = [_random_json(rng, depth - 1)] + [_random_json(rng, rng.randrange(depth)) for _ in range(2)]
    rng.shuffle(inner)
    return inner if rng.random() < 0.5 else {f"k{i}[": v for i, v in enumerate(inner)}


def test_depth_scan_agrees_with_the_parser() -> None:
    rng = random.Random(7)
    for _ in range(300):
        value = _random_json(rng, rng.randrange(0, 12))
        depth = _depth(value)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        for limit in (depth - 1, depth, depth + 1):
            if limit >= 0:
                assert nests_deeper_than(text.encode(), limit) == (depth > limit), (text, limit)
        assert nests_deeper_than(text.encode("utf-16"), depth) is False
        if depth:
            assert nests_deeper_than(text.encode("utf-32"), depth - 1) is True
    # Unbalanced text counts as too deep; a lone bracket inside a string does not.
    assert nests_deeper_than(b"[" * 10, 4) and nests_deeper_than(b"[[[[[]]", 4)
    assert not nests_deeper_than(b'["' + b"[" * 100 + b'"]', 4)


def test_json_bodies_keep_the_json_size_limit_on_upload_paths(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(url)
    settings = make_settings(url, limits={"max_body_bytes": 1024, "max_image_bytes": 1 << 20})
    with TestClient(create_app(settings)) as c:
        big_json = json.dumps({"mode": "active", "pad": "x" * 2000}).encode()
        r = c.post("/api/v1/models/m/1/mode", content=big_json, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and _error(r)["code"] == "too_large"
        # The same size as an artefact is within the upload limit (and then needs a login).
        blob = {"Content-Type": "application/octet-stream"}
        assert c.put("/api/v1/models/m/1", content=b"x" * 2000, headers=blob).status_code == 401
