"""Cases on both engines through the API: items of two parcels, detention, notice, reply, disposal, close."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from edge.cli import main as cli_main
from server import admin
from server.accounts import Principal, Role
from server.app import create_app
from server.cases import notices, store
from server.cases.config import CasesConfig
from server.cases.dataset import export_dataset
from server.db import Database, parse_iso
from server.errors import Conflict
from server.schema import labelled_examples
from server.settings import generate_key
from tests.server.conftest import PASSWORD, Server, World, make_settings, png

Caller = Callable[[str, list[str]], tuple[dict[str, str], dict[str, str]]]
DETAIN = {"legal_basis": "《中华人民共和国知识产权海关保护条例》第十六条", "storage_location": "cage 3"}
HOLDER = {
    "brand": "Nike",
    "contact_name": "Li Lei",
    "email": "ipr@nike.example.com",
    "address": "Beaverton",
    "language": "zh",
    "trademarks": [{"number": "G1234567", "mark": "NIKE", "classes": [25]}],
}

RELEASE = {"note": "returned to the sender after the check"}


def detain_items(c: TestClient, officer: dict[str, str], ids: list[int]) -> None:
    for item_id in ids:
        assert c.post(f"/api/v1/reviews/{item_id}/claim", headers=officer).status_code == 200
        r = c.post(
            f"/api/v1/reviews/{item_id}/decision",
            json={"action": "detain", "fields": DETAIN},
            headers=officer,
        )
        assert r.status_code == 200, r.text


def open_detained_case(
    server: Server, world: World, officer: dict[str, str], holder_data: dict[str, Any] = HOLDER
) -> dict[str, Any]:
    c = server.client
    ids = [world.item["site1"], world.shared_item["site1"]]
    detain_items(c, officer, ids)
    holder = c.post("/api/v1/rights-holders", json=holder_data, headers=officer)
    assert holder.status_code == 201, holder.text
    r = c.post("/api/v1/cases", json={"title": "蚂蚁搬家 shoes", "items": ids}, headers=officer)
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["state"] == "open" and [i["id"] for i in case["items"]] == sorted(ids)
    r = c.post(
        f"/api/v1/cases/{case['id']}/rights-holder",
        json={"rights_holder_id": holder.json()["id"]},
        headers=officer,
    )
    assert r.status_code == 200, r.text
    r = c.post(
        f"/api/v1/cases/{case['id']}/steps", json={"action": "detain", "fields": DETAIN}, headers=officer
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "detained" and r.json()["due_key"] == "case_notify"
    assert "site policy" in r.json()["deadline"]["source"]
    return dict(r.json())


def test_case_from_two_parcels_to_closing(
    server: Server, world: World, caller: Caller, tmp_path: Path
) -> None:
    c = server.client
    officer, _ = caller("officer", ["site1"])
    case = open_detained_case(server, world, officer)
    cid = case["id"]
    # Without a mail server the notice is exported, then marked as handed over.
    r = c.post(f"/api/v1/cases/{cid}/notify", headers=officer)
    assert r.status_code == 200, r.text
    assert r.json()["sent"] is False and r.json()["case"]["state"] == "notified"
    notice_id = r.json()["notice_id"]
    eml = c.get(f"/api/v1/cases/{cid}/notices/{notice_id}/eml", headers=officer)
    assert eml.status_code == 200 and eml.headers["content-type"].startswith("message/rfc822")
    msg = message_from_bytes(eml.content, policy=policy.default)
    body = msg.get_body().get_content()  # type: ignore[union-attr]
    assert "CASE-" in str(msg["Subject"]) and world.waybill["site1"] in body and "3 个工作日" in body
    assert "第十六条" in body and "G1234567" in body
    # A delivery time before the notice was written, in the future, or without a zone is refused.
    for when, status in (
        ("2001-01-01T00:00:00Z", 422),
        ("2999-01-01T00:00:00Z", 422),
        ("2026-12-01T10:00:00", 422),
    ):
        bad = c.post(f"/api/v1/cases/{cid}/delivered", json={"delivered_at": when}, headers=officer)
        assert bad.status_code == status and "error" in bad.json(), (when, bad.text)
    r = c.post(f"/api/v1/cases/{cid}/delivered", json={}, headers=officer)
    assert r.status_code == 200, r.text
    awaiting = r.json()
    assert awaiting["state"] == "awaiting_rights_holder" and awaiting["due_key"] == "detain"
    assert awaiting["notifications"][0]["reply_due_at"] == awaiting["due_at"]
    # No reply can be recorded before its deadline has passed.
    early = c.post(f"/api/v1/cases/{cid}/reply", json={"reply": "no_reply"}, headers=officer)
    assert early.status_code == 409 and early.json()["error"]["code"] == "reply_early"
    sample = {
        "review_id": world.item["site1"],
        "description": "one left shoe",
        "quantity": 1,
        "released_to": "Li Lei (Nike)",
        "receipt_reference": "R-1",
    }
    assert c.post(f"/api/v1/cases/{cid}/samples", json=sample, headers=officer).status_code == 200
    r = c.post(
        f"/api/v1/cases/{cid}/reply", json={"reply": "counterfeit", "note": "letter 12"}, headers=officer
    )
    assert r.status_code == 200 and r.json()["state"] == "decided" and r.json()["due_key"] == "refer"
    assert all(i["seized"] for i in r.json()["items"])
    # Illegal transitions: releasing counterfeit goods, closing before a final state.
    bad = c.post(
        f"/api/v1/cases/{cid}/steps", json={"action": "release", "fields": RELEASE}, headers=officer
    )
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "counterfeit"
    bad = c.post(f"/api/v1/cases/{cid}/steps", json={"action": "close"}, headers=officer)
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "not_allowed"
    refer = {"authority": "police", "case_reference": "公(经)立字〔2026〕17号"}
    r = c.post(f"/api/v1/cases/{cid}/steps", json={"action": "refer", "fields": refer}, headers=officer)
    assert r.status_code == 200 and r.json()["state"] == "referred"
    # Closing with goods undisposed is refused, and nothing changes.
    bad = c.post(f"/api/v1/cases/{cid}/steps", json={"action": "close"}, headers=officer)
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "undisposed"
    assert "2 item(s)" in bad.json()["error"]["message"]
    # Bad disposal inputs: a body that is no image, a photo never uploaded for the case, a day to come,
    # an item of no seized goods, an unknown method.
    bad_photo = c.post(
        f"/api/v1/cases/{cid}/photos", content=b"GIF89a", headers={**officer, "Content-Type": "image/png"}
    )
    assert bad_photo.status_code == 415
    good = {
        "review_id": world.item["site1"],
        "method": "destruction",
        "place": "p",
        "done_on": awaiting["state_since"][:10],
        "witnesses": ["w"],
        "certificate_ref": "c",
    }
    for change, code in (
        ({"photos": ["ab" * 32]}, "bad_photo"),
        ({"done_on": "2999-01-01"}, "bad_date"),
        ({"review_id": world.item["site2"]}, "not_in_case"),
        ({"method": "burial"}, "invalid"),
        ({"done_on": "2026-02-30"}, "invalid"),
        ({"witnesses": []}, "invalid"),
    ):
        r = c.post(f"/api/v1/cases/{cid}/disposals", json={**good, **change}, headers=officer)
        assert r.status_code == 422 and r.json()["error"]["code"] == code, (change, r.text)
    photo = png("destroyed")
    up = c.post(
        f"/api/v1/cases/{cid}/photos", content=photo, headers={**officer, "Content-Type": "image/png"}
    )
    assert up.status_code == 201, up.text
    sha = up.json()["sha256"]
    assert sha == hashlib.sha256(photo).hexdigest()
    for item_id in (world.item["site1"], world.shared_item["site1"]):
        disposal = {
            "review_id": item_id,
            "method": "destruction",
            "place": "Shenzhen incinerator 2",
            "done_on": awaiting["state_since"][:10],
            "witnesses": ["Wang", "Zhao"],
            "photos": [sha],
            "certificate_ref": "DC-2026-9",
        }
        r = c.post(f"/api/v1/cases/{cid}/disposals", json=disposal, headers=officer)
        assert r.status_code == 200, r.text
    again = c.post(f"/api/v1/cases/{cid}/disposals", json=disposal, headers=officer)
    assert again.status_code == 409 and again.json()["error"]["code"] == "exists"
    r = c.post(f"/api/v1/cases/{cid}/steps", json={"action": "close"}, headers=officer)
    assert r.status_code == 200 and r.json()["state"] == "closed" and r.json()["closed_at"]
    actions = [e["action"] for e in r.json()["trail"]]
    assert actions[:3] == ["case_open", "case_rights_holder", "case_detain"] and actions[-1] == "case_close"
    assert {"case_notify", "case_deliver", "case_sample", "case_reply", "case_disposal", "case_refer"} <= set(
        actions
    )
    assert c.get("/api/v1/audit/verify", headers=server.admin).json()["ok"] is True
    # The closed case's goods images are labelled examples; the world's two parcels share one image,
    # which is one example (of the first parcel) and is written once.
    db = c.app.state.services.db  # type: ignore[attr-defined]
    with db.read() as conn:
        rows = conn.execute(sqlalchemy.select(labelled_examples)).fetchall()
        assert {(r.label, r.source, r.case_id) for r in rows} == {("counterfeit", "case", cid)}
        assert [r.image_sha256 for r in rows] == [world.image["site1"]]
        counts = export_dataset(conn, tmp_path / "data", "xray")
    assert counts["per_label"] == {"counterfeit": 1} and counts["groups"] == 1
    assert (tmp_path / "data" / "groups.csv").read_text().startswith("file,group")
    # A closed case takes no further step.
    bad = c.post(f"/api/v1/cases/{cid}/notify", headers=officer)
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "not_allowed"


def test_cases_stay_within_the_callers_sites(server: Server, world: World, caller: Caller) -> None:
    c = server.client
    one, _ = caller("officer", ["site1"])
    two, _ = caller("officer", ["site2"])
    both, _ = caller("officer", ["site1", "site2"])
    case = c.post("/api/v1/cases", json={"title": "t", "items": [world.item["site1"]]}, headers=one).json()
    # An item of a site the caller may not see is not found, alone or beside a visible one.
    r = c.post(
        "/api/v1/cases", json={"title": "t", "items": [world.item["site1"], world.item["site2"]]}, headers=one
    )
    assert r.status_code == 404 and str(world.item["site2"]) in r.json()["error"]["message"]
    r = c.post(f"/api/v1/cases/{case['id']}/items", json={"items": [world.item["site2"]]}, headers=one)
    assert r.status_code == 404
    assert c.get(f"/api/v1/cases/{case['id']}", headers=two).status_code == 404
    assert c.get("/api/v1/cases", headers=two).json() == []
    # A case across both sites is shown only to callers holding both.
    r = c.post(f"/api/v1/cases/{case['id']}/items", json={"items": [world.item["site2"]]}, headers=both)
    assert r.status_code == 200 and r.json()["sites"] == ["site1", "site2"]
    assert c.get(f"/api/v1/cases/{case['id']}", headers=one).status_code == 404
    assert [x["id"] for x in c.get("/api/v1/cases", headers=both).json()] == [case["id"]]
    assert c.get(f"/api/v1/cases/{case['id']}", headers=server.admin).status_code == 200
    # The case's audit entries are listed only to callers of both sites.
    mine = c.get("/api/v1/audit", headers=caller("admin", ["site1"])[0]).json()
    assert not any(e["target"] == f"case:{case['id']}" and e["action"] == "case_add_items" for e in mine)
    # An item is in one case at most; an owner must hold every site of the case.
    r = c.post("/api/v1/cases", json={"title": "t2", "items": [world.item["site1"]]}, headers=both)
    assert r.status_code == 409 and r.json()["error"]["code"] == "in_another_case"
    r = c.post(f"/api/v1/cases/{case['id']}/owner", json={"owner": "officer-site1"}, headers=both)
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_owner"
    # Detaining needs every item held at review.
    r = c.post(f"/api/v1/cases/{case['id']}/steps", json={"action": "detain", "fields": DETAIN}, headers=both)
    assert r.status_code == 409 and r.json()["error"]["code"] == "items_not_held"
    # Supervisors read, never write; bad bodies are refused with the one error shape.
    sup, _ = caller("supervisor", ["*"])
    assert (
        c.post("/api/v1/cases", json={"title": "t", "items": [world.item["site1"]]}, headers=sup).status_code
        == 403
    )
    for body in (
        {"title": "", "items": [1]},
        {"title": "t", "items": []},
        {"title": "t", "items": [0]},
        {"x": 1},
    ):
        r = c.post("/api/v1/cases", json=body, headers=one)
        assert r.status_code == 422 and "error" in r.json(), body


def test_rights_holder_registry(server: Server, caller: Caller) -> None:
    c = server.client
    officer, _ = caller("officer", ["site1"])
    r = c.post("/api/v1/rights-holders", json=HOLDER, headers=officer)
    assert r.status_code == 201 and r.json()["trademarks"][0]["classes"] == [25]
    assert c.post("/api/v1/rights-holders", json=HOLDER, headers=officer).status_code == 409
    bad_marks = [{"number": "1", "mark": "M", "classes": [46]}]
    for bad in (
        {**HOLDER, "brand": "B", "email": "not-an-address"},
        {**HOLDER, "brand": "C", "language": "fr"},
        {**HOLDER, "brand": "D", "trademarks": bad_marks},
    ):
        assert c.post("/api/v1/rights-holders", json=bad, headers=officer).status_code == 422, bad
    hid = r.json()["id"]
    r = c.patch(f"/api/v1/rights-holders/{hid}", json={"active": False}, headers=officer)
    assert r.status_code == 200 and r.json()["active"] is False
    assert c.get("/api/v1/rights-holders", headers=officer).json() == []
    assert c.patch(f"/api/v1/rights-holders/{hid}", json={}, headers=officer).status_code == 422


def _officer(name: str, sites: list[str]) -> Principal:
    return Principal(kind="user", name=name, role=Role.OFFICER, sites=tuple(sites))


def test_a_reply_after_the_deadline_is_refused(server: Server, world: World, caller: Caller) -> None:
    """The clock moves past the reply's deadline: a confirmation is then refused, no_reply is taken."""
    officer, _ = caller("officer", ["site1"])
    case = open_detained_case(server, world, officer)
    svc = server.client.app.state.services  # type: ignore[attr-defined]
    who = _officer("officer-site1", ["site1"])
    now = parse_iso(case["state_since"])
    with svc.db.write() as conn:
        notices.notify(conn, svc.settings, who, case["id"], now)
        due = notices.deliver(conn, svc.settings, who, case["id"], now + timedelta(hours=1))
    assert due is not None and due > now + timedelta(days=3)  # three working days, counted locally
    late = due + timedelta(seconds=1)
    with svc.db.write() as conn, pytest.raises(Conflict) as caught:
        notices.record_reply(conn, svc.settings, who, case["id"], "counterfeit", "", late)
    assert caught.value.code == "reply_late"
    with svc.db.write() as conn:
        notices.record_reply(conn, svc.settings, who, case["id"], "no_reply", "", late)
        row = store.load_case(conn, who, case["id"])
    assert row.state == "decided" and row.outcome == "no_reply" and row.due_key == "case_release"


