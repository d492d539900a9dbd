"""Logging for every Sellerdesk process: plain lines for people, or one JSON object per line.

`SELLERDESK_LOG_JSON=true` switches to JSON (for log shippers); `SELLERDESK_LOG_LEVEL` sets the level.
Celery's own logging is pointed here too, so a worker's task lines come out in the same format.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "INFO", as_json: bool = False) -> None:
    """Replace the root logger's handlers with one stderr handler in the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(PLAIN))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty at INFO (httpx: one line per marketplace call; alembic: its migration context on every
    # schema check): at our INFO they would drown what matters.
    for name in ("httpx", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
