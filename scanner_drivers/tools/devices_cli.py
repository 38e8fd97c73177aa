"""Command group: `parcelguard devices listen URL`, `devices divert URL ID`, and simulators for site tests."""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scanner_drivers.camera.driver import FILE_SCHEMES, LIVE_SCHEMES, CameraDriver
from scanner_drivers.types import DeviceError, ImageCapture, ScanRead

if TYPE_CHECKING:
    from scanner_drivers.scanners.serial_messages import Message

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK = 0
EXIT_NOT_DIVERTED = 1
Event = dict[str, Any]


def register(commands: SubParsers, bench: SubParsers) -> None:
    group = commands.add_parser("devices", help="try devices on site: listen to one, send a test divert")
    actions = group.add_subparsers(dest="devices_command", metavar="ACTION", required=True)

    listen = actions.add_parser("listen", help="print what a scanner, X-ray folder or camera sends")
    listen.add_argument(
        "url", metavar="URL", help="device URL (serial://, socket://, folder://, v4l2:// ...)"
    )
    listen.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    listen.add_argument("--count", type=int, default=None, help="stop after this many reads or images")
    listen.add_argument("--json", action="store_true", help="one JSON object per line")
    listen.add_argument("--trigger", action="store_true", help="scanners: send the preset's trigger command")
    listen.add_argument("--interval", type=float, default=1.0, help="cameras: seconds between frames")
    listen.set_defaults(func=listen_command)

    divert = actions.add_parser("divert", help="send one test divert to a sorter and print the outcome")
    divert.add_argument("url", metavar="URL", help="sorter URL (tcp://, serial://, modbus://)")
    divert.add_argument("tracking_id", metavar="TRACKING_ID", help="tracking id to send")
    divert.add_argument("--deadline", type=float, default=2.0, help="seconds to wait for the outcome")
    divert.add_argument(
        "--chute", default=None, help="chute to divert to (default: the URL's or the sorter's)"
    )
    divert.set_defaults(func=divert_command)

    sim = actions.add_parser("simulate-sorter", help="run a simulated sorter controller and print its URL")
    sim.add_argument("--protocol", choices=("tcp", "serial", "modbus"), default="tcp", help="what it speaks")
    sim.add_argument(
        "--miss-every", type=int, default=0, help="report every N-th divert as MISSED (0: never)"
    )
    sim.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    sim.set_defaults(func=simulate_sorter_command)

    fake = actions.add_parser("fake-scanner", help="serve a vendor's recorded scanner messages on socket://")
    fake.add_argument(
        "vendor", help="recording to replay (honeywell, zebra, datalogic, cognex, sick, newland)"
    )
    fake.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    fake.set_defaults(func=fake_scanner_command)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _show(event: Event, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event, ensure_ascii=False), flush=True)
        return
    rest = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("at", "event"))
    print(f"{event['at']} {event['event']:<9} {rest}", flush=True)


def _read_event(read: ScanRead) -> Event:
    if read.no_read:
        return {"at": _now(), "event": "no-read", "raw": repr(read.raw)[2:-1]}
    codes = [{"text": c.text, "symbology": c.symbology} for c in read.codes]
    return {"at": _now(), "event": "read", "codes": codes, "trigger": read.trigger_id}


def _image_event(c: ImageCapture) -> Event:
    return {
        "at": _now(),
        "event": "image",
        "name": c.name,
        "kind": c.kind,
        "bytes": len(c.data),
        "type": c.content_type,
    }


def listen_command(args: argparse.Namespace) -> int:
    """Print status changes and every frame, read or image until --seconds/--count or Ctrl-C."""
    url: str = args.url
    scheme = urlsplit(url).scheme
    events: queue.Queue[tuple[Event, bool]] = queue.Queue()

    def status(_device: str, up: bool, detail: str) -> None:
        events.put(({"at": _now(), "event": "up" if up else "down", "detail": detail}, False))

    stop, finished = _start_listening(url, scheme, args, events, status)
    end = None if args.seconds is None else time.monotonic() + args.seconds
    counted = 0
    try:
        while end is None or time.monotonic() < end:
            try:
                event, counts = events.get(timeout=0.1)
            except queue.Empty:
                if finished():
                    break
                continue
            _show(event, args.json)
            counted += counts
            if args.count is not None and counted >= args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    while not events.empty():
        _show(events.get_nowait()[0], args.json)
    return EXIT_OK