@pytest.fixture
def smtp_box() -> Iterator[tuple[int, list[bytes]]]:
    """A real SMTP server in process (aiosmtpd) that keeps every message it receives."""
    import socket

    from aiosmtpd.controller import Controller

    received: list[bytes] = []

    class Keep:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope.original_content or envelope.content)
            return "250 OK"

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def test_notice_sent_by_smtp_starts_the_reply_deadline(
    db_url: str, smtp_box: tuple[int, list[bytes]]
) -> None:
    port, received = smtp_box
    cfg = CasesConfig(
        smtp_host="127.0.0.1", smtp_port=port, mail_from="ipr@site1.example.cn", office_name="深圳站"
    )
    settings = make_settings(db_url, cases=cfg)
    admin.create_user(settings, "root", PASSWORD, "admin", ["*"])
    with TestClient(create_app(settings)) as client:
        root = {"Authorization": f"Bearer {admin.create_api_token(settings, 'root')}"}
        st = [
            {"Authorization": f"Bearer {admin.register_station(settings, s, site, 'l1')}"}
            for s, site in (("st-a", "site1"), ("st-b", "site1"), ("st-c", "site2"))
        ]
        srv = Server(settings, client, root, st[0], st[1], st[2])
        from tests.server.conftest import build_world, make_caller

        world = build_world(srv)
        officer, _ = make_caller(srv, "officer", ["site1"])
        case = open_detained_case(srv, world, officer)
        r = client.post(f"/api/v1/cases/{case['id']}/notify", headers=officer)
        assert r.status_code == 200, r.text
        assert r.json()["sent"] is True and r.json()["case"]["state"] == "awaiting_rights_holder"
        assert r.json()["case"]["notifications"][0]["delivered_at"]
    assert len(received) == 1
    msg = message_from_bytes(received[0], policy=policy.default)
    assert msg["To"] == HOLDER["email"] and msg["From"] == "ipr@site1.example.cn"
    body = msg.get_body().get_content()  # type: ignore[union-attr]
    assert "深圳站" in body and world.waybill["site1"] in body


