"""Log lines as text or as one JSON object per line (``ARCHIVE_LOG_FORMAT``)."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
_HANDLER_NAME = "newsarchive"
TEXT_FORMAT = "%(asctime)s [%(name)s] %(levelname)s: %(message)s"
# LogRecord attributes that are not the caller's ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...}``: extras (site, crawl_id) become fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if key == "spider":  # Scrapy's extra={"spider": spider}
                entry["site"] = getattr(value, "name", str(value))
            elif isinstance(value, (str, int, float, bool)) or value is None:
                entry[key] = value
            else:
                entry[key] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def log_format(value: object = None) -> str:
    """The configured format: ``value`` if given, else ``$ARCHIVE_LOG_FORMAT``, else text."""
    given = value or os.environ.get("ARCHIVE_LOG_FORMAT") or "text"
    chosen = str(given).strip().lower() if isinstance(given, str) else ""
    if chosen not in LOG_FORMATS:
        raise ValueError(f"ARCHIVE_LOG_FORMAT must be text or json, got {given!r}")
    return chosen


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def setup_logging(fmt: str, level: int | str = logging.INFO) -> None:
    """Root logging to stderr for the daemon and the commands."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:  # ours from an earlier call; others stay
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler logs every job added, started and ended at INFO: the daemon logs its own.
    # Its warnings stay (a start skipped because the site's last crawl is still running).
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def install_json_handler(settings: Any) -> None:
    """JSON lines for a crawl: in place of Scrapy's root handler (``LOG_FILE``, ``LOG_LEVEL``).

    Install it before the ``CrawlerProcess``, with ``LOG_INSTALL_ROOT_HANDLER`` off, so that
    Scrapy's own first lines (version banner, overridden settings) come out as JSON too.
    """
    filename = settings.get("LOG_FILE")
    handler: logging.Handler
    if filename:
        handler = logging.FileHandler(
            filename,
            mode="a" if settings.getbool("LOG_FILE_APPEND") else "w",
            encoding=settings.get("LOG_ENCODING") or "utf-8",
        )
    elif settings.getbool("LOG_ENABLED", True):
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.NullHandler()
    handler.setFormatter(JsonFormatter())
    handler.setLevel(settings.get("LOG_LEVEL") or "DEBUG")
    logging.root.setLevel(logging.NOTSET)
    logging.root.addHandler(handler)
