"""Checks on unsafe requests to the terminal: the exact JSON media type, and the terminal's own origin."""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


class RequestRefused(PermissionError):
    """An unsafe request failed a check; carries the HTTP status and a stable code for the error shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def is_json_media_type(values: list[str]) -> bool:
    """True only for one Content-Type header of `application/json`, optionally with charset=utf-8.

    The whole media type is compared, not searched for: `text/plain; charset=application/json` is a
    text/plain body (which a foreign page may send without a CORS preflight), so it is refused.
    """
    if len(values) != 1:
        return False
    media, *params = values[0].split(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params:
        name, sep, value = param.partition("=")
        if not sep or name.strip().lower() != "charset":
            return False
        if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, lower case, default port dropped; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """IP literals and localhost always; a DNS name only when configured (DNS rebinding needs a name)."""
    host = host.strip().lower()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if not name:
        return False
    if name == "localhost" or name in allowed or host in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostGuard:
    """Refuses requests for a Host the terminal does not answer to; plain ASGI, so streams are unaffected."""

    def __init__(self, app: Any, allowed: frozenset[str]) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1")
            if not host_allowed(host, self.allowed):
                body = json.dumps(
                    {
                        "error": {
                            "code": "unknown_host",
                            "message": "this terminal does not answer to that host name",
                        }
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def check_origin(
    origin: str | None, referer: str | None, fetch_site: str | None, own: str, allowed: frozenset[str]
) -> None:
    """Refuse a request that a browser says came from another site.

    Origin decides when present; otherwise Referer; when both are absent (older clients, privacy
    settings) the request goes on to the session and CSRF token checks, which a foreign page cannot pass.
    """
    if fetch_site is not None and fetch_site.strip().lower() == "cross-site":
        raise RequestRefused(403, "foreign_origin", "request from another site refused")
    ok = {own, *allowed}
    for header, value in (("Origin", origin), ("Referer", referer)):
        if value is None:
            continue
        if origin_of(value) not in ok:
            raise RequestRefused(403, "foreign_origin", f"{header} is not this terminal's origin")
        return
