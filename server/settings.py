"""Server settings: TOML for the ordinary fields, the environment for secrets, placeholders refused."""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from server.cases.config import CasesConfig
from server.errors import ServerSettingsError
from server.jurisdictions import (
    DEFAULT_JURISDICTION,
    DEFAULT_TIMEZONE,
    Jurisdiction,
    SiteConfig,
    check_zone,
    default_jurisdictions,
)

SECRET_ENV = {
    "secret_key": "PARCELGUARD_SECRET_KEY",
    "hmac_key": "PARCELGUARD_HMAC_KEY",
    "encryption_key": "PARCELGUARD_ENCRYPTION_KEY",
}
# Optional: the bearer token a Prometheus server sends to /metrics; unset keeps /metrics off.
METRICS_TOKEN_ENV = "PARCELGUARD_METRICS_TOKEN"
MIN_SECRET_LENGTH = 32
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# Values copied from examples and templates; a server started with one of these is not secret at all.
PLACEHOLDER_WORDS = (
    "changethis",
    "change-me",
    "changeme",
    "change_me",
    "placeholder",
    "example",
    "secret-key",
)


def generate_key() -> str:
    """A fresh random secret suitable for any of the three keys."""
    return secrets.token_urlsafe(48)


def _check_secret(value: SecretStr) -> SecretStr:
    raw = value.get_secret_value()
    lowered = raw.lower()
    if not raw:
        raise ValueError("is missing")
    if any(word in lowered for word in PLACEHOLDER_WORDS) or len(set(raw)) < 8:
        raise ValueError(
            "is a placeholder; generate one with: python -c 'import secrets;print(secrets.token_urlsafe(48))'"
        )
    if len(raw) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return value


def _env_metrics_token() -> SecretStr | None:
    raw = os.environ.get(METRICS_TOKEN_ENV, "")
    return SecretStr(raw) if raw else None


def _env_secret(name: str) -> Any:
    return lambda: SecretStr(os.environ.get(SECRET_ENV[name], ""))


class LimitsConfig(BaseModel):
    """Request size limits; anything larger is refused with 413, JSON nested deeper with 422."""

    model_config = ConfigDict(extra="forbid")

    max_batch_events: int = Field(1000, ge=1, description="most events accepted in one sync batch")
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="largest request body after gzip decoding; also the largest JSON body on any path",
    )
    max_json_depth: int = Field(
        32,
        ge=4,
        le=200,
        description="deepest nesting of arrays and objects in a JSON body or JSON parameter",
    )
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest image upload in bytes")
    registry_page_size: int = Field(1000, ge=1, description="registry changes returned per sync reply")


class OrdersConfig(BaseModel):
    """How pull orders are raised from edge decisions and how long they live."""

    model_config = ConfigDict(extra="forbid")

    network_wide: bool = Field(
        False, description="a PULL at one station orders every station of the network, not only its site"
    )
    default_ttl_hours: float = Field(72.0, gt=0, description="lifetime of an order that names no expiry")
    max_poll_seconds: float = Field(30.0, gt=0, le=30, description="longest wait of one long poll")


class StationsConfig(BaseModel):
    """How the server judges whether a station is still there."""

    model_config = ConfigDict(extra="forbid")

    offline_after_s: float = Field(
        120.0,
        gt=0,
        description="a station that sent no sync request for this many seconds is shown "
        "offline; stations sync every few seconds even with nothing to send",
    )


# Provisions a detention or seizure of suspected counterfeits commonly rests on in China.
DEFAULT_LEGAL_BASES = (
    "《中华人民共和国商标法》第六十二条",
    "《中华人民共和国产品质量法》第十八条",
    "《中华人民共和国行政强制法》第二十二条",
    "《中华人民共和国知识产权海关保护条例》第十六条",
)


class ReviewConfig(BaseModel):
    """The review workflow: claim leases, queue deadlines, legal bases and bulk release."""

    model_config = ConfigDict(extra="forbid")

    lease_minutes: float = Field(
        15.0, gt=0, description="how long a claim holds an item before others may take it"
    )
    queue_hours_hold: float = Field(24.0, gt=0, description="time allowed to decide a HOLD item")
    queue_hours_pull: float = Field(4.0, gt=0, description="time allowed to decide a PULL item")
    legal_bases: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LEGAL_BASES),
        min_length=1,
        description="provisions an officer chooses from as the legal basis of a detention or seizure "
        "(the decision adds free text beside it: article, paragraph, facts)",
    )
    bulk_release_max_risk: float = Field(
        0.5,
        ge=0,
        le=1,
        description="HOLD items at or below this risk may be released together with one typed reason",
    )
    page_size: int = Field(50, ge=5, le=500, description="parcels per page of the officer's queue")

    @model_validator(mode="before")
    @classmethod
    def _statutory_days_moved(cls, data: Any) -> Any:
        # The old key gave bare day counts with no legal source; the deadlines now live with the
        # jurisdiction, where each one cites the provision it comes from.
        if isinstance(data, dict) and "statutory_days" in data:
            raise ValueError(
                "statutory_days is no longer read: legal deadlines are set per jurisdiction, each with its "
                "source, in [server.jurisdictions.<key>.deadlines.<decision>] (label, days or working_days "
                "or hours, source); remove statutory_days (see config/server.example.toml)"
            )
        return data

    @field_validator("legal_bases")
    @classmethod
    def _bases_named(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value]
        if any(len(v) < 4 or len(v) > 200 for v in cleaned) or len(set(cleaned)) != len(cleaned):
            raise ValueError("each legal basis must be 4-200 characters and listed once")
        return cleaned


