"""End to end: the demo through the real server, sorter and stations, checked against its scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.demo import DemoOptions, run_demo
from edge.scenario import Parcel, build_scenario

MISS_EVERY = 7


def expected_counts(n: int, seed: int) -> dict[str, int]:
    """What the scenario implies, worked out without the product: kinds, the sorter's miss rule, routing."""
    scenario = build_scenario(n, seed=seed)
    diverts = 0

    def divert() -> bool:
        nonlocal diverts
        diverts += 1
        return diverts % MISS_EVERY != 0

    def decision(p: Parcel, ordered: set[str]) -> str:
        if p.kind == "blacklisted" or p.waybill in ordered:
            return "PULL"
        return "CLEAR" if p.kind in ("verified", "camera_read") else "HOLD"

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
        # One order per pull at A, sent to B; the officer's site order reaches A and B.
        "orders_delivered": len(pulls_a) + 2,
        "diverts_acknowledged": diverted,
    }


@pytest.mark.slow
def test_demo_matches_the_scenario(tmp_path: Path) -> None:
    n, seed = 150, 7
    summary = run_demo(
        DemoOptions(
            parcels=n,
            port=0,
            workdir=tmp_path,
            classifier=False,
            quiet=True,
            miss_every=MISS_EVERY,
            seed=seed,
        )
    )
    assert summary["failed_checks"] == []
    assert summary["classifier"] == "off"
    got = {k: summary[k] for k in expected_counts(n, seed)}
    assert got == expected_counts(n, seed)
    kinds = {p.kind for p in build_scenario(n, seed=seed).parcels}
    assert kinds == {
        "verified",
        "camera_read",
        "unverified",
        "no_realname",
        "unknown_waybill",
        "blacklisted",
        "no_read",
        "bad_check",
    }
