"""Sites' time zones and jurisdictions, and the legal deadlines each jurisdiction sets, with their sources."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_JURISDICTION = "CN"


def check_zone(name: str) -> str:
    """An IANA time zone name the machine knows, or a clear error."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not a known IANA time zone (e.g. Asia/Shanghai)") from exc
    return name


class DeadlineRule(BaseModel):
    """One legal deadline: how long after its start it falls due, and the provision it comes from."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(..., min_length=1, max_length=200, description="what is due, in a few words")
    hours: float | None = Field(None, gt=0, description="due this many hours after the start")
    days: int | None = Field(None, gt=0, description="due this many calendar days after the start")
    working_days: int | None = Field(
        None,
        gt=0,
        description="due this many working days (Monday to Friday in the site's time zone) after the "
        "start; public holidays are not known to the server, so a rule counted in working days may fall "
        "due a holiday early, never late",
    )
    source: str = Field(
        ...,
        min_length=3,
        max_length=500,
        description="the legal provision the period comes from (law, article), or 'site policy' where "
        "no statute sets one",
    )

    @model_validator(mode="after")
    def _one_period(self) -> DeadlineRule:
        given = [n for n in ("hours", "days", "working_days") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of hours, days or working_days")
        return self

    def due_at(self, start: datetime, zone: ZoneInfo) -> datetime:
        """When this rule falls due for something that started at `start` (an aware time), in UTC."""
        if self.hours is not None:
            return start + timedelta(hours=self.hours)
        local = start.astimezone(zone)
        if self.days is not None:
            return (local + timedelta(days=self.days)).astimezone(start.tzinfo)
        left = self.working_days or 0
        while left:
            local += timedelta(days=1)
            if local.weekday() < 5:
                left -= 1
        return local.astimezone(start.tzinfo)


# Defaults for the People's Republic of China, as the provisions cited read; a site's legal officer
# confirms them (or sets others) in the server configuration.
_IPR_REGULATION = "《中华人民共和国知识产权海关保护条例》"
CN_DEADLINES: dict[str, DeadlineRule] = {
    "detain": DeadlineRule(
        label="rights holder notified and its application for detention due",
        working_days=3,
        source=f"{_IPR_REGULATION}第十六条：权利人自通知送达之日起3个工作日内提出申请",
    ),
    "investigate": DeadlineRule(
        label="investigation of detained goods concluded",
        working_days=30,
        source=f"{_IPR_REGULATION}第二十条：自扣留之日起30个工作日内调查、认定",
    ),
    "court_notice": DeadlineRule(
        label="court's assistance notice received, else goods released (detention on application)",
        working_days=20,
        source=f"{_IPR_REGULATION}第二十四条第（一）项：自扣留之日起20个工作日内",
    ),
    "seize": DeadlineRule(
        label="seizure ends or is extended (at most once, by 30 days)",
        days=30,
        source="《中华人民共和国行政强制法》第二十五条：查封、扣押的期限不得超过三十日",
    ),
    "refer": DeadlineRule(
        label="decision to hand the case over to the public security organ",
        days=3,
        source="《行政执法机关移送涉嫌犯罪案件的规定》（国务院令第310号）第五条：自接到报告之日起3日内作出决定",
    ),
    "open_inspection": DeadlineRule(
        label="parcel opened and inspected",
        days=1,
        source="site policy (no statutory period)",
    ),
    # Steps of a case (server.cases.rules.due_key); "detain" above is the rights holder's reply.
    "case_notify": DeadlineRule(
        label="rights holder notified in writing of the detained goods",
        working_days=1,
        source=f"site policy ({_IPR_REGULATION}第十六条 asks for notice 立即 (at once) and sets no period)",
    ),
    "case_release": DeadlineRule(
        label="goods not confirmed counterfeit released",
        working_days=1,
        source=f"site policy ({_IPR_REGULATION}第十六条、第二十四条 require release and set no period)",
    ),
}


class Jurisdiction(BaseModel):
    """A legal system a site works under: its name and its deadlines by key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=100, description="the jurisdiction's name")
    deadlines: dict[str, DeadlineRule] = Field(
        default_factory=dict,
        description="legal deadlines by key (review outcomes such as detain, seize, refer, "
        "open_inspection, and the steps of a case); each cites its source",
    )


def default_jurisdictions() -> dict[str, Jurisdiction]:
    return {DEFAULT_JURISDICTION: Jurisdiction(name="中华人民共和国", deadlines=dict(CN_DEADLINES))}


class SiteConfig(BaseModel):
    """What differs between sites: the local time zone and the jurisdiction."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(
        DEFAULT_TIMEZONE, description="IANA time zone of the site: its days, hours and deadlines"
    )
    jurisdiction: str = Field(
        DEFAULT_JURISDICTION, description="key of [server.jurisdictions] whose deadlines apply here"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)