class AuthConfig(BaseModel):
    """Sessions, tokens and login rate limiting."""

    model_config = ConfigDict(extra="forbid")

    session_hours: float = Field(12.0, gt=0, description="lifetime of a browser session")
    cookie_secure: bool = Field(True, description="send the session cookie over HTTPS only")
    login_max_failures: int = Field(
        5, ge=1, description="failed logins allowed per user and address in the window"
    )
    login_window_seconds: float = Field(300.0, gt=0, description="window of the login rate limit")


class XrayConfig(BaseModel):
    """Material colour of the desk's X-ray viewer for dual-energy pairs (`xray` and `xray_low` images)."""

    model_config = ConfigDict(extra="forbid")

    organic_below: float = Field(
        1.3,
        gt=1.0,
        description="ratio of low- to high-energy attenuation under which a pixel is shown organic (orange); "
        "uncalibrated default, set the X-ray machine's own",
    )
    metal_above: float = Field(
        1.7,
        gt=1.0,
        description="ratio over which a pixel is shown metal (blue); between the two: mixed or light metal "
        "(green)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> XrayConfig:
        if self.metal_above <= self.organic_below:
            raise ValueError("xray.metal_above must be above xray.organic_below")
        return self


class AuditConfig(BaseModel):
    """Checkpoints of the audit chain kept outside the database, so that a cut tail shows."""

    model_config = ConfigDict(extra="forbid")

    checkpoint_dir: Path | None = Field(
        None,
        description=(
            "folder, outside the database's reach, for signed checkpoints of the audit chain's head "
            "(written at start, every interval, at stop and by `parcelguard audit verify`); unset: none"
        ),
    )
    checkpoint_interval_seconds: float = Field(
        300.0, gt=0, description="how often the running server writes a checkpoint"
    )


class EvidenceConfig(BaseModel):
    """Evidence bundles and referral packages: the key that signs them and the referral's wording."""

    model_config = ConfigDict(extra="forbid")

    signing_key_file: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs evidence bundles, created by "
        "`parcelguard case keygen`; keep it outside the repository and readable by the server only; "
        "unset: bundles cannot be exported",
    )
    sender_unit: str = Field(
        "", max_length=200, description="the referring unit's name printed on referral letters"
    )
    max_bundle_mb: int = Field(
        512, ge=1, le=4096, description="largest bundle in MB (it is built in memory); larger is refused"
    )


# --- retention ------------------------------------------------------------------------------------
# The legal floors below which no retention period may be set, with where each comes from. Where the
# exact article is not verified, the description says so: raise a floor, never lower it, on doubt.
RETENTION_FLOORS: dict[str, tuple[int, str]] = {
    "cleared_events": (
        30,
        "security-check (X-ray) records of cleared parcels; floor 30 days from the local delivery-"
        "security rules cited by the operators (the exact article is not verified here)",
    ),
    "hit_events": (
        30,
        "security-check records of held and pulled parcels, with their decided review items; floor 30 "
        "days as for every X-ray record (same source); items under a legal hold are kept whatever the age",
    ),
    "hit_images": (
        30,
        "X-ray and camera images of hits; floor 30 days as X-ray records (same source)",
    ),
    "real_name": (
        365,
        "real-name sender records and manifests (寄递实名制), counted from their last update or last "
        "manifest; floor 1 year for real-name registers under the delivery real-name rules "
        "(邮件快件实名收寄管理办法, State Post Bureau, 2018; the article number is not verified here)",
    ),
    "station_events": (
        180,
        "device, order and divert events (the network's operation logs); floor 6 months for network logs "
        "(网络安全法 / Cybersecurity Law of the PRC, art. 21(3))",
    ),
    "audit_log": (
        180,
        "the hash-chained audit log, pruned from its oldest entry only; floor 6 months for network "
        "logs (Cybersecurity Law of the PRC, art. 21(3))",
    ),
}


