"""Log output of parcelguard's programs (server and station): plain text (default) or JSON lines.

Both formats go through the same logging configuration, handed to uvicorn so that its own loggers
and every worker process write the same shape as ours. Secrets never reach a log line: passwords in
URLs and bearer tokens are masked before the line is written, whichever logger wrote them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """`text` with URL passwords and bearer tokens replaced by ***."""
    return _BEARER.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


class TextFormatter(logging.Formatter):
    """The plain-text line every parcelguard command writes, with secrets masked."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and the traceback if any."""

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


class CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each line to whatever `sys.stderr` is then (a service manager or a test may replace it),
    never to a stream that was closed since the handler was made."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def logging_config(fmt: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the root logger and uvicorn's loggers, in format `fmt`."""
    formatter = {"()": f"{__name__}.{'JsonFormatter' if fmt == 'json' else 'TextFormatter'}"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {
            "main": {"()": f"{__name__}.CurrentStderrHandler", "formatter": "main"}
        },
        "root": {"handlers": ["main"], "level": level},
        # uvicorn's loggers write through the root handler instead of their own coloured ones. Its
        # access lines carry query strings: the server's own request log (log_requests) omits them.
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }


def use_json_logs() -> None:
    """Switch every handler of the root logger to JSON lines (level and destination stay): `edge run`."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())
