"""The station with a real X-ray hot folder: each read gets its shot, a read without one is held."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np

from edge.agent import EdgeAgent
from edge.config import DevicesConfig, EdgeConfig, SorterConfig, StationConfig
from edge.scenario import s10_waybill
from edge.wire import ManifestWire, ParcelEvent, RegistryChanges, SenderWire


def xray_png(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(100, 240, (64, 64), dtype=np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def test_reads_are_bound_to_their_xray_shots(tmp_path: Path) -> None:
    rng = random.Random(4)
    waybills = [s10_waybill(rng) for _ in range(3)]
    spool = tmp_path / "spool"
    spool.mkdir()
    replay = tmp_path / "reads.jsonl"
    replay.write_text("".join(json.dumps({"codes": [w]}) + "\n" for w in waybills), encoding="utf-8")
    cfg = EdgeConfig(
        station=StationConfig(id="S1", site_id="SITE", line_id="L1", data_dir=tmp_path / "edge"),
        devices=DevicesConfig(
            scanner=f"fake://{replay}?speed=0",
            xray=f"folder://{spool}?settle_ms=0&poll_ms=20",
            binding="token",
            image_wait_s=3.0,
        ),
        # Longer than the parcel's 1.5 s to its divert point: the station stops waiting for a shot
        # while a held parcel can still be diverted (three send margins before the divert point).
        sorter=SorterConfig(deadline_s=1.5, send_margin_s=0.3),
    )
    agent = EdgeAgent(cfg)
    agent.store.apply_registry(
        RegistryChanges(
            cursor=1,
            senders=[SenderWire(sender_token="tok", id_masked="110***********1234", verified=True)],
            manifests=[
                ManifestWire(waybill=w, sender_token="tok", inspected_on_receipt=True) for w in waybills
            ],
        )
    )
    # The X-ray machine names its files after the waybill; the third parcel's shot is lost.
    for i, w in enumerate(waybills[:2]):
        (spool / f"{w}_{i}.png").write_bytes(xray_png(i))
    agent.start()
    assert agent.scanner.join(10)
    assert agent.drain(15)
    events = {e.waybill: e for e in agent.store.events(50) if isinstance(e, ParcelEvent)}
    tiles = {d["name"]: d for d in agent.health.snapshot(0)["devices"]}
    agent.stop()
    assert tiles["xray"]["up"]
    assert set(events) == set(waybills)
    for w in waybills[:2]:
        assert events[w].decision == "CLEAR"
        assert [img.kind for img in events[w].images] == ["xray"]
    lost = events[waybills[2]]
    assert (lost.decision, lost.reasons, lost.images) == ("HOLD", ["IMAGE_MISSING"], [])
