"""Sites' time zones and jurisdictions: deadlines fall due in the site's own calendar and cite a source."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from server.jurisdictions import CN_DEADLINES, DeadlineRule
from server.settings import ServerSettings
from server.sites import deadline_rule, due_at, local_day, site_zone

KEYS = {"secret_key": "k" * 8 + "Q1w2E3r4T5y6U7i8O9p0" * 2, "hmac_key": "h" * 8 + "A1s2D3f4G5h6J7k8L9z0" * 2}
TWENTY_DAYS = {"label": "s", "days": 20, "source": "a rule"}
TWO_PERIODS = {"label": "s", "days": 5, "hours": 2, "source": "a rule"}
KEYS["encryption_key"] = "e" * 8 + "Z1x2C3v4B5n6M7q8W9e0" * 2


def settings(**fields: object) -> ServerSettings:
    return ServerSettings(**KEYS, **fields)


def test_every_builtin_deadline_cites_a_source() -> None:
    for key, rule in CN_DEADLINES.items():
        assert len(rule.source) > 10, key


def test_a_beijing_day_runs_midnight_to_midnight_local() -> None:
    s = settings()
    zone = site_zone(s, "SZX-HUB1")
    assert local_day(datetime(2026, 3, 1, 15, 59, tzinfo=UTC), zone) == "2026-03-01"
    assert local_day(datetime(2026, 3, 1, 16, 0, tzinfo=UTC), zone) == "2026-03-02"


def test_working_days_skip_the_sites_weekend() -> None:
    rule = DeadlineRule(label="x", working_days=3, source="test rule")
    # Thursday 10:00 in Shanghai (02:00 UTC): Fri, Mon, Tue -> Tuesday 10:00 local.
    start = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    assert rule.due_at(start, ZoneInfo("Asia/Shanghai")) == datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
    # Friday 23:00 UTC is already Saturday in Shanghai: Mon, Tue, Wed.
    late = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    shanghai = ZoneInfo("Asia/Shanghai")
    assert rule.due_at(late, shanghai).astimezone(shanghai).date().isoformat() == "2026-12-09"


def test_site_overrides_and_partial_jurisdiction_keep_builtins() -> None:
    s = settings(
        sites={"URC1": {"timezone": "Asia/Urumqi"}},
        jurisdictions={"CN": {"name": "CN", "deadlines": {"seize": TWENTY_DAYS}}},
    )
    assert site_zone(s, "URC1") == ZoneInfo("Asia/Urumqi")
    assert deadline_rule(s, "URC1", "seize").days == 20  # type: ignore[union-attr]
    assert deadline_rule(s, "URC1", "refer") == CN_DEADLINES["refer"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert due_at(s, "any", "nothing-here", start) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "not a known IANA time zone"),
        ({"sites": {"A1": {"jurisdiction": "XX"}}}, "jurisdiction 'XX'"),
        ({"jurisdiction": "XX"}, "jurisdiction 'XX'"),
        ({"jurisdictions": {"HK": {"name": "HK", "deadlines": {"s": {"label": "s", "days": 5}}}}}, "source"),
        ({"jurisdictions": {"HK": {"name": "HK", "deadlines": {"s": TWO_PERIODS}}}}, "exactly one"),
        ({"sites": {"bad site!": {}}}, "letters, digits"),
    ],
)
def test_bad_site_settings_are_refused_clearly(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**fields)
