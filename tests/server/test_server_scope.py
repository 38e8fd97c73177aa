"""Site scope on both engines: admins stay within their sites, officers see only their sites' cases,
watchlist entries reach only the sites they apply at, and migration 0005 attributes existing rows."""

from __future__ import annotations

from typing import Any

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from server.app import create_app
from server.db import alembic_config, migrate, normalise_url
from server.schema import audit_scope, image_sites, watchlist

REASON = {"reason": "case 2026-9 counterfeit bags"}


def test_site_admin_cannot_take_over_other_sites(server: Any, world: Any, caller: Any) -> None:
    c = server.client
    admin1, _ = caller("admin", ["site1"])
    admin2, _ = caller("admin", ["site2"])
    assert c.post("/api/v1/users/root/tokens", headers=admin2).status_code == 404
    assert c.post("/api/v1/users/root/deactivate", headers=admin2).status_code == 404
    assert c.post(f"/api/v1/users/{world.user['site1']}/tokens", headers=admin2).status_code == 404
    new = {"username": "boss", "password": world.password, "role": "admin"}
    for sites in (["*"], ["site1", "site2"], ["site2"]):
        r = c.post("/api/v1/users", json={**new, "sites": sites}, headers=admin1)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (sites, r.text)
    assert c.post("/api/v1/users", json={**new, "sites": ["site1"]}, headers=admin1).status_code == 201
    # A user of both sites is beyond an admin of one.
    server.user("both", "officer", ["site1", "site2"])
    assert c.post("/api/v1/users/both/deactivate", headers=admin1).status_code == 404
    assert {u["username"] for u in c.get("/api/v1/users", headers=admin1).json()} == {
        "admin-site1", "boss", world.user["site1"]
    }  # fmt: skip
    # Moving another site's station into one's own would take it over.
    move = {"station_id": "st-c", "site_id": "site1", "line_id": "line1"}
    assert c.post("/api/v1/stations", json=move, headers=admin1).status_code == 404
    assert c.post("/api/v1/stations/st-c/revoke", headers=admin1).status_code == 404
    assert c.get("/api/v1/orders/poll?timeout=0", headers=server.station_c).status_code == 200
    assert [s["station_id"] for s in c.get("/api/v1/stations", headers=admin1).json()] == ["st-a", "st-b"]
    trail = c.get("/api/v1/audit?limit=1000", headers=admin1).json()
    assert trail and not any("st-c" in str(e) or "site2" in str(e) or e["target"] == "both" for e in trail)
    assert any(e["target"] == "boss" for e in trail)
    assert c.get("/api/v1/audit/verify", headers=admin1).status_code == 403
    assert c.get("/api/v1/audit/verify", headers=server.admin).json()["ok"]


def test_officers_see_only_their_sites_cases(server: Any, world: Any, caller: Any) -> None:
    c = server.client
    off1, _ = caller("officer", ["site1"])
    off2, desk2 = caller("officer", ["site2"])
    _, desk_all = caller("admin", ["*"])
    shared = world.shared_item
    # The sender named at both sites: site2's view of its history leaves site1's item out.
    mine = c.get(f"/api/v1/reviews/{shared['site2']}", headers=off2).json()
    assert mine["sender_history"] == []
    everything = c.get(f"/api/v1/reviews/{shared['site2']}", headers=server.admin).json()
    assert [h["id"] for h in everything["sender_history"]] == [shared["site1"]]
    # A reveal by a site1 officer stays in site1's trail.
    both = mine["sender_token"]
    assert c.post(f"/api/v1/senders/{both}/reveal", json=REASON, headers=off1).status_code == 200
    page2 = c.get(f"/desk/items/{shared['site2']}", headers=desk2)
    assert page2.status_code == 200 and "officer-site1" not in page2.text and "2026-9" not in page2.text
    page_all = c.get(f"/desk/items/{shared['site1']}", headers=desk_all)
    assert "officer-site1" in page_all.text
    # A sender only site1's items name is not site2's to reveal; evidence images stay with their site.
    only1 = world.sender["site1"]
    assert c.post(f"/api/v1/senders/{only1}/reveal", json=REASON, headers=off2).status_code == 404
    assert c.get(f"/api/v1/senders/{only1}", headers=off2).status_code == 404
    assert c.get(f"/api/v1/images/{world.image['site1']}", headers=off2).status_code == 404
    assert c.get(f"/api/v1/images/{world.image['site2']}", headers=off2).status_code == 200
    reveals = [e for e in c.get("/api/v1/audit", headers=server.admin).json() if e["action"] == "reveal"]
    assert [e["actor"] for e in reveals] == ["officer-site1"]


