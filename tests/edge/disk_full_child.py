"""Child process of the full-disk kill test: fills its disk, records one held parcel, waits to be killed."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from edge.errors import StoreError
from edge.store import EdgeStore, ImageBlob
from edge.wire import ParcelEvent


def fill(folder: Path) -> None:
    """Write until the file system says no: the disk is then truly full."""
    with open(folder / "filler", "wb") as fh:
        block = b"\0" * 65536
        try:
            while True:
                fh.write(block)
                fh.flush()
        except OSError:
            pass


def held_parcel(store: EdgeStore, n: int) -> tuple[ParcelEvent, ImageBlob]:
    seq = store.allocate_seq()
    image = ImageBlob(f"{n:064x}", "xray", "image/png", bytes([n % 256]) * 300_000)
    event = ParcelEvent(
        key=f"S1:b1:{seq}",
        station_id="S1",
        boot_id="b1",
        seq=seq,
        at=datetime.now(UTC),
        tracking_id=f"t{seq}",
        waybill="EA000000000CN",
        decision="HOLD",
        reasons=["NO_REALNAME"],
        risk=0.6,
        classifier="classifier off",
    )
    return event, image


def main(folder: Path, reserve_bytes: int) -> None:
    store = EdgeStore(folder / "station.db", reserve_bytes)
    fill(folder)
    event, image = held_parcel(store, 1)
    try:
        store.append_events([event], [image], upload=[image.sha256])
    except StoreError as exc:
        print(f"refused {exc}", flush=True)
    else:
        print(f"written {event.key}", flush=True)
    time.sleep(60)  # killed here


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
