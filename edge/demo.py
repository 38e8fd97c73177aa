"""The demo: a central server on SQLite, two simulated stations on a simulated line, one scenario."""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn

import models
from edge.agent import EdgeAgent
from edge.config import (
    ClassifierConfig,
    DevicesConfig,
    EdgeConfig,
    IdentifyConfig,
    ServerLinkConfig,
    SorterConfig,
    StationConfig,
    TerminalConfig,
    TerminalOperator,
)
from edge.scenario import Parcel, build_scenario, write_imports, write_replay
from edge.wire import ParcelEvent
from scanner_drivers.sorter.sim import SimulatedSorter

log = logging.getLogger(__name__)

SITE = "SZX-HUB1"
STATION_A = "SZX-HUB1-L1-XR1"
STATION_B = "SZX-HUB1-L2-XR1"
ADMIN = "demo-admin"
DEMO_BUDGET_S = 600.0
TERMINAL_OPERATOR = "demo-operator"


@dataclass(frozen=True)
class DemoOptions:
    parcels: int = 300
    exit_after: bool = True
    port: int = 8600
    workdir: Path | None = None
    classifier: bool = True
    quiet: bool = False
    miss_every: int = 7
    seed: int = 7
    # Called with the running demo before it stops (the browser tests look at its pages here).
    on_ready: Callable[[DemoHandles], None] | None = None


@dataclass(frozen=True)
class DemoHandles:
    """What a person (or a browser test) needs to look at the running demo."""

    server_url: str
    terminals: tuple[str, ...]
    logins: dict[str, str]
    summary: dict[str, Any]
    # Operator id and PIN for the stations' operator terminals.
    terminal_login: tuple[str, str] = (TERMINAL_OPERATOR, "")


class DemoError(RuntimeError):
    """The demo could not run to the end; the message says which step failed."""