def test_smtp_refusal_keeps_the_notice_to_export(server: Server, world: World, caller: Caller) -> None:
    """A mail server that does not answer: the case stays notified with the error, the notice exportable."""
    officer, _ = caller("officer", ["site1"])
    case = open_detained_case(server, world, officer, {**HOLDER, "language": "en"})
    svc = server.client.app.state.services  # type: ignore[attr-defined]
    svc.settings.cases.smtp_host, svc.settings.cases.smtp_port = "127.0.0.1", 9  # discard port: refused
    try:
        r = server.client.post(f"/api/v1/cases/{case['id']}/notify", headers=officer)
    finally:
        svc.settings.cases.smtp_host = None
    assert r.status_code == 200 and r.json()["sent"] is False and "127.0.0.1:9" in r.json()["error"]
    assert r.json()["case"]["state"] == "notified" and r.json()["case"]["notifications"][0]["send_error"]
    # The rights holder reads English: the English template, with the same period and source.
    eml = server.client.get(
        f"/api/v1/cases/{case['id']}/notices/{r.json()['notice_id']}/eml", headers=officer
    )
    body = message_from_bytes(eml.content, policy=policy.default).get_body()
    assert body is not None and "within 3 working days of receiving it" in str(body.get_content())
    assert "Notice of detained goods" in eml.text and "第十六条" in str(body.get_content())


