"""Device URL query options: typed, range-checked, and every unknown or repeated option is an error."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

from scanner_drivers.types import DeviceUrlError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class UrlOptions:
    """Takes options out of a URL's query one by one; `finish()` rejects whatever is left."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.parts = urlsplit(url)
        try:
            raw = parse_qs(self.parts.query, keep_blank_values=True, strict_parsing=bool(self.parts.query))
        except ValueError as exc:
            raise DeviceUrlError(f"cannot parse the options of {url}: {exc}") from exc
        for key, values in raw.items():
            if len(values) > 1:
                raise DeviceUrlError(f"option {key!r} given more than once in {url}")
        self._left = {k: v[0] for k, v in raw.items()}

    def _error(self, name: str, why: str) -> DeviceUrlError:
        return DeviceUrlError(f"option {name!r} {why} in {self.url}")

    def has(self, name: str) -> bool:
        return name in self._left

    def text(self, name: str, default: str) -> str:
        return self._left.pop(name, default)

    def optional_text(self, name: str) -> str | None:
        return self._left.pop(name, None)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self._left.pop(name, None)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise self._error(name, f"must be a number, not {raw!r}") from None
        if not low <= value <= high:
            raise self._error(name, f"must be between {low:g} and {high:g}, not {raw}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self._left.pop(name, None)
        if raw is None:
            return default
        try:
            value = int(raw, 0)
        except ValueError:
            raise self._error(name, f"must be a whole number, not {raw!r}") from None
        if not low <= value <= high:
            raise self._error(name, f"must be between {low} and {high}, not {raw}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self._left.pop(name, None)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise self._error(name, f"must be true or false, not {raw!r}")

    def choice(self, name: str, default: str, allowed: Iterable[str]) -> str:
        allowed = tuple(allowed)
        raw = self._left.pop(name, default)
        if raw not in allowed:
            raise self._error(name, f"must be one of {', '.join(allowed)}, not {raw!r}")
        return raw

    def finish(self) -> None:
        if self._left:
            raise DeviceUrlError(f"unknown option(s) {sorted(self._left)} in {self.url}")


def host_port(url: str, default_port: int | None = None) -> tuple[str, int]:
    """Host and port of a network URL; DeviceUrlError when either is missing or malformed."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise DeviceUrlError(f"bad port in {url}") from None
    host = parts.hostname
    if not host:
        raise DeviceUrlError(f"no host in {url}")
    if port is None:
        if default_port is None:
            raise DeviceUrlError(f"no port in {url}")
        port = default_port
    if port == 0:
        raise DeviceUrlError(f"port 0 is not a device port in {url}")
    return host, port
