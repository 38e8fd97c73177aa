"""Parcels for the line bench: the demo's mix of kinds, each with its photos, and the registry they need.

Everything here is made before any timing starts, so that generating images never competes with
the station being measured.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from edge.scenario import Scenario, build_scenario, corrupt_check
from edge.wire import ManifestWire, RegistryChanges, SenderWire, WatchWire
from scanner_drivers.types import Code, ImageCapture, ScanRead

BENCH_DEVICE = "bench://line"


@dataclass(frozen=True)
class BenchParcel:
    """One parcel as the scanner and cameras deliver it; `key` (the label photo's sha256) finds its event."""

    kind: str
    waybill: str
    codes: tuple[str, ...]
    images: tuple[ImageCapture, ...]
    key: str

    def read(self, at_monotonic: float, trigger_id: int) -> ScanRead:
        """The scanner read of this parcel, stamped with the time it was due at the reader."""
        return ScanRead(
            device=BENCH_DEVICE,
            codes=tuple(Code(text=c, symbology="code128", engine="bench") for c in self.codes),
            at_utc=datetime.now(UTC).isoformat(timespec="milliseconds"),
            at_monotonic=at_monotonic,
            trigger_id=trigger_id,
            images=self.images,
        )


def sender_token(id_number: str) -> str:
    """A stand-in for the server's keyed token: the station only ever compares tokens for equality."""
    return hashlib.sha256(f"bench-sender:{id_number}".encode()).hexdigest()[:32]


def _masked(id_number: str) -> str:
    return id_number[:3] + "*" * (len(id_number) - 7) + id_number[-4:]


def registry_of(scenario: Scenario) -> RegistryChanges:
    """What the server would have sent the station for this scenario: senders, manifests, blacklist."""
    return RegistryChanges(
        cursor=1,
        senders=[
            SenderWire(
                sender_token=sender_token(s.id_number), id_masked=_masked(s.id_number), verified=s.verified
            )
            for s in scenario.senders
        ],
        manifests=[
            ManifestWire(
                waybill=str(m["waybill"]),
                sender_token=sender_token(str(m["sender_id_number"])),
                declared_name=str(m["declared_name"]),
                declared_category=str(m["declared_category"]),
                quantity=int(str(m["quantity"])),
                inspected_on_receipt=bool(m["inspected_on_receipt"]),
            )
            for m in scenario.manifests
        ],
        watchlist=[
            WatchWire(
                entry_id=f"bench-black-{i}",
                list="blacklist",
                kind="sender",
                token=sender_token(id_number),
                reason="confirmed counterfeit shipper",
            )
            for i, id_number in enumerate(scenario.blacklist)
        ],
    )


def prepare_parcels(
    n: int, seed: int = 7, progress: bool = False
) -> tuple[list[BenchParcel], RegistryChanges]:
    """`n` parcels of the demo's mix, each with a label photo, an X-ray image and a goods photo.

    As in the demo, a no-read's label is torn in the photo too and a bad check digit is printed
    on it; goods photos show a counterfeit label for the counterfeit kind, a genuine one otherwise.
    """
    from edge.demo_images import goods_photo, parcel_photo, xray_scan

    scenario = build_scenario(n, seed=seed)
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    out: list[BenchParcel] = []
    for i, p in enumerate(scenario.parcels):
        image_seed = int.from_bytes(p.waybill.encode()[-6:], "big")
        shown = corrupt_check(p.waybill) if p.kind == "bad_check" else p.waybill
        label = parcel_photo(shown, image_seed, damaged=p.kind == "no_read")
        images = (
            ImageCapture("label", label, f"{p.waybill}-label.jpg", stamp, "image/jpeg"),
            ImageCapture("xray", xray_scan(image_seed), f"{p.waybill}-xray.png", stamp, "image/png"),
            ImageCapture(
                "camera",
                goods_photo(image_seed, counterfeit=p.kind == "counterfeit"),
                f"{p.waybill}-goods.jpg",
                stamp,
                "image/jpeg",
            ),
        )
        key = hashlib.sha256(label).hexdigest()
        out.append(BenchParcel(p.kind, p.waybill, tuple(p.codes), images, key))
        if progress and sys.stderr.isatty() and (i + 1) % 50 == 0:
            print(f"\r  preparing parcels {i + 1}/{n}", end="", file=sys.stderr, flush=True)
    if progress and sys.stderr.isatty() and n >= 50:
        print(file=sys.stderr)
    return out, registry_of(scenario)
