"""Log lines of the station: one JSON object per line when asked (`edge run --log-format json`).

The same shape as the server's (server.logformat): time (UTC, ISO 8601), level, logger, message, and
the traceback if any; URL passwords and bearer tokens are masked. The server may import only the wire
contract from edge, so each program keeps its own few lines of this.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """`text` with URL passwords and bearer tokens replaced by ***."""
    return _BEARER.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def use_json_logs() -> None:
    """Switch every handler of the root logger to JSON lines (the level and destination stay)."""
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
