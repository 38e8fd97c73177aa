"""Review workflow on both engines: hits open items, claims with leases, decisions, gallery, deadlines."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from typing import Any

from tests.server.conftest import site_day

Factory = Callable[..., dict[str, Any]]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# A real 16x16 grey PNG: the server checks every upload's header through the image gate.
PNG = (
    b"\x89PNG\r\n\x1a\n"
    + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0))
    + _png_chunk(b"IDAT", zlib.compress(bytes(range(17)) * 16))
    + _png_chunk(b"IEND", b"")
)
SHA = hashlib.sha256(PNG).hexdigest()


def _hit(server: Any, parcel: Factory, make_batch: Factory) -> int:
    img = {"sha256": SHA, "kind": "xray", "content_type": "image/png", "size": len(PNG)}
    ev = parcel("st-a", 1, "HOLD", images=[img], declared_category="footwear")
    clear = parcel("st-a", 2)
    assert server.client.post(
        "/api/v1/sync", json=make_batch("st-a", [ev, clear]), headers=server.station_a
    ).is_success
    up = server.client.put(
        f"/api/v1/images/{SHA}", content=PNG, headers={**server.station_a, "Content-Type": "image/png"}
    )
    assert up.status_code == 201 and up.json()["stored"]
    again = server.client.put(
        f"/api/v1/images/{SHA}", content=PNG, headers={**server.station_a, "Content-Type": "image/png"}
    )
    assert again.status_code == 201 and not again.json()["stored"]
    officer = server.user("olga", "officer", ["site1"])
    items = server.client.get("/api/v1/reviews", headers=officer).json()
    assert len(items) == 1 and items[0]["decision"] == "HOLD" and items[0]["state"] == "open"
    return int(items[0]["id"])


def test_decision_flow_and_gallery(server: Any, parcel: Factory, make_batch: Factory) -> None:
    c = server.client
    item = _hit(server, parcel, make_batch)
    olga = server.user("oleg", "officer", ["site1"])
    other_site = server.user("otto", "officer", ["site2"])
    assert c.get(f"/api/v1/reviews/{item}", headers=other_site).status_code == 404
    evidence = c.get(f"/api/v1/reviews/{item}", headers=olga).json()
    assert evidence["images"][0]["url"] == f"/api/v1/images/{SHA}"
    assert c.get(evidence["images"][0]["url"], headers=olga).content == PNG
    # The station may not read evidence images that are not in the gallery.
    assert c.get(f"/api/v1/images/{SHA}", headers=server.station_b).status_code == 404
    seize = {
        "legal_basis": "《中华人民共和国商标法》第六十二条",
        "seizure_record": "S-2026-1",
        "rights_holder": "Brand Co",
    }
    not_claimed = c.post(
        f"/api/v1/reviews/{item}/decision", json={"action": "seize", "fields": seize}, headers=olga
    )
    assert not_claimed.status_code == 409
    assert c.post(f"/api/v1/reviews/{item}/claim", headers=olga).json()["state"] == "claimed"
    rival = server.user("ona", "officer", ["site1"])
    assert c.post(f"/api/v1/reviews/{item}/claim", headers=rival).status_code == 409
    missing = c.post(f"/api/v1/reviews/{item}/decision", json={"action": "seize", "fields": {}}, headers=olga)
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "missing_fields"
    body = {"action": "seize", "fields": seize, "add_to_gallery": True, "gallery_label": "fake sneaker"}
    done = c.post(f"/api/v1/reviews/{item}/decision", json=body, headers=olga)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "seized" and done.json()["statutory_due_at"] is not None
    assert c.get("/api/v1/reviews", headers=olga).json() == []
    due = c.get("/api/v1/reviews?view=followups", headers=olga).json()
    assert [(i["id"], i["outcome"]) for i in due] == [(item, "seize")]
    gallery = c.get("/api/v1/models/gallery", headers=server.station_b).json()
    assert [(r["image_sha256"], r["label"]) for r in gallery["refs"]] == [(SHA, "fake sneaker")]
    assert c.get(gallery["refs"][0]["image_url"], headers=server.station_b).content == PNG
    day = site_day(evidence["created_at"])
    report = c.get(f"/api/v1/reports/daily?date={day}", headers=server.admin).json()
    assert report["review_outcomes"] == {"seize": 1} and report["confirmed_hit_rate"] == 1.0
    assert any(a["action"] == "review_seize" for a in c.get("/api/v1/audit", headers=server.admin).json())


def test_inspection_returns_to_queue(server: Any, parcel: Factory, make_batch: Factory) -> None:
    c = server.client
    item = _hit(server, parcel, make_batch)
    olga = server.user("oleg", "officer", ["*"])
    c.post(f"/api/v1/reviews/{item}/claim", headers=olga)
    r = c.post(
        f"/api/v1/reviews/{item}/decision",
        json={"action": "open_inspection", "fields": {"note": "open"}},
        headers=olga,
    )
    assert r.json()["state"] == "inspecting"
    assert [i["state"] for i in c.get("/api/v1/reviews", headers=olga).json()] == ["inspecting"]
    c.post(f"/api/v1/reviews/{item}/claim", headers=olga)
    again = c.post(
        f"/api/v1/reviews/{item}/decision",
        json={"action": "open_inspection", "fields": {"note": "x"}},
        headers=olga,
    )
    assert again.status_code == 409
    refer = {"action": "refer", "fields": {"authority": "police", "case_reference": "P-1"}}
    assert c.post(f"/api/v1/reviews/{item}/decision", json=refer, headers=olga).json()["state"] == "referred"


def test_bad_image_uploads(server: Any) -> None:
    c = server.client
    h = {**server.station_a, "Content-Type": "image/png"}
    assert (
        c.put(f"/api/v1/images/{'0' * 64}", content=PNG, headers=h).json()["error"]["code"] == "hash_mismatch"
    )
    gif = b"GIF89a" + bytes(10)
    sha = hashlib.sha256(gif).hexdigest()
    assert (
        c.put(f"/api/v1/images/{sha}", content=gif, headers={**h, "Content-Type": "image/gif"}).status_code
        == 415
    )
    assert c.put(f"/api/v1/images/{sha}", content=gif, headers=h).status_code == 415
    assert c.put("/api/v1/images/XYZ", content=PNG, headers=h).status_code == 422
    as_admin = {**server.admin, "Content-Type": "image/png"}
    assert c.put(f"/api/v1/images/{SHA}", content=PNG, headers=as_admin).status_code == 403
    big = b"\x89PNG\r\n\x1a\n" + bytes(server.settings.limits.max_image_bytes)
    assert (
        c.put(f"/api/v1/images/{hashlib.sha256(big).hexdigest()}", content=big, headers=h).status_code == 413
    )