def _days(name: str, default: int) -> Any:
    why = RETENTION_FLOORS[name][1]
    return Field(default, ge=1, description=f"days to keep {why}")


class RetentionConfig(BaseModel):
    """How long each class of data is kept, never below its legal floor, and how often the server
    deletes what is older (items under a legal hold are kept whatever their age)."""

    model_config = ConfigDict(extra="forbid")

    interval_hours: float = Field(
        24.0,
        ge=0,
        description="how often the running server applies retention (0: never; "
        "`parcelguard server retention` still runs it by hand)",
    )
    chunk_rows: int = Field(
        20_000,
        ge=100,
        le=100_000,
        description="rows deleted per transaction (an interrupted run loses none); on SQLite each one holds "
        "the write lock for a fraction of a second",
    )
    cleared_events_days: int = _days("cleared_events", 90)
    hit_events_days: int = _days("hit_events", 730)
    hit_images_days: int = _days("hit_images", 365)
    real_name_days: int = _days("real_name", 365)
    station_events_days: int = _days("station_events", 180)
    audit_log_days: int = _days("audit_log", 1095)

    @field_validator(
        "cleared_events_days",
        "hit_events_days",
        "hit_images_days",
        "real_name_days",
        "station_events_days",
        "audit_log_days",
    )
    @classmethod
    def _not_below_floor(cls, value: int, info: ValidationInfo) -> int:
        name = str(info.field_name).removesuffix("_days")
        floor, why = RETENTION_FLOORS[name]
        if value < floor:
            raise ValueError(f"{value} days is below the legal floor of {floor} days: {why}")
        return value

    def days(self) -> dict[str, int]:
        """Each class's period in days, keyed by class name."""
        return {name: int(getattr(self, f"{name}_days")) for name in RETENTION_FLOORS}




