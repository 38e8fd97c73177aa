"""Station liveness on both engines: last contact from sync, offline after the configured silence,
each device's last state from device_status events, the stations page and the daily report."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from server.db import parse_iso, utcnow
from server.settings import StationsConfig
from server.stations import station_states
from tests.server.conftest import site_day

Factory = Callable[..., dict[str, Any]]
Caller = Callable[[str, list[str]], tuple[dict[str, str], dict[str, str]]]


def status(
    station: str, seq: int, device: str, up: bool, detail: str = "", boot: str = "b1"
) -> dict[str, Any]:
    return {
        "type": "device_status", "key": f"{station}:{boot}:{seq}", "station_id": station, "boot_id": boot,
        "seq": seq, "at": utcnow().isoformat(), "device": device, "up": up, "detail": detail,
    }  # fmt: skip


def states(server: Any, now_shift_s: float = 0.0, sites: tuple[str, ...] | None = None) -> dict[str, Any]:
    svc = server.client.app.state.services
    with svc.db.read() as conn:
        got = station_states(conn, utcnow() + timedelta(seconds=now_shift_s), 120.0, sites)
    return {s["station_id"]: s for s in got}


def test_stations_go_offline_after_the_silence_and_keep_their_last_device_states(
    server: Any, make_batch: Factory
) -> None:
    c = server.client
    before = states(server)
    assert before["st-a"]["online"] is False and before["st-a"]["last_seen_at"] is None
    assert before["st-a"]["seconds_since_seen"] is None and before["st-a"]["devices"] == []
    events = [
        status("st-a", 1, "sorter", False, "sorter unreachable: [Errno 111] Connection refused"),
        status("st-a", 2, "camera", True, "streaming"),
        status("st-a", 3, "sorter", True, "connected"),
        status("st-a", 4, "xray", False, "no such folder"),
    ]
    assert c.post("/api/v1/sync", json=make_batch("st-a", events), headers=server.station_a).is_success
    # An empty batch is the heartbeat: it moves last contact only.
    assert c.post("/api/v1/sync", json=make_batch("st-b", []), headers=server.station_b).is_success
    now = states(server)
    a = now["st-a"]
    assert a["online"] is True and a["seconds_since_seen"] == 0
    assert abs((utcnow() - parse_iso(a["last_seen_at"])).total_seconds()) < 3600
    assert [(d["device"], d["up"], d["detail"]) for d in a["devices"]] == [
        ("camera", True, "streaming"), ("sorter", True, "connected"), ("xray", False, "no such folder"),
    ]  # fmt: skip
    assert a["devices_down"] == ["xray"]
    assert now["st-b"]["online"] is True and now["st-b"]["devices"] == []
    assert now["st-c"]["online"] is False
    # A later batch (a new boot too) replaces the state; a replayed batch changes nothing.
    later = [status("st-a", 1, "xray", True, "watching", boot="b2")]
    assert c.post(
        "/api/v1/sync", json=make_batch("st-a", later, boot="b2"), headers=server.station_a
    ).is_success
    assert c.post("/api/v1/sync", json=make_batch("st-a", events), headers=server.station_a).is_success
    assert states(server)["st-a"]["devices_down"] == []
    # Exactly at the limit still online, past it offline.
    assert states(server, 119)["st-a"]["online"] is True
    silent = states(server, 121)
    assert silent["st-a"]["online"] is False and silent["st-a"]["seconds_since_seen"] >= 121
    assert set(states(server, sites=("site2",))) == {"st-c"}


def test_long_device_names_and_details_are_cut_not_refused(server: Any, make_batch: Factory) -> None:
    ev = status("st-a", 1, "d" * 300, False, "x" * 5000)
    assert server.client.post(
        "/api/v1/sync", json=make_batch("st-a", [ev]), headers=server.station_a
    ).is_success
    (dev,) = states(server)["st-a"]["devices"]
    assert (len(dev["device"]), len(dev["detail"])) == (64, 200)


def test_offline_after_is_configured_and_checked() -> None:
    assert StationsConfig().offline_after_s == 120.0
    assert StationsConfig.model_fields["offline_after_s"].description
    for bad in (0, -5, "soon"):
        with pytest.raises(ValidationError):
            StationsConfig(offline_after_s=bad)
    with pytest.raises(ValidationError):
        StationsConfig(offline_after=10)  # type: ignore[call-arg]


def test_stations_page_and_report_show_state_within_the_users_sites(
    server: Any,
    make_batch: Factory,
    caller: Callable[[str, list[str]], tuple[dict[str, str], dict[str, str]]],
) -> None:
    c = server.client
    ev = [
        status("st-a", 1, "sorter", False, "sorter unreachable: [Errno 111] Connection refused"),
        status("st-a", 2, "<script>x</script>", True, '" onmouseover="alert(1)'),
    ]
    assert c.post("/api/v1/sync", json=make_batch("st-a", ev), headers=server.station_a).is_success
    _bearer, cookie = caller("supervisor", ["site1"])
    page = c.get("/stations?lang=en", headers=cookie)
    assert page.status_code == 200
    assert 'data-station="st-a" data-online="true"' in page.text
    assert 'data-station="st-b" data-online="false"' in page.text
    assert "st-c" not in page.text  # another site's station
    assert "sorter: DOWN" in page.text and "Connection refused" in page.text  # raw detail as a tooltip
    assert c.get("/stations?site=site2", headers=cookie).status_code == 403
    # What a station names is text, never markup.
    assert "<script>x</script>" not in page.text and "&lt;script&gt;x&lt;/script&gt;" in page.text
    assert '" onmouseover=' not in page.text
    day = site_day(utcnow())
    report = c.get(f"/api/v1/reports/daily?date={day}", headers=server.admin).json()
    per = {s["station_id"]: s for s in report["stations"]}
    assert per["st-a"]["online"] is True and per["st-a"]["devices_down"] == ["sorter"]
    assert per["st-b"]["online"] is False and per["st-b"]["last_seen_at"] is None
    assert report["stations_offline"] == 2
    csv_text = c.get(f"/api/v1/reports/daily?date={day}&format=csv", headers=server.admin).text
    header, *rows = csv_text.splitlines()
    assert header.endswith("online,last_seen_at,devices_down,pulls_pending")
    assert any(r.startswith("st-a,") and r.endswith(",sorter,0") for r in rows)
    html = c.get(f"/report?date={day}&lang=en", headers=cookie).text
    assert 'id="fig-stations-offline">1<' in html  # site1: st-b never synced


def test_an_order_poll_is_a_sign_of_life(server: Any) -> None:
    assert states(server)["st-a"]["online"] is False
    poll = {"after": 0, "timeout": 0}
    reply = server.client.get("/api/v1/orders/poll", params=poll, headers=server.station_a)
    assert reply.status_code == 200
    now = states(server)
    assert now["st-a"]["online"] is True and now["st-b"]["online"] is False
