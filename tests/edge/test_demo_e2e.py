"""End to end: the demo through the real server, sorter and stations, checked against its scenario."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import get_args

import pytest

from edge.demo import DemoOptions, run_demo
from edge.scenario import Kind, Parcel, build_scenario
from server.settings import RETENTION_FLOORS

MISS_EVERY = 7


def expected_counts(
    n: int, seed: int, classifier: bool, unsure: frozenset[str] = frozenset()
) -> dict[str, int]:
    """What the scenario implies, worked out without the product: kinds, the sorter's miss rule, routing.

    `unsure` are the photographed parcels whose goods photo the head declined to judge (its reject
    option): they are held for a person to look at instead of being cleared or pulled.
    """
    scenario = build_scenario(n, seed=seed)
    diverts = 0

    def divert() -> bool:
        nonlocal diverts
        diverts += 1
        return diverts % MISS_EVERY != 0

    def decision(p: Parcel, ordered: set[str]) -> str:
        # The demo head knows the generated brand labels: a counterfeit one is a suspect, a genuine one not.
        if p.kind == "blacklisted" or p.waybill in ordered:
            return "PULL"
        if classifier and p.waybill in unsure:
            return "HOLD"
        if classifier and p.kind == "counterfeit":
            return "PULL"
        return "CLEAR" if p.kind in ("verified", "camera_read", "counterfeit", "split_shipment") else "HOLD"

    totals = {"CLEAR": 0, "HOLD": 0, "PULL": 0}
    no_reads = diverted = 0
    onward: list[Parcel] = []
    cleared_a: list[Parcel] = []
    pulls_a: set[str] = set()
    for p in scenario.parcels:
        d = decision(p, set())
        totals[d] += 1
        no_reads += p.kind == "no_read"
        if d == "CLEAR":
            onward.append(p)
            cleared_a.append(p)
            continue
        if d == "PULL":
            pulls_a.add(p.waybill)
        ok = divert()
        diverted += ok
        if not ok:
            onward.append(p)
    tipped = cleared_a[len(cleared_a) // 2].waybill
    for p in onward:
        d = decision(p, pulls_a | {tipped})
        totals[d] += 1
        no_reads += p.kind == "no_read"
        if d != "CLEAR":
            diverted += divert()
    return {
        "parcels": n + len(onward),
        "cleared": totals["CLEAR"],
        "held": totals["HOLD"],
        "pulled": totals["PULL"],
        "no_reads": no_reads,
        "hits_synced": totals["HOLD"] + totals["PULL"],
        # The scenario's one split shipment, consolidated by the server into one review item.
        "split_shipments": 1,
        # One order per pull at A, sent to B; the officer's site order reaches A and B.
        "orders_delivered": len(pulls_a) + 2,
        "diverts_acknowledged": diverted,
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n", "classifier"), [(150, False), (60, True)], ids=["classifier-off", "classifier-on"]
)
def test_demo_matches_the_scenario(tmp_path: Path, n: int, classifier: bool) -> None:
    seed = 7
    summary = run_demo(
        DemoOptions(
            parcels=n,
            port=0,
            workdir=tmp_path,
            classifier=classifier,
            quiet=True,
            miss_every=MISS_EVERY,
            seed=seed,
        )
    )
    assert summary["failed_checks"] == []
    # The retention job ran once over every class; nothing of today is past its period.
    assert summary["retention"] == dict.fromkeys(RETENTION_FLOORS, 0)
    assert summary["classifier"] == ("on" if classifier else "off")
    unsure = frozenset(unsure_waybills(tmp_path))
    photographed = [p for p in build_scenario(n, seed=seed).parcels if p.goods != "none"]
    if classifier:
        # The reject option may decline a few photos, never most of them.
        assert len(unsure) <= len(photographed) // 3
        assert unsure <= {p.waybill for p in photographed}
    else:
        assert unsure == set()
    expected = expected_counts(n, seed, classifier, unsure)
    assert {k: summary[k] for k in expected} == expected


def unsure_waybills(work: Path) -> set[str]:
    found: set[str] = set()
    for db in work.glob("*/station.db"):
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT waybill, body FROM events WHERE type = 'parcel'").fetchall()
        found |= {w for w, body in rows if "MODEL_UNCERTAIN" in json.loads(body)["reasons"]}
    return found


def test_scenario_covers_every_kind() -> None:
    kinds = {p.kind for p in build_scenario(60, seed=7).parcels}
    assert kinds == set(get_args(Kind))
