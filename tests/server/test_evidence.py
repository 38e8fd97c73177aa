"""Evidence bundles and referrals on both engines: export, offline verification, tampering, the letter."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from pypdf import PdfReader

from edge.cli import main
from server import admin
from server.app import create_app
from server.evidence.archive import ENVELOPE, MANIFEST, SIGNATURE, verify_bundle
from server.evidence.signing import key_fingerprint, public_pem
from tests.server.conftest import Server, World, make_caller, make_settings, png
from tests.server.test_server_cases import open_detained_case

OPENSSL = shutil.which("openssl")
# A day already past in every site's zone: disposals may not be dated ahead.
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()


def officer(server: Server, site: str) -> dict[str, str]:
    """The officer of `site` that the world created (one token each call)."""
    return {"Authorization": f"Bearer {admin.create_api_token(server.settings, f't-{site}')}"}


def bundle_of(server: Server, headers: dict[str, str], items: list[int], reason: str = "") -> bytes:
    r = server.client.post(
        "/api/v1/evidence/bundles", json={"item_ids": items, "reveal_reason": reason}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    return bytes(r.content)


def files_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rezip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_bundle_verifies_and_holds_the_evidence(server: Server, world: World) -> None:
    headers = officer(server, "site1")
    item = world.item["site1"]
    # What became of the parcel after screening: the sorter's divert, then the operator's open box.
    base = {"station_id": "st-a", "boot_id": "w1", "tracking_id": "tst-a1", "waybill": "WBSITE1A"}
    later = [
        {
            **base,
            "type": "divert_outcome",
            "key": "st-a:w1:10",
            "seq": 10,
            "at": "2026-12-01T10:00:05+00:00",
            "decision": "HOLD",
            "outcome": "DIVERTED",
            "chute": "H1",
        },
        {
            **base,
            "type": "operator",
            "key": "st-a:w1:11",
            "seq": 11,
            "at": "2026-12-01T10:03:00+00:00",
            "action": "open_box",
            "result": "12 pairs of AF1, no invoice",
            "operator": "op-17",
        },
    ]
    sync = {"station_id": "st-a", "boot_id": "w1", "registry_cursor": 0, "events": later}
    assert server.client.post("/api/v1/sync", json=sync, headers=server.station_a).is_success
    data = bundle_of(server, headers, [item], reason="referral of case 2026-17 to the police")
    report = verify_bundle(data)
    assert report.ok, report.lines()
    assert report.key_fingerprint == key_fingerprint(_public(server))  # the configured key signed it
    files = files_of(data)
    assert set(ENVELOPE) <= set(files)
    # Every image in its original bytes.
    image = next(v for k, v in files.items() if f"items/{item}/images/" in k)
    assert image == png("site1")
    # The events as stored: the payload text exactly as the database holds it.
    stored = json.loads(files[f"items/{item}/events.json"])
    assert stored and stored[0]["payload_hash"] and json.loads(stored[0]["payload"])["waybill"] == "WBSITE1A"
    decision = json.loads(files[f"items/{item}/decision.json"])
    assert decision["reasons"] == ["SENDER_WATCHLISTED"] and decision["decision"] == "HOLD"
    assert "models" in json.loads(files[f"items/{item}/classifications.json"])
    token = world.sender["site1"]
    masked = json.loads(files[f"senders/{token}.masked.json"])
    assert (
        "*" in masked["id_masked"]
        and world.ids["site1"] not in files[f"senders/{token}.masked.json"].decode()
    )
    full = json.loads(files[f"senders/{token}.full.json"])
    assert full["id_number"] == world.ids["site1"]
    audit = json.loads(files["audit.json"])
    reveal = [e for e in audit if e["action"] == "reveal" and e["target"] == f"sender:{token}"]
    assert reveal and "case 2026-17" in json.loads(reveal[-1]["detail"])["reason"]
    custody = json.loads(files["custody.json"])
    by_step = {s["step"]: s for s in custody}
    assert by_step["screened"]["where"]["site_id"] == "site1"
    assert by_step["divert"]["detail"]["chute"] == "H1" and by_step["divert"]["who"] == "sorter at st-a"
    assert by_step["open_box"]["who"] == "op-17" and "AF1" in by_step["open_box"]["detail"]["result"]
    assert len(stored) == 3  # the parcel, its divert and the open box, as stored
    meta = json.loads(files["bundle.json"])
    assert meta["items"] == [item] and meta["full_sender_records"] == [token]
    # The export itself is audited with the bundle's fingerprint.
    log = server.client.get("/api/v1/audit", headers=server.admin).json()
    export = next(e for e in log if e["action"] == "evidence_export")
    assert export["detail"]["fingerprint"] == report.fingerprint


def _public(server: Server) -> Any:
    from server.evidence.signing import load_signing_key

    return load_signing_key(server.settings.evidence.signing_key_file).public_key()


def test_without_a_reason_no_full_record_and_scope_holds(server: Server, world: World) -> None:
    c = server.client
    item = world.item["site1"]
    files = files_of(bundle_of(server, officer(server, "site1"), [item]))
    assert not [k for k in files if k.endswith(".full.json")]
    assert world.ids["site1"] not in b"".join(files.values()).decode(errors="replace")
    other = officer(server, "site2")
    assert c.post("/api/v1/evidence/bundles", json={"item_ids": [item]}, headers=other).status_code == 404
    sup = make_caller(server, "supervisor", ["*"])[0]
    assert c.post("/api/v1/evidence/bundles", json={"item_ids": [item]}, headers=sup).status_code == 403
    body = {"item_ids": [item], "reveal_reason": "a long enough reason"}
    assert c.post("/api/v1/evidence/bundles", json=body, headers=server.admin).status_code == 403
    short = {"item_ids": [item], "reveal_reason": "short"}
    assert c.post("/api/v1/evidence/bundles", json=short, headers=officer(server, "site1")).status_code == 422
    bad: dict[str, Any]
    for bad in ({"item_ids": []}, {"item_ids": [item, item]}, {"item_ids": [0]}, {"item_ids": ["x"]}):
        assert c.post("/api/v1/evidence/bundles", json=bad, headers=server.admin).status_code == 422, bad
    assert (
        c.post("/api/v1/evidence/bundles", json={"item_ids": [999999]}, headers=server.admin).status_code
        == 404
    )


def test_a_changed_byte_in_any_file_is_named(server: Server, world: World) -> None:
    data = bundle_of(server, server.admin, [world.item["site1"], world.shared_item["site1"]])
    files = files_of(data)
    listed = [n for n in files if n not in ENVELOPE]
    assert len(listed) >= 8
    for name in listed:
        changed = dict(files)
        body = bytearray(changed[name])
        body[len(body) // 2] ^= 0x01
        changed[name] = bytes(body)
        report = verify_bundle(rezip(changed))
        assert not report.ok and report.signature_ok, name
        assert report.changed == [name] and not report.added and not report.missing, (name, report.lines())


def test_bytes_edited_inside_the_zip_are_named(server: Server, world: World) -> None:
    data = bundle_of(server, server.admin, [world.item["site1"]])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = next(i for i in zf.infolist() if "/images/" in i.filename)
    raw = bytearray(data)
    # A stored image: its bytes sit right after the local header; flip one of them in place.
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 5
    raw[offset] ^= 0xFF
    report = verify_bundle(bytes(raw))
    assert report.changed == [info.filename]


def test_removed_added_and_bad_signature(server: Server, world: World, tmp_path: Path) -> None:
    files = files_of(bundle_of(server, server.admin, [world.item["site1"]]))
    image = next(n for n in files if "/images/" in n)

    removed = {k: v for k, v in files.items() if k != image}
    report = verify_bundle(rezip(removed))
    assert report.missing == [image] and report.signature_ok and not report.ok

    added = {**files, "items/extra.txt": b"planted"}
    report = verify_bundle(rezip(added))
    assert report.added == ["items/extra.txt"] and not report.ok

    # A manifest edited to match a changed file: the signature no longer holds.
    forged = dict(files)
    forged["custody.json"] = b"[]\n"
    lines = forged[MANIFEST].decode().splitlines(keepends=True)
    forged[MANIFEST] = "".join(
        f"{hashlib.sha256(b'[]' + bytes([10])).hexdigest()}  custody.json\n"
        if ln.endswith("  custody.json\n")
        else ln
        for ln in lines
    ).encode()
    report = verify_bundle(rezip(forged))
    assert not report.signature_ok and not report.changed
    assert any(line.startswith("bad signature") for line in report.lines())

    no_sig = {k: v for k, v in files.items() if k != SIGNATURE}
    assert not verify_bundle(rezip(no_sig)).ok

    # The archive's own key replaced by a forger's: only the key known beforehand tells.
    forger = Ed25519PrivateKey.generate()
    swapped = dict(files)
    swapped[SIGNATURE] = forger.sign(files[MANIFEST])
    swapped["public-key.pem"] = public_pem(forger.public_key())
    assert verify_bundle(rezip(swapped)).ok  # self-consistent...
    report = verify_bundle(rezip(swapped), _public(server))
    assert not report.ok and not report.signature_ok  # ...but not signed by this server

    with pytest.raises(ValueError, match="not a zip"):
        verify_bundle(b"not a zip at all")
    with pytest.raises(ValueError, match=r"no manifest\.sha256"):
        verify_bundle(rezip({"a.txt": b"x"}))
    traversal = {**files, "../evil.txt": b"x"}
    assert any("unsafe path" in line for line in verify_bundle(rezip(traversal)).lines())


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_a_reviewer_checks_it_with_openssl_and_sha256sum(
    server: Server, world: World, tmp_path: Path
) -> None:
    data = bundle_of(server, server.admin, [world.item["site1"]])
    out = tmp_path / "b"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(out)
    # The README's commands, as a reviewer with only the archive would type them.
    cmd = (
        "openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin"
        " -in manifest.sha256 -sigfile manifest.sig"
    )
    ok = subprocess.run(cmd.split(), cwd=out, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok.stdout + ok.stderr
    fingerprint = "openssl pkey -pubin -in public-key.pem -outform DER | tail -c 32 | sha256sum"
    printed = subprocess.run(["sh", "-c", fingerprint], cwd=out, capture_output=True, text=True, check=False)
    assert printed.stdout.split()[0] == key_fingerprint(_public(server))
    sums = subprocess.run(
        ["sha256sum", "-c", "--strict", MANIFEST], cwd=out, capture_output=True, check=False
    )
    assert sums.returncode == 0, sums.stdout
    manifest = out / MANIFEST
    manifest.write_bytes(manifest.read_bytes().replace(b"custody.json", b"custody.jsom"))
    bad = subprocess.run(cmd.split(), cwd=out, capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "Signature Verification Failure" in bad.stdout + bad.stderr


def _refer(server: Server, headers: dict[str, str], item: int, ref: str) -> None:
    c = server.client
    assert c.post(f"/api/v1/reviews/{item}/claim", headers=headers).status_code == 200
    fields = {"authority": "market_regulator", "case_reference": ref}
    r = c.post(
        f"/api/v1/reviews/{item}/decision", json={"action": "refer", "fields": fields}, headers=headers
    )
    assert r.status_code == 200, r.text


def test_referral_package_letter_and_reply(server: Server, world: World) -> None:
    c = server.client
    headers = officer(server, "site1")
    items = [world.item["site1"], world.shared_item["site1"]]
    basis = "《中华人民共和国商标法》第六十条、第六十一条"
    not_yet = c.post("/api/v1/referrals", json={"item_ids": items, "legal_basis": basis}, headers=headers)
    assert not_yet.status_code == 422 and not_yet.json()["error"]["code"] == "not_referred"
    for item in items:
        _refer(server, headers, item, "沪邮安〔2026〕17号")
    short = c.post("/api/v1/referrals", json={"item_ids": items, "legal_basis": "商标法"}, headers=headers)
    assert short.status_code == 422
    r = c.post("/api/v1/referrals", json={"item_ids": items, "legal_basis": basis}, headers=headers)
    assert r.status_code == 201, r.text
    ref = r.json()
    assert ref["authority"] == "market_regulator" and ref["case_reference"] == "沪邮安〔2026〕17号"
    pkg = c.get(ref["package_url"], headers=headers)
    assert pkg.status_code == 200 and hashlib.sha256(pkg.content).hexdigest() == ref["package_sha256"]
    inner = files_of(pkg.content)
    pdf = inner[f"referral-{ref['id']}.pdf"]
    bundle = inner[f"evidence-referral-{ref['id']}.zip"]
    report = verify_bundle(bundle, _public(server))
    assert report.ok and report.fingerprint == ref["fingerprint"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    compact = text.replace(" ", "").replace("\n", "")
    for expected in ("线索移送函", "市场监管部门", "商标法", "WBSITE1A", "某市邮政管理局", "监管链"):
        assert expected in compact, expected
    assert ref["fingerprint"] in compact
    # Another site's officer sees neither the referral nor its package.
    other = officer(server, "site2")
    assert c.get(f"/api/v1/referrals/{ref['id']}", headers=other).status_code == 404
    assert c.get(ref["package_url"], headers=other).status_code == 404

    url = f"/api/v1/referrals/{ref['id']}/reply"
    assert c.post(url, json={}, headers=headers).status_code == 422
    assert c.post(url, json={"receipt_ref": "R-1"}, headers=headers).status_code == 422  # no date
    future = {"receipt_ref": "R-1", "received_at": "2999-01-01"}
    assert c.post(url, json=future, headers=headers).status_code == 422
    before = {"receipt_ref": "R-1", "received_at": "2020-01-01"}
    assert c.post(url, json=before, headers=headers).status_code == 422
    garbage = {"receipt_ref": "R-1", "received_at": "next tuesday"}
    assert c.post(url, json=garbage, headers=headers).status_code == 422
    today = ref["created_at"][:10]
    got = c.post(url, json={"receipt_ref": "沪市监收〔2026〕88号", "received_at": today}, headers=headers)
    assert got.status_code == 200 and got.json()["receipt_ref"] == "沪市监收〔2026〕88号"
    assert got.json()["authority_case_number"] is None
    number = c.post(url, json={"authority_case_number": "沪市监案〔2026〕301号"}, headers=headers)
    assert number.status_code == 200 and number.json()["authority_case_number"] == "沪市监案〔2026〕301号"
    again = c.post(url, json={"authority_case_number": "沪市监案〔2026〕301号"}, headers=headers)
    assert again.status_code == 200  # the same value again changes nothing
    overwrite = c.post(url, json={"authority_case_number": "another"}, headers=headers)
    assert overwrite.status_code == 409 and "301" in overwrite.json()["error"]["message"]
    log = c.get("/api/v1/audit", headers=server.admin).json()
    actions = [e["action"] for e in log if e["target"] == f"referral:{ref['id']}"]
    assert actions.count("referral_reply") == 2 and "referral_create" in actions


def test_export_refused_without_a_key(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url)
    admin.create_user(settings, "root", "a long password 123", "admin", ["*"])
    token = admin.create_api_token(settings, "root")
    with TestClient(create_app(settings)) as c:
        r = c.post(
            "/api/v1/evidence/bundles", json={"item_ids": [1]}, headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_signing_key"
    assert "signing_key_file" in r.json()["error"]["message"] and "keygen" in r.json()["error"]["message"]


def test_cli_keygen_export_verify(
    server: Server,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = server.settings
    for name, value in (
        ("PARCELGUARD_SECRET_KEY", s.secret_key),
        ("PARCELGUARD_HMAC_KEY", s.hmac_key),
        ("PARCELGUARD_ENCRYPTION_KEY", s.encryption_key),
    ):
        monkeypatch.setenv(name, value.get_secret_value())
    new_key = tmp_path / "cli" / "evidence.pem"
    cfg = tmp_path / "server.toml"
    cfg.write_text(
        f"[server]\ndatabase_url = '{s.database_url}'\n[server.evidence]\nsigning_key_file = '{new_key}'\n"
    )
    assert main(["case", "export", f"item:{world.item['site1']}", "--config", str(cfg)]) == 2
    assert "keygen" in capsys.readouterr().err
    assert main(["case", "keygen", "--config", str(cfg)]) == 0
    assert new_key.stat().st_mode & 0o077 == 0
    assert main(["case", "keygen", "--config", str(cfg)]) == 2  # never replaces the key
    assert "already there" in capsys.readouterr().err
    assert main(["case", "public-key", "--config", str(cfg)]) == 0
    pub = tmp_path / "pub.pem"
    pub.write_text(capsys.readouterr().out)
    out = tmp_path / "bundle.zip"
    items = f"items:{world.item['site1']},{world.shared_item['site1']}"
    assert main(["case", "export", items, "--out", str(out), "--config", str(cfg)]) == 0
    assert "fingerprint" in capsys.readouterr().out
    assert main(["case", "export", items, "--out", str(out), "--config", str(cfg)]) == 3  # never overwrites
    assert main(["case", "export", "case:12", "--config", str(cfg)]) == 2
    case_id = referred_case(server, world, officer(server, "site1"))
    by_case = tmp_path / "case.zip"
    assert main(["case", "export", str(case_id), "--out", str(by_case), "--config", str(cfg)]) == 0
    assert json.loads(files_of(by_case.read_bytes())["case.json"])["id"] == case_id
    assert main(["case", "export", "4242", "--out", str(tmp_path / "y.zip"), "--config", str(cfg)]) == 2
    assert (
        main(["case", "export", "item:999999", "--out", str(tmp_path / "x.zip"), "--config", str(cfg)]) == 2
    )
    capsys.readouterr()
    assert main(["case", "verify", str(out), "--public-key", str(pub)]) == 0
    assert "bundle intact" in capsys.readouterr().out
    files = files_of(out.read_bytes())
    files["custody.json"] += b" "
    del files["audit.json"]
    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(rezip(files))
    assert main(["case", "verify", str(tampered)]) == 1
    got = capsys.readouterr()
    assert "changed: custody.json" in got.err and "missing: audit.json" in got.err and "NOT intact" in got.out
    other = tmp_path / "other.pem"
    other.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
    assert main(["case", "verify", str(out), "--public-key", str(other)]) == 1
    assert "bad signature" in capsys.readouterr().err
    assert main(["case", "verify", str(tmp_path / "nope.zip")]) == 3
    assert main(["case", "verify", str(out), "--public-key", str(new_key)]) == 2  # the private key
    assert "not a PEM public key" in capsys.readouterr().err
    bare = tmp_path / "bare.toml"
    bare.write_text(f"[server]\ndatabase_url = '{s.database_url}'\n")
    assert main(["case", "keygen", "--config", str(bare)]) == 2
    assert "signing_key_file" in capsys.readouterr().err


def referred_case(server: Server, world: World, officer: dict[str, str], refer: bool = True) -> int:
    """Site1's two parcels through the cases API: detained, notified, sample, counterfeit, referred,
    disposed of with a photo (`refer` False: left detained)."""
    c = server.client
    cid = int(open_detained_case(server, world, officer)["id"])
    if not refer:
        return cid
    assert c.post(f"/api/v1/cases/{cid}/notify", headers=officer).status_code == 200
    assert c.post(f"/api/v1/cases/{cid}/delivered", json={}, headers=officer).status_code == 200
    sample = {
        "review_id": world.item["site1"],
        "description": "one left shoe",
        "quantity": 1,
        "released_to": "Li Lei (Nike)",
        "receipt_reference": "R-1",
    }
    assert c.post(f"/api/v1/cases/{cid}/samples", json=sample, headers=officer).status_code == 200
    reply = {"reply": "counterfeit", "note": "letter 12"}
    assert c.post(f"/api/v1/cases/{cid}/reply", json=reply, headers=officer).status_code == 200
    refer_fields = {"authority": "police", "case_reference": "沪邮安〔2026〕21号"}
    step = {"action": "refer", "fields": refer_fields}
    assert c.post(f"/api/v1/cases/{cid}/steps", json=step, headers=officer).json()["state"] == "referred"
    photo = c.post(
        f"/api/v1/cases/{cid}/photos",
        content=png("destroyed"),
        headers={**officer, "Content-Type": "image/png"},
    )
    assert photo.status_code == 201, photo.text
    for item in (world.item["site1"], world.shared_item["site1"]):
        disposal = {
            "review_id": item,
            "method": "destruction",
            "place": "Incinerator 3",
            "done_on": YESTERDAY,
            "witnesses": ["Wang", "Li"],
            "photos": [photo.json()["sha256"]],
            "certificate_ref": "D-7",
        }
        r = c.post(f"/api/v1/cases/{cid}/disposals", json=disposal, headers=officer)
        assert r.status_code == 200, r.text
    return cid


def test_case_bundle_carries_the_case_records(server: Server, world: World, tmp_path: Path) -> None:
    c = server.client
    headers = officer(server, "site1")
    case_id = referred_case(server, world, headers)
    data = c.post("/api/v1/evidence/bundles", json={"case_id": case_id}, headers=headers)
    assert data.status_code == 200, data.text
    assert verify_bundle(data.content, _public(server)).ok
    files = files_of(data.content)
    case = json.loads(files["case.json"])
    assert case["id"] == case_id and case["disposals"][0]["witnesses"] == ["Wang", "Li"]
    assert case["rights_holder"]["brand"] == "Nike"
    assert files[f"case/images/photo-{hashlib.sha256(png('destroyed')).hexdigest()}.png"] == png("destroyed")
    custody = json.loads(files["custody.json"])
    steps = [s["step"] for s in custody]
    for step in (
        "screened",
        "case_detain",
        "rights_holder_notified",
        "sample_released",
        "rights_holder_replied",
        "case_refer",
        "disposed",
    ):
        assert step in steps, step
    assert steps.index("screened") < steps.index("case_detain") < steps.index("disposed")
    detain = next(s for s in custody if s["step"] == "case_detain")
    assert detain["where"]["storage_location"] == "cage 3" and detain["who"] == world.user["site1"]
    audit = json.loads(files["audit.json"])
    assert {"case_open", "case_detain", "case_disposal"} <= {e["action"] for e in audit}
    assert json.loads(files["bundle.json"])["case_id"] == str(case_id)
    both = {"case_id": case_id, "item_ids": [world.item["site1"]]}
    assert c.post("/api/v1/evidence/bundles", json=both, headers=server.admin).status_code == 422
    # A case of another site is not there for this officer; an unknown one for nobody.
    other = c.post("/api/v1/evidence/bundles", json={"case_id": case_id}, headers=officer(server, "site2"))
    assert other.status_code == 404
    assert (
        c.post("/api/v1/evidence/bundles", json={"case_id": 99999}, headers=server.admin).status_code == 404
    )


def test_case_referral(server: Server, world: World) -> None:
    c = server.client
    headers = officer(server, "site1")
    basis = "《中华人民共和国刑法》第二百一十三条、第二百一十四条"
    detained = referred_case(server, world, headers, refer=False)
    r = c.post("/api/v1/referrals", json={"case_id": detained, "legal_basis": basis}, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_referred"


def test_referred_case_referral(server: Server, world: World) -> None:
    c = server.client
    headers = officer(server, "site1")
    basis = "《中华人民共和国刑法》第二百一十三条、第二百一十四条"
    case_id = referred_case(server, world, headers)
    r = c.post(
        "/api/v1/referrals", json={"case_id": case_id, "legal_basis": basis}, headers=officer(server, "site2")
    )
    assert r.status_code == 404  # site1's case
    r = c.post("/api/v1/referrals", json={"case_id": case_id, "legal_basis": basis}, headers=headers)
    assert r.status_code == 201, r.text
    ref = r.json()
    assert ref["authority"] == "police" and ref["case_id"] == str(case_id)
    assert ref["case_reference"] == "沪邮安〔2026〕21号"
    pkg = files_of(c.get(ref["package_url"], headers=headers).content)
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pkg[f"referral-{ref['id']}.pdf"])).pages)
    assert "公安机关" in text and f"所属案件：{case_id}（蚂蚁搬家" in text.replace(" ", "")
    trail = c.get(f"/api/v1/cases/{case_id}", headers=headers).json()["trail"]
    assert [e["detail"]["referral"] for e in trail if e["action"] == "referral_create"] == [ref["id"]]


def test_a_bundle_over_the_size_limit_is_refused_before_it_is_built(server: Server, world: World) -> None:
    import cv2
    import numpy as np

    noise = np.random.default_rng(7).integers(0, 256, (1100, 1100), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", noise)
    assert ok and encoded.nbytes > 1 << 20
    big = encoded.tobytes()
    sha = hashlib.sha256(big).hexdigest()
    event = {
        "type": "parcel",
        "key": "st-a:w1:40",
        "station_id": "st-a",
        "boot_id": "w1",
        "seq": 40,
        "at": "2026-12-01T11:00:00+00:00",
        "tracking_id": "t40",
        "waybill": "WBBIG40",
        "decision": "HOLD",
        "reasons": ["SENDER_WATCHLISTED"],
        "risk": 0.8,
        "classifier": "off",
        "images": [{"sha256": sha, "kind": "xray", "content_type": "image/png", "size": len(big)}],
    }
    sync = {"station_id": "st-a", "boot_id": "w1", "registry_cursor": 0, "events": [event]}
    c = server.client
    assert c.post("/api/v1/sync", json=sync, headers=server.station_a).is_success
    put = c.put(
        f"/api/v1/images/{sha}", content=big, headers={**server.station_a, "Content-Type": "image/png"}
    )
    assert put.status_code == 201, put.text
    item = next(
        i["id"] for i in c.get("/api/v1/reviews", headers=server.admin).json() if i["waybill"] == "WBBIG40"
    )
    small = server.settings.evidence.model_copy(update={"max_bundle_mb": 1})
    with TestClient(create_app(server.settings.model_copy(update={"evidence": small}))) as limited:
        r = limited.post("/api/v1/evidence/bundles", json={"item_ids": [item]}, headers=server.admin)
        assert r.status_code == 413 and r.json()["error"]["code"] == "bundle_too_large"
        assert "max_bundle_mb" in r.json()["error"]["message"]
        log = limited.get("/api/v1/audit", headers=server.admin).json()
    assert not [e for e in log if e["action"] == "evidence_export"]  # refused: nothing recorded
    assert verify_bundle(bundle_of(server, server.admin, [item])).ok  # the usual limit takes it


def test_signing_key_refusals(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from server.evidence.signing import SigningKeyError, load_public_key, load_signing_key

    with pytest.raises(SigningKeyError, match="not set"):
        load_signing_key(None)
    with pytest.raises(SigningKeyError, match="no signing key there"):
        load_signing_key(tmp_path / "absent.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningKeyError, match="not an unencrypted PEM private key"):
        load_signing_key(garbage)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = tmp_path / "rsa.pem"
    other.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_signing_key(other)
    with pytest.raises(SigningKeyError, match="not a PEM public key"):
        load_public_key(other.read_bytes(), "rsa.pem")  # a private key given where the public one goes
    rsa_pub = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SigningKeyError, match="not an Ed25519 public key"):
        load_public_key(rsa_pub, "rsa-pub.pem")


def test_no_chinese_font_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine without the font package: the letter names what to install (fonts are the system edge)."""
    from server.evidence import fonts

    latin = tmp_path / "latin.ttf"
    latin.write_bytes(b"not really a font")
    fonts.chinese_font.cache_clear()
    monkeypatch.setattr(fonts, "KNOWN_PATHS", (str(latin),))
    monkeypatch.setattr(fonts, "_fontconfig_candidates", lambda: [])
    try:
        with pytest.raises(fonts.FontMissing, match="fonts-wqy-zenhei") as err:
            fonts.chinese_font()
        assert str(latin) in str(err.value)
    finally:
        fonts.chinese_font.cache_clear()
