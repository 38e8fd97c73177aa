"""A site's time zone, local day and legal deadlines, resolved from the server settings."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from server.jurisdictions import DeadlineRule, SiteConfig
from server.settings import ServerSettings


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def site_config(settings: ServerSettings, site_id: str) -> SiteConfig:
    """The site's own settings, or the server's defaults for a site the configuration does not list."""
    listed = settings.sites.get(site_id)
    if listed is not None:
        return listed
    return SiteConfig(timezone=settings.timezone, jurisdiction=settings.jurisdiction)


def site_zone(settings: ServerSettings, site_id: str) -> ZoneInfo:
    return _zone(site_config(settings, site_id).timezone)


def local_day(at: datetime, zone: ZoneInfo) -> str:
    """The calendar day (YYYY-MM-DD) an aware time falls on at the site."""
    return at.astimezone(zone).date().isoformat()


def deadline_rule(settings: ServerSettings, site_id: str, key: str) -> DeadlineRule | None:
    """The site's jurisdiction's rule for `key`, or None where it sets none."""
    return settings.jurisdictions[site_config(settings, site_id).jurisdiction].deadlines.get(key)


def due_at(settings: ServerSettings, site_id: str, key: str, start: datetime) -> datetime | None:
    """When the rule `key` falls due at this site for something that started at `start`."""
    rule = deadline_rule(settings, site_id, key)
    return None if rule is None else rule.due_at(start, site_zone(settings, site_id))
