"""How deep a JSON text nests, found without recursion, so that a parser is never handed a body that
would exhaust its stack (`[` x 200,000)."""

from __future__ import annotations

import json
import re

# A JSON string, escapes included: brackets inside strings do not nest anything.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# Every opening bracket becomes "(" and every closing one ")"; all other bytes are dropped.
_AS_PARENS = bytes.maketrans(b"[]{}", b"()()")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nests_deeper_than(body: bytes, limit: int) -> bool:
    """True when the JSON in `body` nests arrays and objects more than `limit` levels (or its
    brackets do not balance, which no parser accepts either). Runs in C-speed passes, at most
    `limit` of them over the brackets alone."""
    text = _as_utf8(body)
    if text.count(b"[") + text.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", text).translate(_AS_PARENS, _NOT_BRACKETS)
    # Each pass removes the innermost pairs, one level of nesting; whatever is left after `limit`
    # passes was deeper. Mismatched kinds ("[}") are left to the parser, which refuses them.
    for _ in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"()", b"")
        if len(shorter) == len(brackets):
            return True  # nothing pairs up: unbalanced
        brackets = shorter
    return bool(brackets)


def _as_utf8(body: bytes) -> bytes:
    # Parsers also take UTF-16 and UTF-32, where a quote byte can be half of another character:
    # scan the text the parser will see, not its bytes.
    encoding = json.detect_encoding(body)
    if encoding in ("utf-8", "utf-8-sig"):
        return body
    return body.decode(encoding, errors="replace").encode("utf-8")


def is_json_body(content_type: bytes | str | None, body: bytes) -> bool:
    """Whether FastAPI (or a handler) will parse this body as JSON: a JSON media type, or none at
    all with a body that opens like JSON."""
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    media = (content_type or "").split(";")[0].strip().lower()
    if not media:
        return body.lstrip()[:1] in (b"[", b"{")
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
