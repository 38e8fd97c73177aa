"""Turns a raw health detail (errno text, HTTP status, JSON) into a cause the operator can act on.

The terminal shows the cause as a sentence in the operator's language, with what to do, and keeps
the raw detail as a tooltip for technicians. Details that match nothing are shown as they are,
except ones that look like machine output (JSON, bare errno), which get a generic cause.
"""

from __future__ import annotations

import re
from functools import lru_cache

from edge.web.i18n import table

# First match wins: the order puts specific causes (a bad token, a full disk) before the generic
# ones that their texts also contain ("HTTP 401: {...}", "OSError: [Errno 28] ...").
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(rx, re.IGNORECASE))
    for kind, rx in (
        ("auth", r"HTTP 40[13]\b|bad token|invalid token|unauthori[sz]ed"),
        ("disk_full", r"no space left|errno 28\b|disk full|ENOSPC"),
        ("permission", r"permission denied|errno 13\b|access denied|EACCES"),
        ("refused", r"connection refused|errno 111\b|ECONNREFUSED|winerror 10061"),
        ("name", r"name or service not known|name resolution|nodename nor servname|errno -[23]\b"),
        ("unreachable", r"network is unreachable|no route to host|errno 11[03]\b|errno 101\b|EHOSTUNREACH"),
        ("timeout", r"timed out|timeout|no ACK within|no answer"),
        ("no_device", r"no such file or directory|no such device|errno 2\b|errno 19\b|could not open port"),
        ("server_error", r"HTTP 5\d\d\b"),
    )
)
MACHINE_TEXT = re.compile(r"^\s*[\[{]|\{\s*\"|\[Errno|Traceback")
# The devices' own plain states ("connected", "replay finished", "last divert DIVERTED") are the
# catalog's `state_*` entries: their English words, with `{name}` for a value, are the patterns.
STATE_PREFIX = "state_"
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# `{n}` stands for a count: "camera folder x: no more images" is not "{n} images".
NUMBER = r"\d+(?:\.\d+)?"


@lru_cache(maxsize=1)
def _state_patterns() -> list[tuple[re.Pattern[str], str]]:
    english = table("en")
    found = []
    for key, text in english.items():
        if key.startswith(STATE_PREFIX):
            parts = PLACEHOLDER.split(text)
            rx = "".join(
                re.escape(p) if i % 2 == 0 else f"(?P<{p}>{NUMBER if p == 'n' else '.+?'})"
                for i, p in enumerate(parts)
            )
            found.append((re.compile(f"^{rx}$", re.IGNORECASE), key))
    return sorted(found, key=lambda p: -len(p[0].pattern))


def plain_state(detail: str) -> dict[str, object] | None:
    """{"key", "args"} of the plain state `detail` names, for the terminal to show in its language."""
    text = detail.strip()
    for rx, key in _state_patterns():
        found = rx.match(text)
        if found:
            return {"key": key, "args": found.groupdict()}
    return None


def cause_of(device: str, detail: str) -> str | None:
    """The i18n key of the cause of `detail` on `device` (device-specific when one exists), or None."""
    if not detail:
        return None
    state = plain_state(detail)
    if state is not None:
        return str(state["key"])
    kind = next((k for k, rx in PATTERNS if rx.search(detail)), None)
    if kind is None:
        return "cause_unexpected" if MACHINE_TEXT.search(detail) else None
    specific = f"cause_{kind}_{device}"
    return specific if specific in table("en") else f"cause_{kind}"
