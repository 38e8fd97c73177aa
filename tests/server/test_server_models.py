"""Model publishing on both engines: artefacts with sha256, shadow/active modes, downloads for stations."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def test_publish_list_download_and_switch(server: Any) -> None:
    c = server.client
    blob = b"onnx-bytes" * 1000
    sha = hashlib.sha256(blob).hexdigest()
    headers = {**server.admin, "Content-Type": "application/octet-stream"}
    manifest = json.dumps({"labels": ["shoes", "bags"], "input": [1, 3, 224, 224]})
    params = {"sha256": sha, "kind": "head", "mode": "shadow", "manifest": manifest}
    put = c.put("/api/v1/models/category-head/2026.1", content=blob, params=params, headers=headers)
    assert put.status_code == 201, put.text
    assert put.json()["sha256"] == sha and put.json()["mode"] == "shadow"
    again = c.put("/api/v1/models/category-head/2026.1", content=blob, params=params, headers=headers)
    assert again.status_code == 409
    wrong = c.put("/api/v1/models/category-head/2026.2", content=blob + b"x", params=params, headers=headers)
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "hash_mismatch"
    bad_manifest = {**params, "manifest": "[1]"}
    assert c.put("/api/v1/models/m/1", content=blob, params=bad_manifest, headers=headers).status_code == 422
    listed = c.get("/api/v1/models", headers=server.station_a).json()
    assert [(m["name"], m["version"], m["mode"]) for m in listed] == [("category-head", "2026.1", "shadow")]
    assert listed[0]["manifest"]["labels"] == ["shoes", "bags"]
    got = c.get(listed[0]["url"], headers=server.station_a)
    assert hashlib.sha256(got.content).hexdigest() == sha == got.headers["x-content-sha256"]
    active = c.post("/api/v1/models/category-head/2026.1/mode", json={"mode": "active"}, headers=server.admin)
    assert active.json()["mode"] == "active"
    assert (
        c.post("/api/v1/models/none/1/mode", json={"mode": "active"}, headers=server.admin).status_code == 404
    )
    assert c.get("/api/v1/models/none/1/blob", headers=server.station_a).status_code == 404
    audit = [a["action"] for a in c.get("/api/v1/audit", headers=server.admin).json()]
    assert "model_publish" in audit and "model_mode" in audit


UNSAFE_PARTS = [
    "%2E",  # "."
    "%2E%2E",  # ".."
    "..a",
    "a..b",
    "a.",
    ".hidden",
    "-x",
    "_x",
    "a%2Fb",  # "a/b" once decoded
    "a%5Cb",  # backslash
    "a%00b",
    "a%20b",
    "%EF%BD%81",  # fullwidth "a"
    "x" * 65,
]


def test_unsafe_artefact_names_and_versions_are_refused(server: Any) -> None:
    c = server.client
    blob = b"onnx-bytes"
    params = {"sha256": hashlib.sha256(blob).hexdigest(), "kind": "model"}
    headers = {**server.admin, "Content-Type": "application/octet-stream"}
    for part in UNSAFE_PARTS:
        for path in (f"/api/v1/models/{part}/1", f"/api/v1/models/backbone/{part}"):
            r = c.put(path, content=blob, params=params, headers=headers)
            # 404 where the decoded slash makes it another path; never stored.
            assert r.status_code in (404, 422), (path, r.status_code)
            assert set(r.json()) == {"error"}
    assert c.get("/api/v1/models", headers=server.admin).json() == []
    for name, version in (("backbone", "2026.1"), ("a.b-c_d", "1.0+cpu"), ("x" * 64, "9" * 64)):
        r = c.put(f"/api/v1/models/{name}/{version}", content=blob, params=params, headers=headers)
        assert r.status_code == 201, (name, version, r.text)