def _registry_tokens(c: TestClient, headers: dict[str, str], station: str) -> set[str]:
    empty = {"station_id": station, "boot_id": "q", "events": []}
    reply = c.post("/api/v1/sync", json=empty, headers=headers).json()
    return {w["token"] for w in reply["registry"]["watchlist"]}


def test_watchlist_scope_decides_who_sets_and_who_receives(server: Any, world: Any, caller: Any) -> None:
    settings = server.settings.model_copy(update={"regions": {"north": ["site1", "site2"]}})
    with TestClient(create_app(settings)) as c:
        off1, _ = caller("officer", ["site1"])
        off2, _ = caller("officer", ["site2"])
        off12, _ = caller("officer", ["site1", "site2"])
        entry = {"list": "blacklist", "kind": "phone", "reason": "fakes", "source": "AMR 9"}
        own = c.post("/api/v1/watchlist", json={**entry, "value": "13700000001"}, headers=off1)
        assert own.status_code == 201 and (own.json()["scope"], own.json()["scope_ref"]) == ("site", "site1")
        refused = [
            ({"scope": "network"}, off1, 403),
            ({"scope": "site", "scope_ref": "site2"}, off1, 403),
            ({"scope": "region", "scope_ref": "north"}, off1, 403),
            ({"scope": "region", "scope_ref": "south"}, server.admin, 422),
            ({"scope": "site"}, off1, 422),
            ({}, off12, 422),
        ]
        for extra, who, status in refused:
            r = c.post("/api/v1/watchlist", json={**entry, "value": "13700000002", **extra}, headers=who)
            assert r.status_code == status, (extra, r.text)
        region = c.post(
            "/api/v1/watchlist",
            json={**entry, "value": "13700000003", "scope": "region", "scope_ref": "north"},
            headers=off12,
        )
        assert region.status_code == 201, region.text
        network = c.post("/api/v1/watchlist", json={**entry, "value": "13700000004"}, headers=server.admin)
        assert network.json()["scope"] == "network"
        at_a = _registry_tokens(c, server.station_a, "st-a")
        at_c = _registry_tokens(c, server.station_c, "st-c")
        tok = {k: v.json()["token"] for k, v in (("own", own), ("region", region), ("network", network))}
        assert at_a >= {tok["own"], tok["region"], tok["network"], world.watch_token["site1"]}
        assert world.watch_token["site2"] not in at_a
        assert tok["own"] not in at_c and {tok["region"], tok["network"]} <= at_c
        listed = {w["token"] for w in c.get("/api/v1/watchlist", headers=off2).json()}
        assert tok["own"] not in listed and world.watch_token["site1"] not in listed
        own_id, net_id = own.json()["entry_id"], network.json()["entry_id"]
        assert c.patch(f"/api/v1/watchlist/{own_id}", json={"active": False}, headers=off2).status_code == 404
        assert c.patch(f"/api/v1/watchlist/{net_id}", json={"active": False}, headers=off2).status_code == 403
        assert c.patch(f"/api/v1/watchlist/{own_id}", json={"active": False}, headers=off1).status_code == 200


def test_evidence_lists_only_entries_of_the_items_site(server: Any, world: Any) -> None:
    c = server.client
    entry = {"list": "blacklist", "kind": "sender", "id_type": "resident_id", "id_number": world.ids["both"]}
    body = {**entry, "reason": "fakes", "source": "AMR 9", "scope": "site", "scope_ref": "site2"}
    assert c.post("/api/v1/watchlist", json=body, headers=server.admin).status_code == 201
    at1 = c.get(f"/api/v1/reviews/{world.shared_item['site1']}", headers=server.admin).json()
    at2 = c.get(f"/api/v1/reviews/{world.shared_item['site2']}", headers=server.admin).json()
    assert at1["sender_listed"] == [] and [w["list"] for w in at2["sender_listed"]] == ["blacklist"]


def test_migration_0005_attributes_existing_rows(server: Any, world: Any, caller: Any) -> None:
    """Down to 0004 and up again on live data: images and audit entries get their sites back."""
    url = server.settings.database_url
    command.downgrade(alembic_config(url), "0004")
    migrate(url)
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            pairs = {(r.sha256, r.site_id) for r in conn.execute(select(image_sites))}
            scoped = {str(r.site_id) for r in conn.execute(select(audit_scope.c.site_id))}
            scopes = {str(r.scope) for r in conn.execute(select(watchlist.c.scope))}
    finally:
        engine.dispose()
    assert pairs == {(world.image[s], s) for s in ("site1", "site2")}
    assert scoped == {"site1", "site2"} and scopes == {"network"}
    admin1, _ = caller("admin", ["site1"])
    targets = {e["target"] for e in server.client.get("/api/v1/audit?limit=1000", headers=admin1).json()}
    assert {"st-a", "st-b"} <= targets and "st-c" not in targets