class LinksConfig(BaseModel):
    """Link graph, split-shipment detection and sender risk: thresholds and schedule."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="keep the link graph at ingest (false: no graph, no detection)")
    detect_interval_s: float = Field(
        600.0, ge=0, description="seconds between detection and risk runs in the server (0: never in-process)"
    )
    window_days: float = Field(30.0, gt=0, le=366, description="how far back detection looks")
    hub_senders: int = Field(
        50, ge=2, description="a phone, address or destination shared by more senders links nothing (a hub)"
    )
    min_parcels: int = Field(2, ge=2, description="smallest cluster considered")
    min_senders: int = Field(2, ge=1, description="fewest different senders in a cluster considered")
    threshold: float = Field(
        0.45, ge=0, le=1, description="cluster score at or above which one consolidated review item opens"
    )
    max_span_days: float = Field(
        21.0,
        gt=0,
        description="clusters whose parcels spread over more days than this score nothing for time",
    )
    risk_half_life_days: float = Field(
        180.0, gt=0, description="half-life of a history event's risk contribution"
    )
    valid_qualifications: list[str] = Field(
        default_factory=lambda: ["valid", "approved", "有效", "已审核", "合格"],
        description="qualification values of an agreement customer that count as valid (case-insensitive)",
    )


class ServerSettings(BaseModel):
    """Everything the central server needs to start; secrets default to the environment."""

    # validate_default: a secret taken from the environment is checked like one passed in.
    model_config = ConfigDict(extra="forbid", validate_default=True)

    database_url: str = Field(
        "sqlite:///parcelguard-server.db",
        description="SQLAlchemy URL: sqlite:///FILE or postgresql://user@host/db",
    )
    secret_key: SecretStr = Field(
        default_factory=_env_secret("secret_key"),
        description="signs sessions and tokens (PARCELGUARD_SECRET_KEY)",
    )
    hmac_key: SecretStr = Field(
        default_factory=_env_secret("hmac_key"),
        description="keys the HMAC tokens of ID numbers (PARCELGUARD_HMAC_KEY)",
    )
    encryption_key: SecretStr = Field(
        default_factory=_env_secret("encryption_key"),
        description="encrypts full sender records (PARCELGUARD_ENCRYPTION_KEY)",
    )
    metrics_token: SecretStr | None = Field(
        default_factory=_env_metrics_token,
        description=f"bearer token that /metrics requires ({METRICS_TOKEN_ENV}); unset: /metrics is off",
    )
    auto_migrate: bool = Field(True, description="apply database migrations when the server starts")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="request size limits")
    orders: OrdersConfig = Field(default_factory=OrdersConfig, description="pull order rules")
    review: ReviewConfig = Field(default_factory=ReviewConfig, description="review workflow")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="sessions and login limits")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="audit log checkpoints")
    stations: StationsConfig = Field(default_factory=StationsConfig, description="station liveness")
    xray: XrayConfig = Field(default_factory=XrayConfig, description="the desk's X-ray viewer")


    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="retention periods per data class and legal floors"
    )
    log_requests: bool = Field(False, description="log one line per request (never bodies)")
    regions: dict[str, list[str]] = Field(
        default_factory=dict,
        description="named sets of sites, e.g. {south = ['gz1', 'sz2']}: a watchlist entry of scope "
        "'region' applies at every site of its region; it may be set by a user holding every one of "
        "those sites (holders of '*' always)",
    )
    evidence: EvidenceConfig = Field(
        default_factory=EvidenceConfig, description="evidence bundles and referral packages"
    )
    ui_language: Literal["zh", "en"] = Field(
        "zh", description="language the web pages open in (zh: Simplified Chinese, en: English)"
    )
    timezone: str = Field(
        DEFAULT_TIMEZONE,
        description="IANA time zone of the sites [server.sites] does not list: their days, hours and "
        "deadlines",
    )
    jurisdiction: str = Field(
        DEFAULT_JURISDICTION, description="jurisdiction of the sites [server.sites] does not list"
    )
    sites: dict[str, SiteConfig] = Field(
        default_factory=dict,
        description="per-site time zone and jurisdiction, e.g. [server.sites.SZX-HUB1] "
        "timezone = 'Asia/Shanghai'",
    )
    jurisdictions: dict[str, Jurisdiction] = Field(
        default_factory=default_jurisdictions,
        description="legal systems by key, each with its deadlines and their sources; a configured CN keeps "
        "the built-in deadlines it does not set",
    )
    # Cases (server.cases): how rights-holder notifications are sent.
    cases: CasesConfig = Field(default_factory=CasesConfig, description="case notifications (SMTP or export)")


    links: LinksConfig = Field(
        default_factory=LinksConfig, description="link graph, split-shipment detection and sender risk"
    )

    @field_validator("secret_key", "hmac_key", "encryption_key")
    @classmethod
    def _refuse_placeholders(cls, value: SecretStr) -> SecretStr:
        return _check_secret(value)

    @field_validator("metrics_token")
    @classmethod
    def _strong_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _check_secret(value)

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, sites in value.items():
            if not _NAME.match(name) or not sites or not all(_NAME.match(s) for s in sites):
                raise ValueError(f"region {name!r}: names and sites must be 1-64 letters, digits or _.@-")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("jurisdictions")
    @classmethod
    def _defaults_kept(cls, value: dict[str, Jurisdiction]) -> dict[str, Jurisdiction]:
        for key, builtin in default_jurisdictions().items():
            if key in value:
                value[key].deadlines = {**builtin.deadlines, **value[key].deadlines}
        return value

    @model_validator(mode="after")
    def _known_jurisdictions(self) -> ServerSettings:
        wanted = {"(default)": self.jurisdiction} | {s: c.jurisdiction for s, c in self.sites.items()}
        for site, name in wanted.items():
            if name not in self.jurisdictions:
                raise ValueError(f"site {site}: jurisdiction {name!r} is not in [server.jurisdictions]")
        for site in self.sites:
            if not _NAME.match(site):
                raise ValueError(f"sites: {site!r} must be 1-64 letters, digits or _.@-")
        return self

    @field_validator("database_url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per error, each naming the key's dotted path (and its variable for secrets)."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        env = SECRET_ENV.get(path)
        where = f"{prefix}{path}" + (f" ({env})" if env else "")
        msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"])
        lines.append(f"{where}: {msg.removeprefix('Value error, ')}")
    return "; ".join(lines)


def load_server_settings(path: Path) -> ServerSettings:
    """Read TOML from `path` and secrets from the environment; errors name each bad key."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ServerSettingsError(
            f"{path}: no such configuration file (copy config/server.example.toml there, or pass --config)"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ServerSettingsError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ServerSettingsError(f"{path}: cannot read: {exc}") from exc
    section = data.get("server", data)
    if not isinstance(section, dict):
        raise ServerSettingsError(f"{path}: server: must be a table")
    if "server" in data:
        # Everything lives under [server]; a table beside it (a misspelt [sever.auth]) would be ignored.
        others = sorted(k for k in data if k != "server")
        if others:
            raise ServerSettingsError(
                f"{path}: {', '.join(others)}: unknown top-level key(s); a server configuration has"
                " only [server] and its sub-tables ([server.auth], [server.limits] ...)"
            )
    for key, env in {**SECRET_ENV, "metrics_token": METRICS_TOKEN_ENV}.items():
        if key in section:
            raise ServerSettingsError(
                f"{path}: {key}: secrets come from the environment ({env}), not the file"
            )
    try:
        return ServerSettings(**section)
    except ValidationError as exc:
        raise ServerSettingsError(f"{path}: {format_validation_error(exc)}") from exc
