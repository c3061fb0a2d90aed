"""Logging: JSON lines (one event per line, with the request id) when not on a terminal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from control.auth import current_principal
from server import request_context


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_context.request_id.get(),
        }
        if (who := current_principal.get()) is not None:
            entry["org_id"] = str(who.org_id)
            entry[who.actor_type] = str(who.actor_id)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")


def configure_logging(level: str, fmt: str) -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Each access is already counted in metrics; the access log would double every line.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    # faster-whisper logs every utterance it decodes at INFO; our metrics count them instead.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
