"""Retention by data class on both engines: floors, dry runs, held items, the audit chain after pruning."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, update

from server.audit import verify_audit
from server.audit_checkpoint import verify_with_checkpoints
from server.db import Database, iso
from server.errors import RetentionBusy, ServerSettingsError
from server.partitions import event_partitions, partition_name
from server.retention_run import apply_retention, plan_retention
from server.retention_worker import RetentionWorker
from server.schema import (
    audit_base,
    audit_log,
    events,
    image_sites,
    images,
    legal_holds,
    manifests,
    retention_runs,
    reviews,
    senders,
)
from server.settings import SECRET_ENV, RetentionConfig, ServerSettings, generate_key, load_server_settings
from tests.server.conftest import png, site_day

NOW = datetime.now(UTC).replace(microsecond=0)
# Events are filed under the site's own day (Asia/Shanghai by default), and so are their partitions.
LOCAL_TODAY = date.fromisoformat(site_day(NOW))
# Retention looks from 400 days ahead: what the server stored today is past every period then.
LATER = NOW + timedelta(days=400)
YOUNG = (LATER - timedelta(days=1)).isoformat()
FLOORS = RetentionConfig(
    cleared_events_days=30,
    hit_events_days=30,
    hit_images_days=30,
    real_name_days=365,
    station_events_days=180,
    audit_log_days=180,
    chunk_rows=100,
)
PASSPORTS = {"held": "E10000001", "decided": "E10000002", "open": "E10000003", "fresh": "E10000004"}
PASSPORTS["idle"] = "E10000005"


def later() -> datetime:
    return LATER


def _settings(server: Any, **changes: Any) -> ServerSettings:
    policy = FLOORS.model_copy(update=changes.pop("retention", {}))
    return server.settings.model_copy(update={"retention": policy, **changes})  # type: ignore[no-any-return]


def _parcel(
    seq: int, decision: str, waybill: str, sender: str | None, image: bytes | None, at: str
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "parcel",
        "key": f"st-a:r1:{seq}",
        "station_id": "st-a",
        "boot_id": "r1",
        "seq": seq,
        "at": at,
        "tracking_id": f"t{seq}",
        "waybill": waybill,
        "decision": decision,
        "reasons": [] if decision == "CLEAR" else ["SENDER_WATCHLISTED"],
        "risk": 0.1 if decision == "CLEAR" else 0.8,
        "classifier": "off",
        "sender_token": sender,
    }
    if image is not None:
        sha = hashlib.sha256(image).hexdigest()
        ev["images"] = [{"sha256": sha, "kind": "xray", "content_type": "image/png", "size": len(image)}]
    return ev


@dataclass
class Stored:
    """What the test built: review ids, image hashes and sender tokens by role."""

    item: dict[str, int]
    image: dict[str, str]
    sender: dict[str, str]
    officer: dict[str, str]


def build(server: Any) -> Stored:
    """Through the real API: senders, manifests, parcels of each class, images, one decided item."""
    c, root = server.client, server.admin
    csv = "id_type,id_number,name\n" + "".join(f"passport,{n},N {k}\n" for k, n in PASSPORTS.items())
    r = c.post("/api/v1/senders/import", content=csv.encode(), headers={**root, "Content-Type": "text/csv"})
    assert r.json()["imported"] == 5, r.text
    waybills = {"held": "WBHELD1", "decided": "WBDEC1", "open": "WBOPEN1", "fresh": "WBFRESH1"}
    rows = [
        {"waybill": w, "sender_id_type": "passport", "sender_id_number": PASSPORTS[k]}
        for k, w in waybills.items()
    ]
    assert c.post("/api/v1/manifests/import", json=rows, headers=root).json()["imported"] == 4
    privacy = c.app.state.services.privacy
    token = {k: privacy.sender_token("passport", n) for k, n in PASSPORTS.items()}
    pics = {k: png(f"retention-{k}") for k in ("held", "decided")}
    now = NOW.isoformat()
    evs = [
        _parcel(1, "CLEAR", "WBC1", None, None, now),
        _parcel(2, "CLEAR", "WBC2", None, None, YOUNG),
        _parcel(3, "HOLD", waybills["held"], token["held"], pics["held"], now),
        _parcel(4, "HOLD", waybills["decided"], token["decided"], pics["decided"], now),
        _parcel(5, "PULL", waybills["open"], token["open"], None, now),
        {"type": "device_status", "key": "st-a:r1:6", "station_id": "st-a", "boot_id": "r1", "seq": 6,
         "at": now, "device": "xray", "up": True},
        {"type": "divert_outcome", "key": "st-a:r1:7", "station_id": "st-a", "boot_id": "r1", "seq": 7,
         "at": now, "tracking_id": "t3", "waybill": waybills["held"], "decision": "HOLD",
         "outcome": "DIVERTED"},
    ]  # fmt: skip
    batch = {"station_id": "st-a", "boot_id": "r1", "registry_cursor": 0, "events": evs}
    assert c.post("/api/v1/sync", json=batch, headers=server.station_a).is_success
    shas = {}
    for k, pic in pics.items():
        shas[k] = hashlib.sha256(pic).hexdigest()
        h = {**server.station_a, "Content-Type": "image/png"}
        assert c.put(f"/api/v1/images/{shas[k]}", content=pic, headers=h).status_code == 201
    items = {i["waybill"]: i["id"] for i in c.get("/api/v1/reviews", headers=root).json()}
    item = {k: items[w] for k, w in waybills.items() if w in items}
    officer = server.user("off-1", "officer", ["site1"])
    assert c.post(f"/api/v1/reviews/{item['decided']}/claim", headers=officer).is_success
    decided = {"action": "release", "fields": {"note": "nothing wrong"}}
    assert c.post(f"/api/v1/reviews/{item['decided']}/decision", json=decided, headers=officer).is_success
    # A manifest touched yesterday (as seen from LATER) keeps its sender: a recent parcel of theirs.
    db = Database(server.settings.database_url)
    with db.write() as conn:
        conn.execute(update(manifests).where(manifests.c.waybill == "WBFRESH1").values(updated_at=YOUNG))
    db.dispose()
    return Stored(item, shas, token, officer)


def snapshot(db: Database) -> dict[str, Any]:
    with db.read() as conn:
        return {
            "events": sorted(r[0] for r in conn.execute(select(events.c.key))),
            "reviews": sorted(r[0] for r in conn.execute(select(reviews.c.id))),
            "images": sorted(r[0] for r in conn.execute(select(images.c.sha256))),
            "image_sites": sorted(r[0] for r in conn.execute(select(image_sites.c.sha256))),
            "senders": sorted(r[0] for r in conn.execute(select(senders.c.sender_token))),
            "manifests": sorted(r[0] for r in conn.execute(select(manifests.c.waybill))),
            "audit": int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one()),
            "runs": int(conn.execute(select(func.count()).select_from(retention_runs)).scalar_one()),
        }


def test_floors_are_enforced_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="below the legal floor of 365 days"):
        RetentionConfig(real_name_days=30)
    with pytest.raises(ValidationError, match="Cybersecurity Law"):
        RetentionConfig(audit_log_days=90)
    for name in ("PARCELGUARD_SECRET_KEY", "PARCELGUARD_HMAC_KEY", "PARCELGUARD_ENCRYPTION_KEY"):
        monkeypatch.setenv(name, "k" + hashlib.sha256(name.encode()).hexdigest())
    path = tmp_path / "server.toml"
    path.write_text("[server.retention]\ncleared_events_days = 7\n")
    with pytest.raises(
        ServerSettingsError, match=r"retention\.cleared_events_days: 7 days is below .* 30 days"
    ):
        load_server_settings(path)
    path.write_text("[server.retention]\nimages_days = 400\n")
    with pytest.raises(ServerSettingsError, match=r"retention\.images_days: unknown key"):
        load_server_settings(path)
    path.write_text("[server.retention]\ninterval_hours = -1\n")
    with pytest.raises(ServerSettingsError, match=r"retention\.interval_hours"):
        load_server_settings(path)
    path.write_text("[server.retention]\nreal_name_days = 400\ninterval_hours = 0\n")
    loaded = load_server_settings(path).retention
    assert loaded.real_name_days == 400 and loaded.interval_hours == 0


def test_dry_run_changes_nothing_then_run_deletes_per_class(server: Any) -> None:
    stored = build(server)
    settings = _settings(server)
    db = Database(settings.database_url)
    before = snapshot(db)
    plan = plan_retention(db, settings, LATER)
    assert snapshot(db) == before
    would = {name: c["deleted"] for name, c in plan.classes.items()}
    report = apply_retention(db, settings, "test", clock=later)
    done = {name: c["deleted"] for name, c in report.classes.items()}
    assert done == would
    after = snapshot(db)
    # Cleared: the old one goes, the young one stays. Hits: only the decided one goes, with its item;
    # the two undecided ones stay. Device and divert events are past their 180 days.
    assert after["events"] == ["st-a:r1:2", "st-a:r1:3", "st-a:r1:5"]
    assert after["reviews"] == sorted([stored.item["held"], stored.item["open"]])
    assert done["cleared_events"] == 1 and done["hit_events"] == 1 and done["station_events"] == 2
    assert report.classes["hit_events"]["kept"] == 2 and report.classes["cleared_events"]["kept"] == 0
    # Images of hits: both past the period and neither held nor in the gallery.
    assert after["images"] == [] and after["image_sites"] == [] and done["hit_images"] == 2
    # Real-name: the decided and idle senders go; undecided items' and the fresh manifest's stay.
    assert set(after["senders"]) == {stored.sender[k] for k in ("held", "open", "fresh")}
    assert set(after["manifests"]) == {"WBHELD1", "WBOPEN1", "WBFRESH1"}
    assert report.classes["real_name"]["parts"] == {"manifests": 1, "senders": 2}
    if db.is_postgres:
        # Whole days went as partitions; the hits' day stays (undecided items), its decided hit as a row.
        with db.read() as conn:
            left = {p.name for p in event_partitions(conn)}
        assert partition_name("cleared", LOCAL_TODAY) not in left
        assert partition_name("hit", LOCAL_TODAY) in left
        assert report.classes["cleared_events"]["parts"] == {"partitions": 1}
        assert report.classes["hit_events"]["parts"] == {"partitions": 0, "events": 1}  # tomorrow: empty
    # One audit entry per class, with its counts; the chain (pruned at its start) still verifies.
    with db.read() as conn:
        entries = conn.execute(
            select(audit_log.c.target, audit_log.c.detail).where(audit_log.c.action == "retention_delete")
        ).fetchall()
        assert verify_audit(conn, settings.secret_key.get_secret_value()).ok
    logged = {t.removeprefix("retention:"): json.loads(d)["deleted"] for t, d in entries}
    assert logged == done
    again = apply_retention(db, settings, "test", clock=later)
    # Nothing more of the data classes; the audit log loses the first run's entries (all but the head).
    assert {n for n, c in again.classes.items() if c["deleted"]} == {"audit_log"}
    db.dispose()


def test_a_held_item_keeps_what_it_depends_on(server: Any) -> None:
    stored = build(server)
    c, officer = server.client, stored.officer
    hold = {"target_type": "review", "target_id": str(stored.item["decided"]), "reason": "case 2026-17"}
    placed = c.post("/api/v1/holds", json=hold, headers=officer)
    assert placed.status_code == 201, placed.text
    hold_id = placed.json()["id"]
    assert c.post("/api/v1/holds", json=hold, headers=officer).status_code == 409
    other = server.user("off-2", "officer", ["site2"])
    assert c.post("/api/v1/holds", json=hold, headers=other).status_code == 404
    assert c.get("/api/v1/holds", headers=other).json() == []
    case = {"target_type": "case", "target_id": "c-1", "reason": "r"}
    assert c.post("/api/v1/holds", json=case, headers=officer).json()["error"]["code"] == "no_cases"
    for bad_id in ("x1", "²", "9" * 30, "-1"):
        bad = {"target_type": "review", "target_id": bad_id, "reason": "r"}
        assert c.post("/api/v1/holds", json=bad, headers=officer).status_code == 422, bad_id
    missing = {"target_type": "review", "target_id": "999999", "reason": "r"}
    assert c.post("/api/v1/holds", json=missing, headers=officer).status_code == 404
    assert c.post("/api/v1/holds", json={**hold, "target_type": "parcel"}, headers=officer).status_code == 422
    supervisor = server.user("sup-1", "supervisor", ["site1"])
    assert c.post("/api/v1/holds", json=hold, headers=supervisor).status_code == 403
    assert [h["id"] for h in c.get("/api/v1/holds", headers=supervisor).json()] == [hold_id]
    settings = _settings(server)
    db = Database(settings.database_url)
    report = apply_retention(db, settings, "test", clock=later)
    after = snapshot(db)
    assert "st-a:r1:4" in after["events"] and stored.item["decided"] in after["reviews"]
    assert after["images"] == [stored.image["decided"]] and after["image_sites"] == [stored.image["decided"]]
    assert stored.sender["decided"] in after["senders"] and "WBDEC1" in after["manifests"]
    assert report.classes["hit_events"]["deleted"] == 0 and report.classes["hit_images"]["deleted"] == 1
    # The audit log is pruned only up to the first entry about the held item.
    with db.read() as conn:
        first = conn.execute(select(func.min(audit_log.c.n))).scalar_one()
        about = conn.execute(
            select(func.min(audit_log.c.n)).where(audit_log.c.target == f"review:{stored.item['decided']}")
        ).scalar_one()
    assert first == about > 1
    release = c.post(f"/api/v1/holds/{hold_id}/release", json={"reason": "case closed"}, headers=officer)
    assert release.status_code == 200 and release.json()["active"] is False
    again = c.post(f"/api/v1/holds/{hold_id}/release", json={"reason": "x"}, headers=officer)
    assert again.status_code == 409
    assert c.post(f"/api/v1/holds/{hold_id}/release", json={"reason": ""}, headers=officer).status_code == 422
    apply_retention(db, settings, "test", clock=later)
    after = snapshot(db)
    assert "st-a:r1:4" not in after["events"] and after["images"] == []
    with db.read() as conn:
        actions = [r[0] for r in conn.execute(select(audit_log.c.action).order_by(audit_log.c.n))]
        holds = conn.execute(select(legal_holds.c.released_by, legal_holds.c.release_reason)).fetchall()
    assert "hold_release" in actions and [tuple(h) for h in holds] == [("off-1", "case closed")]
    db.dispose()


def test_pruned_chain_verifies_against_checkpoints_and_a_forged_start_shows(
    server: Any, tmp_path: Path
) -> None:
    build(server)
    folder = tmp_path / "checkpoints"
    settings = _settings(server, audit=server.settings.audit.model_copy(update={"checkpoint_dir": folder}))
    secret = settings.secret_key.get_secret_value()
    db = Database(settings.database_url)
    assert verify_with_checkpoints(db, secret, folder).ok
    report = apply_retention(db, settings, "test", clock=later)
    assert report.classes["audit_log"]["deleted"] > 0 and not report.problems
    assert list(folder.glob("audit-checkpoint-*.json"))  # the head before pruning, outside the database
    check = verify_with_checkpoints(db, secret, folder)
    assert check.ok, check.problems
    with db.write() as conn:
        base = conn.execute(select(audit_base)).one()
        conn.execute(update(audit_base).values(first_n=base.first_n + 1))
        conn.execute(audit_log.delete().where(audit_log.c.n == base.first_n))
    broken = verify_with_checkpoints(db, secret, folder)
    assert not broken.ok and any("not signed by this server" in p for p in broken.problems)
    # A chain that does not verify is never pruned further: the run says so and keeps it.
    refused = apply_retention(
        db, settings, "test", classes=["audit_log"], clock=lambda: LATER + timedelta(days=1)
    )
    assert refused.problems and "does not verify" in refused.problems[0]
    db.dispose()


def test_unknown_class_busy_run_and_the_schedule(server: Any) -> None:
    settings = _settings(server)
    db = Database(settings.database_url)
    with pytest.raises(ValueError, match="unknown retention class images"):
        plan_retention(db, settings, LATER, ["images"])
    before = snapshot(db)
    with db.write() as conn:
        conn.execute(
            retention_runs.insert().values(
                actor="elsewhere", state="running", started_at=iso(LATER),
                lease_until=iso(LATER + timedelta(minutes=5)),
                cutoffs="{}", counts=json.dumps({"cleared_events": {"deleted": 7}}),
            )
        )  # fmt: skip
    with pytest.raises(RetentionBusy, match="in progress"):
        apply_retention(db, settings, "test", clock=later)
    assert snapshot(db)["audit"] == before["audit"]
    # Past its lease the run counts as interrupted: the next run audits its deletions and goes on.
    clock: Callable[[], datetime] = lambda: LATER + timedelta(minutes=30)  # noqa: E731
    worker = RetentionWorker(db, settings, clock=clock)
    report = worker.run_if_due()
    assert report is not None and len(report.finished_interrupted) == 1
    with db.read() as conn:
        details = [
            json.loads(d)
            for (d,) in conn.execute(select(audit_log.c.detail).where(audit_log.c.actor == "retention-job"))
        ]
    assert {"run": report.finished_interrupted[0], "deleted": 7, "interrupted": True} in details
    assert worker.run_if_due() is None  # done within the interval
    worker.clock = lambda: LATER + timedelta(hours=25)
    assert worker.run_if_due() is not None
    db.dispose()


def _old_events(db: Database, n: int) -> None:
    day = NOW.date().isoformat()
    rows = [
        {"key": f"st-k:b:{i}", "station_id": "st-k", "boot_id": "b", "seq": i, "type": "parcel",
         "at": NOW.isoformat(), "day": day, "decision": "CLEAR", "payload_hash": "0" * 64, "payload": "{}",
         "received_at": NOW.isoformat(), "site_id": "site1", "retention_class": "cleared"}
        for i in range(n)
    ]  # fmt: skip
    with db.write() as conn:
        conn.execute(events.insert(), rows)


def test_a_run_killed_midway_is_safe_to_rerun(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for env in SECRET_ENV.values():
        monkeypatch.setenv(env, generate_key())
    settings = ServerSettings(database_url=db_url, retention=FLOORS.model_copy(update={"chunk_rows": 100}))
    db = Database(db_url)
    total = 20_000
    _old_events(db, total)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.server.retention_child", db_url, "400"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    deleted = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and child.poll() is None:
            with db.read() as conn:
                counts = conn.execute(select(retention_runs.c.counts)).scalar()
            deleted = json.loads(counts)["cleared_events"]["deleted"] if counts else 0
            if deleted:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)  # polling another process's progress, not moving time
    finally:
        child.kill()
        child.wait()
    assert 0 < deleted < total, "the run was not caught midway"
    with db.read() as conn:
        left = conn.execute(select(func.count()).select_from(events)).scalar_one()
        run = conn.execute(select(retention_runs)).one()
    # Every committed chunk is counted in the ledger: what is gone is what it says.
    assert run.state == "running" and json.loads(run.counts)["cleared_events"]["deleted"] == total - left
    # (Only the events: the audit log, seen from LATER, would be past its period too.)
    rerun = apply_retention(
        db, settings, "test", ["cleared_events"], clock=lambda: LATER + timedelta(hours=1)
    )
    assert rerun.finished_interrupted == [run.id]
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0
        rows = conn.execute(
            select(audit_log.c.detail).where(audit_log.c.target == "retention:cleared_events")
        ).fetchall()
        assert verify_audit(conn, settings.secret_key.get_secret_value()).ok
    audited = [json.loads(d) for (d,) in rows]
    assert sum(d["deleted"] for d in audited) == total, audited
    assert sorted(bool(d.get("interrupted")) for d in audited) == [False, True]
    db.dispose()


def test_cli_dry_run_run_and_bad_input(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main

    for env in SECRET_ENV.values():
        monkeypatch.setenv(env, generate_key())
    cfg = tmp_path / "server.toml"
    cfg.write_text(f"[server]\ndatabase_url = '{db_url}'\n[server.retention]\nreal_name_days = 400\n")
    db = Database(db_url)
    _old_events(db, 5)
    capsys.readouterr()
    assert main(["server", "retention", "--dry-run", "--json", "--config", str(cfg)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["dry_run"] is True and plan["classes"]["real_name"]["days"] == 400
    assert plan["classes"]["cleared_events"]["older"] == 0  # today's events are within 90 days
    assert main(["server", "retention", "--config", str(cfg), "--class", "cleared_events"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("retention run 1 at ") and "cleared_events" in out and "audit_log" not in out
    assert main(["server", "retention", "--config", str(cfg), "--class", "images"]) == 2
    assert "unknown retention class images" in capsys.readouterr().err
    cfg.write_text(f"[server]\ndatabase_url = '{db_url}'\n[server.retention]\nhit_images_days = 10\n")
    assert main(["server", "retention", "--dry-run", "--config", str(cfg)]) == 2
    assert "retention.hit_images_days: 10 days is below the legal floor of 30 days" in capsys.readouterr().err
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 5
    db.dispose()


def test_bench_retention_deletes_what_the_bare_delete_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "retention", "--events", "2000", "--repeat", "1", "--json", "--out", str(out)]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Nine in ten are past their period; ten held hits stay.
    assert line["engine"] == "sqlite" and line["deleted"] == 2000 * 9 // 10 - 10 and line["kept"] == 210
    assert json.loads(out.read_text())["engines"]["sqlite"]["ratio_to_bare"] > 0
    assert main(["bench", "retention", "--events", "10"]) == 2


def test_a_held_follow_up_keeps_its_day_and_the_rest_of_that_day_goes(server: Any) -> None:
    stored = build(server)
    hold = {"target_type": "review", "target_id": str(stored.item["held"]), "reason": "case 2026-18"}
    assert server.client.post("/api/v1/holds", json=hold, headers=stored.officer).status_code == 201
    settings = _settings(server)
    db = Database(settings.database_url)
    report = apply_retention(db, settings, "test", clock=later)
    after = snapshot(db)
    # The held hit and its divert outcome (a 'cleared'-class event of the same day) stay; the day's
    # cleared parcel and device event go as rows.
    assert after["events"] == ["st-a:r1:2", "st-a:r1:3", "st-a:r1:5", "st-a:r1:7"]
    assert (
        report.classes["station_events"]["deleted"] == 1 and report.classes["cleared_events"]["deleted"] == 1
    )
    assert after["images"] == [stored.image["held"]]
    if db.is_postgres:
        with db.read() as conn:
            assert partition_name("cleared", LOCAL_TODAY) in {p.name for p in event_partitions(conn)}
    db.dispose()


def test_the_server_schedules_retention_unless_set_to_zero(server: Any) -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app

    job = server.client.app.state.retention
    assert job.interval == timedelta(hours=24) and job.running
    off = _settings(server, retention={"interval_hours": 0})
    app = create_app(off)
    with TestClient(app):
        assert not hasattr(app.state, "retention")
    assert job.running
