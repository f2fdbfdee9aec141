"""Log lines as text or as one JSON object per line (``ARCHIVE_LOG_FORMAT``), and a crawl's log.

Every line has one timestamp format (UTC, ISO 8601, milliseconds) and, in a crawl, says whose
it is: the site and the crawl id, Scrapy's own lines included (a filter on the handler adds them
to every record). A crawl's whole log goes to its own file (``<log dir>/<site>/<crawl id>.log``,
the newest ``ARCHIVE_LOG_KEEP`` per site kept) and only its problems to the terminal, unless
``ARCHIVE_CRAWL_LOG=stderr`` sends all of it to stderr (one stream for a log collector).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOG_FORMATS = ("text", "json")
CRAWL_LOG_MODES = ("file", "stderr")
_HANDLER_NAME = "newsarchive"
# LogRecord attributes that are not the caller's ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Extras that are objects, not facts: their repr would say nothing (Scrapy passes these).
_OBJECT_EXTRAS = frozenset({"crawler", "spider", "request", "response", "failure"})


def timestamp(created: float) -> str:
    """``2026-12-07T02:16:38.123Z``: the one timestamp format of every log line."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _site(record: logging.LogRecord) -> str | None:
    site = getattr(record, "site", None)
    if site:
        return str(site)
    spider = getattr(record, "spider", None)  # Scrapy's extra={"spider": spider}
    name = getattr(spider, "name", None)
    return str(name) if name else None


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> [<site> <crawl id>] <logger>: <message>``."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        context = " ".join(str(x) for x in (_site(record), getattr(record, "crawl_id", None)) if x)
        line = f"{timestamp(record.created)} {record.levelname} "
        line += f"[{context}] " if context else ""
        line += f"{record.name}: {record.message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...}``: extras (site, crawl_id) become fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if site := _site(record):
            entry["site"] = site
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_") or key in _OBJECT_EXTRAS or key == "site":
                continue
            if isinstance(value, (str, int, float, bool)) or value is None:
                entry[key] = value
            elif isinstance(value, (list, tuple, dict)):
                entry[key] = json.loads(json.dumps(value, default=str))
            # other objects: a repr says nothing a reader can use
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class ContextFilter(logging.Filter):
    """Adds the crawl's site and id to every record that has none (Scrapy's own lines)."""

    def __init__(self, site: str, crawl_id: str) -> None:
        super().__init__()
        self.site = site
        self.crawl_id = crawl_id

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "site", None):
            record.site = _site(record) or self.site
        if not getattr(record, "crawl_id", None):
            record.crawl_id = self.crawl_id
        return True


def log_format(value: object = None) -> str:
    """The configured format: ``value`` if given, else ``$ARCHIVE_LOG_FORMAT``, else text."""
    given = value or os.environ.get("ARCHIVE_LOG_FORMAT") or "text"
    chosen = str(given).strip().lower() if isinstance(given, str) else ""
    if chosen not in LOG_FORMATS:
        raise ValueError(f"ARCHIVE_LOG_FORMAT must be text or json, got {given!r}")
    return chosen


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def log_level(value: object, name: str = "--log-level") -> int:
    """A level name (DEBUG, INFO, WARNING, ERROR, CRITICAL) or number, as logging takes it."""
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text)
    if not isinstance(level, int):
        raise ValueError(f"{name} must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}")
    return level


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


def prune_logs(directory: Path, keep: int) -> int:
    """Delete all but the newest ``keep`` crawl logs in ``directory``; how many went."""
    try:
        logs = sorted(directory.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return 0
    gone = 0
    for old in logs[keep:]:
        try:
            old.unlink()
            gone += 1
        except OSError:
            pass
    return gone


def install_crawl_logging(
    settings: Any,
    *,
    fmt: str,
    site: str,
    crawl_id: str,
    log_file: Path | None,
    terminal_level: int | None,
) -> None:
    """A crawl's handlers, before Scrapy's first line (``LOG_INSTALL_ROOT_HANDLER`` off).

    ``log_file``: the whole log at ``LOG_LEVEL`` there, and ``terminal_level`` and above to
    stderr (None: nothing). Without a file, everything at ``LOG_LEVEL`` goes to stderr.
    """
    level = settings.get("LOG_LEVEL") or "INFO"
    context = ContextFilter(site, crawl_id)
    handlers: list[logging.Handler] = []
    if not settings.getbool("LOG_ENABLED", True):
        handlers.append(logging.NullHandler())
    elif log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        to_file.setLevel(level)
        handlers.append(to_file)
        if terminal_level is not None:
            shown = logging.StreamHandler(sys.stderr)
            shown.setLevel(max(terminal_level, log_level(level, "LOG_LEVEL")))
            handlers.append(shown)
    else:
        to_stderr = logging.StreamHandler(sys.stderr)
        to_stderr.setLevel(level)
        handlers.append(to_stderr)
    shape = formatter(fmt)
    for handler in handlers:
        handler.setFormatter(shape)
        handler.addFilter(context)
        handler.set_name(_HANDLER_NAME)
        logging.root.addHandler(handler)
    logging.root.setLevel(logging.NOTSET)