def _start_listening(
    url: str,
    scheme: str,
    args: argparse.Namespace,
    events: queue.Queue[tuple[Event, bool]],
    status: Callable[[str, bool, str], None],
) -> tuple[Callable[[], None], Callable[[], bool]]:
    """Start the right driver for `url`; returns (stop, has it finished by itself)."""
    if scheme == "folder":
        from scanner_drivers.xray.hotfolder import HotFolderDriver

        folder = HotFolderDriver(url)
        if not folder.config.folder.is_dir():
            # The driver would wait for the folder to appear; on site that hides a wrong path.
            raise DeviceError(f"{url}: folder {folder.config.folder} does not exist")

        def reject(name: str, reason: str) -> None:
            events.put(({"at": _now(), "event": "rejected", "name": name, "reason": reason}, False))

        def shot(images: tuple[ImageCapture, ...]) -> None:
            for c in images:
                events.put((_image_event(c), True))

        def stop_folder() -> None:
            folder.stop()
            folder.join(5.0)

        folder.start(shot, status, reject)
        return stop_folder, lambda: False
    if scheme in LIVE_SCHEMES + FILE_SCHEMES:
        return _start_camera(CameraDriver(url), args.interval, events, status)
    from scanner_drivers.scanners.open import open_scanner
    from scanner_drivers.scanners.serial_scanner import SerialScanner

    scanner = open_scanner(url)
    if isinstance(scanner, SerialScanner):

        def frame(payload: bytes, msg: Message) -> None:
            events.put(
                ({"at": _now(), "event": "frame", "raw": repr(payload)[2:-1], "meaning": msg.kind}, False)
            )

        scanner.on_frame = frame
    scanner.start(lambda read: events.put((_read_event(read), True)), status)
    if args.trigger:
        if not isinstance(scanner, SerialScanner):
            raise DeviceError("--trigger works with serial scanners only")
        _trigger_when_connected(scanner, events)

    def stop_scanner() -> None:
        scanner.stop()
        scanner.join(5.0)

    return stop_scanner, lambda: scanner.join(0)


def _trigger_when_connected(scanner: Any, events: queue.Queue[tuple[Event, bool]]) -> None:
    def run() -> None:
        for _ in range(100):
            if scanner.connected:
                try:
                    scanner.trigger(True)
                    events.put(({"at": _now(), "event": "trigger", "detail": "sent"}, False))
                except DeviceError as exc:
                    events.put(({"at": _now(), "event": "trigger", "detail": str(exc)}, False))
                return
            time.sleep(0.1)

    threading.Thread(target=run, name="listen-trigger", daemon=True).start()


def _start_camera(
    cam: CameraDriver,
    interval: float,
    events: queue.Queue[tuple[Event, bool]],
    status: Callable[[str, bool, str], None],
) -> tuple[Callable[[], None], Callable[[], bool]]:
    cam.start(status)
    halt = threading.Event()
    done = threading.Event()

    def run() -> None:
        while not halt.is_set():
            try:
                events.put((_image_event(cam.capture(timeout_s=max(1.0, interval))), True))
            except DeviceError as exc:
                events.put(({"at": _now(), "event": "no-frame", "detail": str(exc)}, False))
                if not cam.live:
                    break
            halt.wait(interval)
        done.set()

    threading.Thread(target=run, name="listen-camera", daemon=True).start()

    def stop() -> None:
        halt.set()
        cam.stop()
        cam.join(5.0)

    def finished() -> bool:
        return done.is_set()

    return stop, finished


def divert_command(args: argparse.Namespace) -> int:
    from scanner_drivers.sorter.open import open_sorter

    link = open_sorter(args.url)
    try:
        result = link.divert(args.tracking_id, args.deadline, chute=args.chute)
    finally:
        link.close()
    chute = f" chute={result.chute}" if result.chute else ""
    print(f"{result.outcome}{chute} ({result.detail})", flush=True)
    return EXIT_OK if result.outcome == "DIVERTED" else EXIT_NOT_DIVERTED


def _serve_until(seconds: float | None) -> None:
    end = None if seconds is None else time.monotonic() + seconds
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def simulate_sorter_command(args: argparse.Namespace) -> int:
    from scanner_drivers.sorter.sim import SimulatedSorter

    every: int = max(0, int(args.miss_every))
    seen = [0]

    def miss(_tracking_id: str) -> bool:
        seen[0] += 1
        return every > 0 and seen[0] % every == 0

    sim = SimulatedSorter(args.protocol, miss=miss)
    print(sim.start(), flush=True)
    try:
        _serve_until(args.seconds)
    finally:
        sim.stop()
    print(f"received={sim.diverts_received} acknowledged={sim.diverts_acknowledged} missed={sim.missed}")
    return EXIT_OK


def fake_scanner_command(args: argparse.Namespace) -> int:
    from scanner_drivers.scanners.fake_serial import FakeSerialScanner

    try:
        fake = FakeSerialScanner.vendor(args.vendor, repeat=True)
    except ValueError as exc:
        print(f"parcelguard: error: {exc}", file=sys.stderr)
        return 2
    options = (
        "preset=" + args.vendor.removesuffix("-aim") + ("&aim=1" if args.vendor.endswith("-aim") else "")
    )
    print(f"{fake.start()}?{options}", flush=True)
    try:
        _serve_until(args.seconds)
    finally:
        fake.stop()
    return EXIT_OK
