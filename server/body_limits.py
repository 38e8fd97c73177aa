"""ASGI middleware: refuse bodies over the limit (413), decode gzip request bodies (bombs included),
and refuse JSON bodies over the JSON size limit or nested too deep, before any parser sees them."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.json_depth import is_json_body, nests_deeper_than

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Bodies larger than this are scanned for depth on a worker thread, not on the event loop.
INLINE_SCAN_BYTES = 256 * 1024


async def _reply(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Buffers request bodies up to `limit_for(path)` bytes (after gzip decoding) and hands them on plain;
    JSON bodies, on any path, must also fit `json_limit` bytes and nest at most `json_depth` levels."""

    def __init__(
        self, app: ASGIApp, limit_for: Callable[[str], int], json_limit: int, json_depth: int
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.json_limit = json_limit
        self.json_depth = json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = [(k.lower(), v) for k, v in scope["headers"]]
        encoding = next((v for k, v in headers if k == b"content-encoding"), b"").strip().lower()
        if encoding not in (b"", b"identity", b"gzip"):
            await _reply(send, 415, "unsupported_encoding", "Content-Encoding must be gzip or identity")
            return
        declared = next((v for k, v in headers if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reply(send, 413, "too_large", f"request body over {limit} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reply(send, 413, "too_large", f"request body over {limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if encoding == b"gzip":
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = decoder.decompress(body, limit + 1)
            except zlib.error:
                await _reply(send, 400, "bad_gzip", "request body is not valid gzip")
                return
            if len(body) > limit or decoder.unconsumed_tail:
                await _reply(send, 413, "too_large", f"decoded request body over {limit} bytes")
                return
        content_type = next((v for k, v in headers if k == b"content-type"), None)
        if is_json_body(content_type, body):
            if len(body) > self.json_limit:
                await _reply(send, 413, "too_large", f"JSON body over {self.json_limit} bytes")
                return
            if len(body) > INLINE_SCAN_BYTES:
                deep = await anyio.to_thread.run_sync(nests_deeper_than, body, self.json_depth)
            else:
                deep = nests_deeper_than(body, self.json_depth)
            if deep:
                why = f"JSON nested deeper than {self.json_depth} levels (or brackets unbalanced)"
                await _reply(send, 422, "too_deep", why)
                return
        new_headers = [(k, v) for k, v in headers if k not in (b"content-encoding", b"content-length")]
        new_headers.append((b"content-length", str(len(body)).encode()))
        scope = {**scope, "headers": new_headers}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