def test_open_box_results_become_labelled_examples(
    server: Server,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    c = server.client
    event = {
        "type": "operator",
        "key": "st-a:w1:9",
        "station_id": "st-a",
        "boot_id": "w1",
        "seq": 9,
        "at": "2026-12-01T10:00:00+00:00",
        "tracking_id": "tst-a1",
        "waybill": world.waybill["site1"],
        "action": "open_box",
        "result": "counterfeit: fake swoosh",
        "operator": "op1",
    }
    batch = {"station_id": "st-a", "boot_id": "w1", "registry_cursor": 0, "events": [event]}
    assert c.post("/api/v1/sync", json=batch, headers=server.station_a).is_success
    db: Database = c.app.state.services.db  # type: ignore[attr-defined]
    with db.read() as conn:
        rows = conn.execute(sqlalchemy.select(labelled_examples)).fetchall()
        assert [(r.label, r.source, r.parcel, r.image_sha256) for r in rows] == [
            ("counterfeit", "open_box", "st-a:tst-a1", world.image["site1"])
        ]
        counts = export_dataset(conn, tmp_path / "d", "xray", sources=("open_box",))
    assert counts == {"images": 1, "groups": 1, "per_label": {"counterfeit": 1}, "missing_images": 0}
    listed = json.loads((tmp_path / "d" / "examples.json").read_text())
    assert listed[0]["parcel"] == "st-a:tst-a1" and (tmp_path / "d" / listed[0]["file"]).read_bytes() == png(
        "site1"
    )
    # The same through the command line: `parcelguard model dataset export`.
    for name in ("PARCELGUARD_SECRET_KEY", "PARCELGUARD_HMAC_KEY", "PARCELGUARD_ENCRYPTION_KEY"):
        monkeypatch.setenv(name, generate_key())
    cfg = tmp_path / "server.toml"
    cfg.write_text(f"[server]\ndatabase_url = '{server.settings.database_url}'\n", encoding="utf-8")
    args = [
        "model",
        "dataset",
        "export",
        "--config",
        str(cfg),
        "--kind",
        "xray",
        "--out",
        str(tmp_path / "cli"),
    ]
    assert cli_main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["per_label"] == {"counterfeit": 1}
    assert cli_main(args) == 2 and "is not empty" in capsys.readouterr().err
    assert cli_main([*args[:-1], str(tmp_path / "cli2"), "--label", "genuine"]) == 2
    assert "no labelled examples" in capsys.readouterr().err