class ServerThread:
    """uvicorn in a background thread, stopped cleanly; port 0 picks a free port."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1)
        )
        # Bound here, so a port in use is one line naming it instead of uvicorn's traceback in a thread.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except (OSError, OverflowError) as exc:
            self.sock.close()
            why = getattr(exc, "strerror", None) or exc
            raise OSError(
                f"central server cannot listen on {host}:{port} ({why}); choose another --port"
                " (0: any free port)",
            ) from exc
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="demo-server", daemon=True
        )
        self.host = host

    def start(self, timeout: float = 30.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise DemoError("the central server did not start (is the port in use?)")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class Progress:
    """One line that updates in place on a terminal, a line per step elsewhere."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def bar(self, label: str, done: int, total: int) -> None:
        if self.quiet:
            return
        width = 30
        filled = width * done // max(total, 1)
        line = f"  {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if self.tty:
            print("\r" + line, end="" if done < total else "\n", file=sys.stderr, flush=True)
        elif done == total or done % max(1, total // 5) == 0:
            print(line, file=sys.stderr, flush=True)


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, kick: Callable[[], None] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise DemoError(f"timed out waiting for {what}")
        if kick is not None:
            kick()
        time.sleep(0.05)


def demo_classifier(enabled: bool) -> ClassifierConfig:
    """The shipped model with the category mapping; the demo head and gallery when they are shipped."""
    if not enabled:
        return ClassifierConfig()
    artifacts = Path(models.__file__).resolve().parent / "artifacts"
    manifest = artifacts / "efficientnet_lite0.manifest.json"
    if not manifest.is_file():
        raise DemoError(f"classifier model not found at {manifest}; run with --no-classifier")
    head = artifacts / "demo" / "demo_head.npz"
    gallery = artifacts / "demo" / "demo_gallery.npz"
    return ClassifierConfig(
        enabled=True,
        manifest=manifest,
        head=head if head.is_file() else None,
        gallery=gallery if gallery.is_file() else None,
        threads=1,
    )


def station_config(
    station_id: str,
    line_id: str,
    work: Path,
    replay: Path,
    sorter_url: str,
    server_url: str,
    classifier: ClassifierConfig,
    terminal: TerminalConfig,
) -> EdgeConfig:
    return EdgeConfig(
        station=StationConfig(id=station_id, site_id=SITE, line_id=line_id, data_dir=work / station_id),
        devices=DevicesConfig(scanner=f"fake://{replay}?speed=0"),
        # The replay reads every parcel at once, with no belt moving: a line's real budget (about
        # 1.5 s) would hold most of them as LATE, and a loaded machine would decide which. The
        # demo's budgets are generous so that its counts depend on the scenario alone.
        sorter=SorterConfig(url=sorter_url, divert_budget_s=DEMO_BUDGET_S),
        identify=IdentifyConfig(image_budget_ms=2000.0),
        server=ServerLinkConfig(url=server_url, sync_interval_s=0.3, batch_size=200),
        classifier=classifier,
        terminal=terminal,
    )


def demo_terminal(pin: str) -> TerminalConfig:
    """Both stations' terminals: one operator, the same PIN, hashed as in a real configuration."""
    from edge.web.sessions import hash_pin

    return TerminalConfig(
        operators=[TerminalOperator(id=TERMINAL_OPERATOR, name="Demo", pin_hash=hash_pin(pin))]
    )


def run_station(agent: EdgeAgent, total: int, label: str, progress: Progress) -> None:
    """Start the station once it holds the registry, replay its parcels, wait until all are synced."""
    agent.start(scanner=False)
    assert agent.sync is not None
    if not agent.sync.registry_synced.wait(60):
        raise DemoError(f"{label}: registry did not arrive from the server")
    agent.start_scanner()
    while not agent.scanner.join(0.2) or not agent.drain(0.0):
        progress.bar(label, agent.parcels, total)
        agent.drain(0.2)
    if not agent.drain(DEMO_BUDGET_S):
        raise DemoError(f"{label}: parcels still in progress")
    progress.bar(label, agent.parcels, total)
    wait_until(lambda: agent.store.outbox_size() == 0, 60, f"{label} outbox to drain", agent.sync.kick)


def parcels_of(agent: EdgeAgent) -> list[ParcelEvent]:
    return [e for e in agent.store.events(1_000_000) if isinstance(e, ParcelEvent)]


def onward_parcels(
    parcels: list[Parcel], events: list[ParcelEvent], outcomes: dict[str, str]
) -> list[Parcel]:
    """Parcels that went on down the line: cleared ones, and those whose divert failed.

    The replay feeds parcels in order and one worker records them in order, so the n-th parcel
    event belongs to the n-th parcel. `outcomes` are the final divert outcomes by tracking id.
    """
    if len(parcels) != len(events):
        raise DemoError(f"{len(parcels)} parcels replayed but {len(events)} recorded")
    return [
        p
        for p, ev in zip(parcels, events, strict=True)
        if ev.decision == "CLEAR" or outcomes.get(ev.tracking_id) != "DIVERTED"
    ]


class Api:
    """The demo's administrator, talking to the server's HTTP API like any client would."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.client.request(method, path, **kwargs)
        if resp.status_code >= 400:
            raise DemoError(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()


@contextlib.contextmanager
def central_server(work: Path, port: int) -> Iterator[tuple[str, Any]]:
    from server.app import create_app
    from server.settings import ServerSettings

    settings = ServerSettings(
        database_url=f"sqlite:///{work / 'server.db'}",
        secret_key=secrets.token_urlsafe(32),
        hmac_key=secrets.token_urlsafe(32),
        encryption_key=secrets.token_urlsafe(32),
        auto_migrate=True,
    )
    thread = ServerThread(create_app(settings), "127.0.0.1", port)
    url = thread.start()
    try:
        yield url, settings
    finally:
        thread.stop()


def server_counts(api: Api, day: str) -> dict[str, Any]:
    report = api.call("GET", "/api/v1/reports/daily", params={"date": day, "site": SITE})
    return report if isinstance(report, dict) else {}


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    progress = Progress(opts.quiet)
    with contextlib.ExitStack() as stack:
        if opts.workdir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="parcelguard-demo-")))
        else:
            work = opts.workdir
            work.mkdir(parents=True, exist_ok=True)
        return _run(opts, work, progress, stack)
    raise AssertionError("unreachable")


def _run(opts: DemoOptions, work: Path, progress: Progress, stack: contextlib.ExitStack) -> dict[str, Any]:
    from server import admin

    scenario = build_scenario(opts.parcels, seed=opts.seed)
    progress.say(f"parcelguard demo: {opts.parcels} parcels, working folder {work}")
    base_url, settings = stack.enter_context(central_server(work, opts.port))
    progress.say(f"central server up at {base_url} (SQLite)")
    password = secrets.token_urlsafe(12)
    admin.create_user(settings, ADMIN, password, "admin", [SITE])
    # People to log in as on the web pages: one of each role, all on the demo's site.
    logins = {ADMIN: password}
    for role in ("officer", "supervisor", "operator"):
        logins[f"demo-{role}"] = secrets.token_urlsafe(9)
        admin.create_user(settings, f"demo-{role}", logins[f"demo-{role}"], role, [SITE])
    pin = f"{secrets.randbelow(10**6):06d}"
    terminal_cfg = demo_terminal(pin)
    api = Api(base_url, admin.create_api_token(settings, ADMIN))
    stack.callback(api.client.close)
    tokens = {
        STATION_A: admin.register_station(settings, STATION_A, SITE, "L1"),
        STATION_B: admin.register_station(settings, STATION_B, SITE, "L2"),
    }
    senders_file, manifests_file = write_imports(scenario, work / "imports")
    for kind, path in (("senders", senders_file), ("manifests", manifests_file)):
        result = api.call(
            "POST",
            f"/api/v1/{kind}/import",
            content=path.read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        rejected = result.get("rejected", [])
        progress.say(f"imported {result.get('imported')} {kind}, {len(rejected)} rejected")
        if rejected:
            raise DemoError(f"{kind} import rejected rows: {rejected[:3]}")
    for id_number in scenario.blacklist:
        api.call(
            "POST",
            "/api/v1/watchlist",
            json={
                "list": "blacklist",
                "kind": "sender",
                "id_type": "resident_id",
                "id_number": id_number,
                "reason": "confirmed counterfeit shipper",
                "source": "demo",
            },
        )
    progress.say(f"blacklisted {len(scenario.blacklist)} senders")

    diverts = {"n": 0}
    diverts_lock = threading.Lock()

    def miss(_tracking_id: str) -> bool:
        # Called from the simulator's connection threads: one count across both stations' links.
        with diverts_lock:
            diverts["n"] += 1
            return opts.miss_every > 0 and diverts["n"] % opts.miss_every == 0

    sorter = SimulatedSorter(miss=miss)
    sorter_url = sorter.start()
    stack.callback(sorter.stop)
    classifier = demo_classifier(opts.classifier)

    replay_a = work / "station-a.jsonl"
    write_replay(scenario.parcels, replay_a, images=True)
    cfg_a = station_config(STATION_A, "L1", work, replay_a, sorter_url, base_url, classifier, terminal_cfg)
    agent_a = EdgeAgent(cfg_a, token=tokens[STATION_A])
    stack.callback(agent_a.stop)
    progress.say(f"station A ({STATION_A}): {agent_a.classifier.describe}")
    run_station(agent_a, len(scenario.parcels), "station A", progress)

    events_a = parcels_of(agent_a)
    onward = onward_parcels(scenario.parcels, events_a, agent_a.store.divert_outcomes())
    cleared_a = [e for e in events_a if e.decision == "CLEAR" and e.waybill]
    if not cleared_a:
        raise DemoError("no parcel cleared at station A; the scenario is too small")
    tipped = cleared_a[len(cleared_a) // 2].waybill
    order = api.call(
        "POST",
        "/api/v1/orders",
        json={
            "scope": "waybill",
            "waybill": tipped,
            "site_id": SITE,
            "reason": "tip-off from the market regulator",
            "expires_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        },
    )
    progress.say(
        f"officer order {order.get('order_id')} for waybill {tipped}; {len(onward)} parcels go on to B"
    )

    replay_b = work / "station-b.jsonl"
    write_replay(onward, replay_b, images=True)
    cfg_b = station_config(STATION_B, "L2", work, replay_b, sorter_url, base_url, classifier, terminal_cfg)
    agent_b = EdgeAgent(cfg_b, token=tokens[STATION_B])
    stack.callback(agent_b.stop)
    agent_b.start(scanner=False)
    assert agent_b.sync is not None
    wait_until(
        lambda: agent_b.store.orders_seq() >= int(order.get("seq", 0)), 30, "orders to reach station B"
    )
    run_station(agent_b, len(onward), "station B", progress)
    wait_until(lambda: agent_a.store.outbox_size() == 0, 30, "station A outbox to drain", agent_a.sync.kick)  # type: ignore[union-attr]

    consolidated = run_links_job(settings)
    progress.say(f"links job: {consolidated} split shipment(s), one consolidated review item each")
    summary = summarise(api, [agent_a, agent_b], sorter, classifier, consolidated)
    progress.say(format_summary(summary))
    # Retention runs once, as the server's daily job would: today's data is within every period.
    retention = admin.run_retention(settings, dry_run=False, actor="demo")
    summary["retention"] = {name: c["deleted"] for name, c in retention.classes.items()}
    progress.say(retention.summary())
    if not opts.exit_after or opts.on_ready is not None:
        from edge.terminal import TerminalServer

        terminals: list[str] = []
        for agent, port in ((agent_a, opts.port + 100 if opts.port else 0), (agent_b, 0)):
            try:
                terminal = TerminalServer(agent, "127.0.0.1", port)
            except OSError:
                terminal = TerminalServer(agent, "127.0.0.1", 0)
            terminal.start()
            stack.callback(terminal.stop)
            terminals.append(terminal.url)
        if opts.on_ready is not None:
            opts.on_ready(
                DemoHandles(base_url, tuple(terminals), dict(logins), summary, (TERMINAL_OPERATOR, pin))
            )
    if not opts.exit_after:
        progress.say(f"operator terminals: station A {terminals[0]}/  station B {terminals[1]}/")
        progress.say(f"web pages at {base_url}/ ; Ctrl-C to stop. Logins:")
        for user, secret in logins.items():
            progress.say(f"  {user:<16} {secret}")
        progress.say(f"operator terminals: operator id {TERMINAL_OPERATOR}, PIN {pin}")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return summary


def run_links_job(settings: Any) -> int:
    """The server's links job, run once now (the server runs it on a timer): split shipments opened."""
    from server.db import Database
    from server.links.job import run_links

    db = Database(settings.database_url)
    try:
        return int(run_links(db, settings)["opened"])
    finally:
        db.dispose()


def summarise(
    api: Api,
    agents: list[EdgeAgent],
    sorter: SimulatedSorter,
    classifier: ClassifierConfig,
    split_shipments: int = 0,
) -> dict[str, Any]:
    """Counts from what was stored: the server's report and each station's own database."""
    from server.jurisdictions import DEFAULT_TIMEZONE

    # The server files the demo site's days in its default time zone.
    day = datetime.now(ZoneInfo(DEFAULT_TIMEZONE)).date().isoformat()
    report = server_counts(api, day)
    edge_counts: dict[str, int] = {"CLEAR": 0, "HOLD": 0, "PULL": 0}
    no_reads = 0
    diverted = 0
    pulls_diverted = 0
    for agent in agents:
        for name, n in agent.store.decision_counts().items():
            edge_counts[name] = edge_counts.get(name, 0) + n
        outcomes = agent.store.divert_outcomes()
        for ev in parcels_of(agent):
            no_reads += "NO_READ" in ev.reasons
            done = outcomes.get(ev.tracking_id) == "DIVERTED"
            diverted += done
            pulls_diverted += done and ev.decision == "PULL"
    orders = api.call("GET", "/api/v1/orders")
    # An order counts once per station that confirmed receiving it (diverted and missed imply it).
    delivered = sum(
        1
        for o in orders
        for state in o.get("stations", {}).values()
        if state in ("delivered", "diverted", "missed")
    )
    summary: dict[str, Any] = {
        "parcels": int(report.get("parcels", 0)),
        "cleared": int(report.get("cleared", 0)),
        "held": int(report.get("held", 0)),
        "pulled": int(report.get("pulled", 0)),
        "no_reads": int(report.get("no_reads", 0)),
        # Every hit the server stored opened exactly one review item; each split shipment one more.
        "hits_synced": int(report.get("review_items", 0)) - split_shipments,
        "split_shipments": split_shipments,
        "orders_delivered": delivered,
        "diverts_acknowledged": diverted,
        "classifier": "on" if classifier.enabled else "off",
    }
    checks = {
        "every parcel is cleared, held or pulled": summary["parcels"]
        == summary["cleared"] + summary["held"] + summary["pulled"],
        "server cleared = stations cleared": summary["cleared"] == edge_counts["CLEAR"],
        "server held = stations held": summary["held"] == edge_counts["HOLD"],
        "server pulled = stations pulled": summary["pulled"] == edge_counts["PULL"],
        "server no-reads = stations no-reads": summary["no_reads"] == no_reads,
        "one review item per hit": summary["hits_synced"] == edge_counts["HOLD"] + edge_counts["PULL"],
        "the split shipment consolidated into one review item": split_shipments == 1,
        "sorter diverted = stations diverted": diverted == sorter.diverts_acknowledged - sorter.missed,
        "server pulls diverted = stations pulls diverted": pulls_diverted
        == int(report.get("pulls", {}).get("diverted", -1)),
    }
    summary["consistent"] = all(checks.values())
    summary["failed_checks"] = [name for name, ok in checks.items() if not ok]
    return summary


def format_summary(s: dict[str, Any]) -> str:
    return (
        "\nsummary (from the server's and the stations' stored data)\n"
        f"  parcels {s['parcels']}: cleared {s['cleared']}, held {s['held']}, pulled {s['pulled']}\n"
        f"  no-reads {s['no_reads']}, hits synced {s['hits_synced']},"
        f" orders delivered {s['orders_delivered']}, diverts acknowledged {s['diverts_acknowledged']},"
        f" split shipments consolidated {s['split_shipments']},"
        f" classifier {s['classifier']}\n"
        f"  server and stations agree: {'yes' if s['consistent'] else 'NO'}"
    )
