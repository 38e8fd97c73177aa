"""Station configuration: TOML validated by pydantic models that forbid unknown keys and name bad ones."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.errors import ConfigError
from models.categories import GOODS_CATEGORIES
from scanner_drivers import LinkLimitError, check_sorter_url, check_url


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationConfig(Strict):
    id: str = Field(description="Station id, unique in the network, e.g. 'SZX-HUB1-L3-XR1'.", min_length=1)
    site_id: str = Field(description="Site (hub or outlet) the station belongs to.", min_length=1)
    line_id: str = Field(description="Sorting line within the site.", min_length=1)
    data_dir: Path = Field(
        Path("var/edge"), description="Folder for the station's SQLite database and held images."
    )
    keep_images_days: float = Field(
        30.0, gt=0, description="Days to keep images of hits once the server has them (evidence on site)."
    )
    keep_events_days: float = Field(
        30.0,
        gt=0,
        description="Days to keep events once the server has confirmed them (the server keeps the record;"
        " unsent or refused events are kept however old).",
    )
    disk_reserve_mb: int = Field(
        16,
        ge=0,
        le=4096,
        description="Disk space (MiB) held back beside the database and given up when the disk is full, so"
        " that records keep reaching the disk while someone frees space (0: none).",
    )


class DevicesConfig(Strict):
    scanner: str | None = Field(
        None,
        description="Scanner URL: serial:///dev/serial/by-id/...?preset=..., socket://host:port,"
        " fake://file.jsonl; none only when the sorter controller asks for destinations (sorter.url with"
        " mode=request), whose requests are then the reads.",
    )
    camera: str | None = Field(None, description="Camera URL (v4l2://, rtsp://, folder://); none: no camera.")
    xray: str | None = Field(
        None, description="X-ray feed URL (folder:///var/spool/xray); none: no X-ray feed."
    )
    camera_kind: Literal["label", "camera"] = Field(
        "label",
        description="What the camera sees: the shipping label (read for the waybill) or the package/goods"
        " (classified).",
    )
    binding: Literal["sequence", "window", "token"] = Field(
        "window",
        description="How X-ray shots are bound to reads: n-th to n-th, nearest in time, or by a waybill"
        " in the file name.",
    )
    image_wait_s: float = Field(
        3.0, gt=0, le=60, description="How long a read waits for its X-ray shot or camera frame."
    )
    scanner_quiet_s: float | None = Field(
        None,
        gt=0,
        description="Show the scanner red when it has sent nothing (not even a heartbeat) for this long;"
        " none: only when it reports itself down. Set it for scanners that send heartbeats.",
    )

    # Device URLs are checked as `edge run` would open them (scheme, options, presets, paths),
    # without touching the devices.
    @field_validator("scanner")
    @classmethod
    def _scanner_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url("scanner", value)
        return value

    @field_validator("camera")
    @classmethod
    def _camera_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url("camera", value)
        return value

    @field_validator("xray")
    @classmethod
    def _xray_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url("xray", value)
        return value


class SorterConfig(Strict):
    url: str | None = Field(
        None, description="Sorter link URL (tcp://host:port, serial://..., modbus://...); none: alert only."
    )
    # validate_default: the default chute names must fit the link too (a Modbus link takes numbers).
    pull_chute: str = Field(
        "P1", validate_default=True, description="Chute for parcels to be pulled (interception)."
    )
    hold_chute: str = Field(
        "H1", validate_default=True, description="Chute for parcels held for checking at the station."
    )
    deadline_s: float = Field(
        1.5,
        gt=0,
        le=30,
        description="Seconds from the read until the parcel passes the divert point (used when neither"
        " divert_budget_s nor scan_to_divert_m with belt_speed_m_s is given).",
    )
    divert_budget_s: float | None = Field(
        None,
        gt=0,
        le=600,
        description="Seconds from the read until the parcel passes the divert point; overrides deadline_s"
        " and the line geometry.",
    )
    scan_to_divert_m: float | None = Field(
        None, gt=0, le=1000, description="Belt distance from the scanner to the divert point, in metres."
    )
    belt_speed_m_s: float | None = Field(
        None, gt=0, le=20, description="Belt speed in metres per second (with scan_to_divert_m)."
    )
    send_margin_s: float = Field(
        0.05,
        ge=0,
        le=5,
        description="Seconds a divert command needs to reach the controller before the divert point;"
        " a parcel decided with less time left is held as LATE and its divert is not sent.",
    )
    confirm_wait_s: float = Field(
        0.0,
        ge=0,
        le=30,
        description="Seconds past the divert point to wait for the controller's confirmation (for"
        " controllers that confirm when the parcel reaches its chute); a command is still never sent"
        " after the divert point.",
    )
    in_flight: int = Field(
        64,
        ge=1,
        le=256,
        description="Diverts awaiting their confirmation at once (the controller confirms when the parcel"
        " reaches its chute, long after the next parcels were read); at least confirmation time over"
        " the time between parcels, e.g. 0.8 s / 30 ms = 27.",
    )

    @model_validator(mode="after")
    def _geometry_pair(self) -> SorterConfig:
        if (self.scan_to_divert_m is None) != (self.belt_speed_m_s is None):
            raise ValueError("give scan_to_divert_m and belt_speed_m_s together, or neither")
        return self

    @property
    def mode(self) -> str | None:
        """ "divert" (the station sends commands), "request" (the controller asks), None: no link."""
        return check_sorter_url(self.url).mode if self.url else None

    @property
    def budget_s(self) -> float:
        """Seconds from a read to its divert point: the explicit budget, the line geometry, or deadline_s."""
        if self.divert_budget_s is not None:
            return self.divert_budget_s
        if self.scan_to_divert_m is not None and self.belt_speed_m_s is not None:
            return self.scan_to_divert_m / self.belt_speed_m_s
        return self.deadline_s

    @field_validator("url")
    @classmethod
    def _link_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_sorter_url(value)
        return value

    @field_validator("pull_chute", "hold_chute")
    @classmethod
    def _chute_the_link_carries(cls, value: str, info: ValidationInfo) -> str:
        # A bad url has already been reported under its own key; without one nothing is sent.
        url = info.data.get("url")
        if url:
            try:
                check_sorter_url(url).check_chute(value)
            except LinkLimitError as exc:
                raise ValueError(f"{info.field_name} {value!r} cannot be sent: {exc}") from None
        return value


class ServerLinkConfig(Strict):
    url: str | None = Field(None, description="Central server base URL; none: the station runs offline.")
    token_env: str = Field(
        "PARCELGUARD_STATION_TOKEN", description="Environment variable holding the station's bearer token."
    )
    sync_interval_s: float = Field(2.0, gt=0, le=3600, description="Seconds between sync rounds.")
    batch_size: int = Field(200, ge=1, le=1000, description="Events per sync batch.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="HTTP timeout of one sync request.")
    max_backoff_s: float = Field(60.0, gt=0, le=3600, description="Longest wait between failed tries.")
    poll_orders: bool = Field(True, description="Long-poll the server for pull orders between syncs.")
    models_interval_s: float = Field(
        60.0, ge=0, le=86400, description="Seconds between checks for published models (0: never check)."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        # Without a scheme httpx fails only at the first sync, long after the station started.
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} must start with http:// or https:// and name a host")
        return value


class WaybillRule(Strict):
    carrier: str = Field(description="Carrier name, for reports and for telling codes apart.")
    pattern: str = Field(description="Regular expression the whole code text must match.")
    check: Literal["none", "s10", "mod11_weights", "gs1", "luhn"] = Field(
        "none", description="Check-digit scheme the code must pass to count as a waybill."
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        # Compiled here so that a bad pattern fails `config check`, not the first parcel.
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


def _default_rules() -> list[WaybillRule]:
    return [
        WaybillRule(carrier="upu-s10", pattern=r"[A-Z]{2}\d{9}[A-Z]{2}", check="s10"),
        WaybillRule(carrier="gs1-sscc", pattern=r"(00)?\d{18}", check="gs1"),
        WaybillRule(carrier="domestic", pattern=r"(SF|YT|ZT|JT|YD|ST|JD|PG)\d{10,13}", check="none"),
    ]


class IdentifyConfig(Strict):
    rules: list[WaybillRule] = Field(
        default_factory=_default_rules, description="Waybill patterns per carrier, tried in order."
    )
    read_images: bool = Field(
        True, description="When the scanner gives no valid waybill, decode barcodes in the camera images."
    )
    image_budget_ms: float = Field(
        50.0,
        gt=0,
        le=5000,
        description="Processor time budget (ms) for decoding barcodes in one camera image; a busy"
        " machine does not shorten it (a hard real-time deadline still applies).",
    )


ClassifiedKind = Literal["xray", "xray_low", "camera"]


def _classified_kinds() -> list[ClassifiedKind]:
    return ["xray", "camera"]


class ClassifierConfig(Strict):
    enabled: bool = Field(False, description="Run the counterfeit classifier on every image.")
    manifest: Path | None = Field(None, description="Model manifest (JSON) of the live model.")
    head: Path | None = Field(None, description="Trained head file; none: category mapping only.")
    gallery: Path | None = Field(None, description="Counterfeit reference gallery file.")
    shadow_manifest: Path | None = Field(
        None, description="A second model run in shadow mode: results recorded, never acted on."
    )
    threads: int = Field(1, ge=1, le=16, description="onnxruntime intra-op threads.")
    pool: int = Field(
        2,
        ge=1,
        le=16,
        description="Images of one parcel classified at once (threads; onnxruntime frees the GIL).",
    )
    parcels: int = Field(
        2,
        ge=1,
        le=8,
        description="Parcels assessed at once (lookups and classification); they are still recorded,"
        " and diverted, in the order they were read. One parcel at a time leaves a core idle between"
        " its images; `parcelguard bench line` shows the effect on a station's own machine.",
    )
    kinds: list[ClassifiedKind] = Field(
        default_factory=_classified_kinds,
        description="Image kinds the classifier runs on (label photos are only read for the waybill).",
    )

    @model_validator(mode="after")
    def _manifest_when_enabled(self) -> ClassifierConfig:
        if self.enabled and self.manifest is None:
            raise ValueError("classifier.enabled is true but classifier.manifest is not set")
        return self


class PolicyConfig(Strict):
    counterfeit_threshold: float = Field(
        0.8, ge=0, le=1, description="Head score at or above which a parcel is a counterfeit suspect."
    )
    category_thresholds: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict, description="Per goods category override of counterfeit_threshold."
    )
    gallery_similarity: float = Field(
        0.92, ge=0, le=1, description="Cosine similarity to a known counterfeit that makes a suspect."
    )
    mismatch_probability: float = Field(
        0.6, ge=0, le=1, description="Category probability needed to call declared contents mismatched."
    )
    hold_unknown_waybill: bool = Field(True, description="Hold parcels whose waybill is not in the manifest.")
    hold_when_head_unsure: bool = Field(
        True,
        description=(
            "Hold a parcel when the counterfeit head is asked about an image and rejects it as uncertain;"
            " false: such an image gets no counterfeit verdict, as if no head were loaded."
        ),
    )

    # -- sender risk, agreement customers and inspection on receipt (all sent by the server) --------
    sender_risk_hold: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Sender risk (from the server's history score) at or above which a parcel is held.",
    )
    sender_risk_weight_from: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Sender risk at or above which (below sender_risk_hold) it only adds to the risk.",
    )
    unqualified_customer: Literal["hold", "weight"] = Field(
        "hold",
        description="Agreement customer without a valid qualification: hold the parcel, or only add weight.",
    )
    unqualified_customer_weight: float = Field(
        0.4, ge=0, le=1, description="Risk an unqualified agreement customer adds (its own, in either mode)."
    )
    not_inspected: Literal["hold", "weight"] = Field(
        "weight", description="A parcel not inspected on receipt (收寄验视): hold it, or only add weight."
    )
    not_inspected_weight: float = Field(
        0.3, ge=0, le=1, description="Risk a parcel not inspected on receipt adds (its own, in either mode)."
    )
    weight_hold_risk: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Combined risk at which reasons that only add weight hold the parcel by themselves.",
    )

    @model_validator(mode="after")
    def _known_categories(self) -> PolicyConfig:
        unknown = sorted(set(self.category_thresholds) - set(GOODS_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown goods categories {unknown}; known: {list(GOODS_CATEGORIES)}")
        return self


OPERATOR_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class TerminalOperator(Strict):
    """An operator who may log in at the terminal: an id and a PIN, hashed or from the environment."""

    id: str = Field(
        pattern=OPERATOR_ID,
        description="Operator id (staff number) recorded on every confirmation: letters, digits, . _ -",
    )
    name: str = Field("", max_length=100, description="Name shown on the terminal after login.")
    pin_hash: str | None = Field(
        None,
        pattern=r"^\$argon2id?\$",
        description="argon2 hash of the PIN (`parcelguard edge hash-pin` prints one); never the PIN itself.",
    )
    pin_env: str | None = Field(
        None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Environment variable holding this operator's PIN, instead of pin_hash.",
    )

    @model_validator(mode="after")
    def _one_pin_source(self) -> TerminalOperator:
        if (self.pin_hash is None) == (self.pin_env is None):
            raise ValueError(f"operator {self.id}: set exactly one of pin_hash and pin_env")
        return self


class TerminalConfig(Strict):
    host: str = Field("127.0.0.1", description="Address the operator terminal listens on.")
    port: int = Field(8700, ge=0, le=65535, description="Port of the operator terminal (0: pick a free one).")
    enabled: bool = Field(True, description="Serve the operator terminal.")
    confirm_within_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds the operator has to confirm a pull before it counts as overdue.",
    )
    language: Literal["zh", "en"] = Field(
        "zh", description="Default language of the terminal (zh: Simplified Chinese, en: English)."
    )
    require_login: bool = Field(
        True,
        description="Operators log in with their id and PIN before the terminal shows or records anything;"
        " false only for a bench terminal, where every confirmation is recorded as bench_operator.",
    )
    operators: list[TerminalOperator] = Field(
        default_factory=list,
        description="Operators who may log in at this terminal (needed when require_login is true).",
    )
    bench_operator: str = Field(
        "bench",
        pattern=OPERATOR_ID,
        description="Operator id recorded on confirmations when require_login is false.",
    )
    session_hours: float = Field(
        12.0, gt=0, le=24, description="Hours an operator stays logged in (one shift), then logs in again."
    )
    max_failures: int = Field(
        5, ge=1, le=100, description="Wrong PINs in a row (per operator id and per address) before a lockout."
    )
    lockout_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="First lockout after max_failures wrong PINs; each further lockout doubles it.",
    )
    max_lockout_s: float = Field(
        900.0, gt=0, le=86400, description="Longest lockout however many wrong PINs follow."
    )
    streams_per_session: int = Field(
        4,
        ge=1,
        le=64,
        description="Live streams one login may hold open; a further one closes that login's oldest.",
    )
    streams_per_address: int = Field(
        8,
        ge=1,
        le=256,
        description="Live streams one client address may hold open; a further one closes its oldest.",
    )
    max_streams: int = Field(
        32, ge=1, le=1024, description="Live streams of all clients together; beyond it a new one is refused."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names (optionally host:port) the terminal may be reached by, besides IP addresses"
        " and localhost, which always work; any other Host is refused, so that a page on a rebound DNS"
        " name cannot talk to the terminal.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Extra origins (scheme://host:port) allowed to send confirmations, e.g. a reverse"
        " proxy's public address; the terminal's own origin is always allowed.",
    )

    @model_validator(mode="after")
    def _unique_operators(self) -> TerminalConfig:
        ids = [o.id for o in self.operators]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"operator ids listed twice: {dupes}")
        if self.max_lockout_s < self.lockout_s:
            raise ValueError("max_lockout_s is shorter than lockout_s")
        return self


class EdgeConfig(Strict):
    station: StationConfig
    devices: DevicesConfig
    sorter: SorterConfig = Field(default_factory=SorterConfig, description="Divert commands.")
    server: ServerLinkConfig = Field(default_factory=ServerLinkConfig, description="Sync link.")
    identify: IdentifyConfig = Field(default_factory=IdentifyConfig, description="Waybill rules.")
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig, description="Classifier.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Decision thresholds.")
    terminal: TerminalConfig = Field(default_factory=TerminalConfig, description="Operator terminal.")

    @model_validator(mode="after")
    def _one_source_of_reads(self) -> EdgeConfig:
        asks = self.sorter.mode == "request"
        if self.devices.scanner is None and not asks:
            raise ValueError(
                "devices.scanner is required unless sorter.url asks for destinations (mode=request)"
            )
        if self.devices.scanner is not None and asks:
            # Two sources would make two parcels of every carrier.
            raise ValueError(
                "sorter.url has mode=request: the controller's requests are the reads, so leave"
                " devices.scanner unset"
            )
        return self


class LineConfig(Strict):
    """A simulated sorting line: the sorter controller the edge's sorter link talks to."""

    line_id: str = Field(description="Sorting line id.")
    protocol: Literal["tcp", "modbus"] = Field("tcp", description="Protocol the simulated controller speaks.")
    miss_every: int = Field(0, ge=0, description="Report every N-th divert as MISSED (0: never).")


M = TypeVar("M", bound=BaseModel)


def format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: {exc.error_count()} configuration error(s)"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def parse_config(model: type[M], data: dict[str, object], source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source)) from exc


def load_config(model: type[M], path: Path) -> M:
    """Load and validate one TOML file; relative paths inside stay relative to the caller's cwd."""
    return parse_config(model, read_toml(path), str(path))


def load_edge_config(path: Path) -> EdgeConfig:
    return load_config(EdgeConfig, path)
