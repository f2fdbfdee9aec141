"""Run one crawl of one site in this process (the unit the CLI and the scheduler start)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler.constants import (
    CATALOG_MISMATCH,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    REPLAY_UNAVAILABLE,
    SITE_BUSY,
)
from crawler.logs import log_level
from crawler.options import parse_pairs


def crawl_failed(report: dict[str, Any] | None) -> str | None:
    """Why a finished crawl counts as failed, or None."""
    if report is None:
        return "no crawl report (the crawl did not open)"
    if report["finish_reason"] != "finished":
        return f"finish reason {report['finish_reason']}"
    # The site's health problems name their causes ("2 of 2 sources failed (tls: 2)").
    problems = report.get("health", {}).get("problems") or []
    if not report["pages"]["responses"]:
        why = f"no page could be fetched ({report['pages']['download_errors']} download errors)"
        return "; ".join([why, *problems])
    if refused := report.get("upload", {}).get("refused"):
        # Never parked silently: a key that holds other bytes is another crawl's object.
        return (
            f"{len(refused)} objects refused by the store (their keys hold other bytes; kept "
            f"in the spool): {', '.join(refused[:3])}" + (" …" if len(refused) > 3 else "")
        )
    if report["warc"]["errors"]:
        return f"{report['warc']['errors']} WARC write errors"
    if problems:
        return "; ".join(problems)
    if report["errors"]["spider_exceptions"]:
        return f"{report['errors']['spider_exceptions']} spider exceptions"
    return None


@dataclass(frozen=True, slots=True)
class Locations:
    """Where the crawls with some settings keep things: store, spool, catalog, logs."""

    store_uri: str
    spool: Path
    catalog_url: str | None  # None: the catalog is switched off
    log_dir: Path


def locations(settings: Any) -> Locations:
    """Resolved as the crawl resolves them (raises StoreError for an unusable store URI)."""
    from crawler.layout import default_catalog_url, log_dir_for, spool_dir_for
    from crawler.store.base import local_root, store_options
    from crawler.store.uri import open_store

    store = open_store(str(settings.get("ARCHIVE_STORE_URI") or ""), store_options(settings))
    root = local_root(store)
    configured = str(settings.get("ARCHIVE_SPOOL_DIR") or "")
    spool = spool_dir_for(root, Path(configured).expanduser() if configured else None)
    url: str | None = None
    if settings.getbool("ARCHIVE_CATALOG_ENABLED", True):
        url = str(settings.get("ARCHIVE_CATALOG_URL") or "") or default_catalog_url(
            root, spool, store.uri
        )
    logs = str(settings.get("ARCHIVE_LOG_DIR") or "").strip()
    return Locations(
        store.uri, spool, url, log_dir_for(root, spool, Path(logs).expanduser() if logs else None)
    )


def replay_errors(settings: Any, sites: list[str]) -> list[str]:
    """Why these sites cannot be replayed from the archive the settings name, one line each
    (nothing when the settings replay nothing). Reads only: no catalog is made or upgraded."""
    from crawler.crawl.config import replay_requested

    if not replay_requested(settings):
        return []
    from crawler.crawl.replay import replay_problem
    from crawler.store.base import StoreError, store_options
    from crawler.store.uri import open_store

    crawl_id = str(settings.get("ARCHIVE_REPLAY_CRAWL_ID") or "") or None
    if crawl_id is not None and len(sites) > 1:
        return [
            f"--crawl-id {crawl_id} names one crawl, of one site: give one site, not {len(sites)}"
        ]
    try:
        where = locations(settings)
        store = open_store(where.store_uri, store_options(settings))
    except StoreError as exc:
        return [str(exc)]
    if where.catalog_url is None:
        return []  # the configuration check says the replay needs the catalog
    errors = []
    for site in sites:
        problem = replay_problem(where.catalog_url, store, site, crawl_id)
        if problem is not None:
            errors.append(f"{site}: cannot replay: {problem}")
    return errors


def write_replay_report(report: dict[str, Any], directory: Path, keep: int) -> Path | None:
    """A replay's report beside its log (the store gets nothing); the newest ``keep`` kept."""
    from crawler.util import json_bytes

    path = directory / f"{report['crawl_id']}.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_bytes(json_bytes(report))
        old = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in old[keep:]:
            stale.unlink(missing_ok=True)
    except OSError as exc:
        print(f"warning: the replay report was not written to {path}: {exc}", file=sys.stderr)
        return None
    return path


def run_crawl(
    site: str,
    *,
    settings_overrides: dict[str, str] | None = None,
    spider_args: dict[str, str] | None = None,
    terminal_level: int | None = logging.ERROR,
    progress_file: Path | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """One crawl in this process: its whole log to its own file (or stderr), the problems
    at ``terminal_level`` and above to stderr, its figures to ``progress_file`` each second."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    from crawler.crawl.archive import ArchiveCrawl
    from crawler.crawl.config import CrawlLogConfig, check_settings, replay_requested
    from crawler.crawl.ledger import new_crawl_id
    from crawler.layout import crawl_log_file, replay_log_dir
    from crawler.logs import install_crawl_logging, log_format, prune_logs

    settings = get_project_settings()
    settings.setdict(settings_overrides or {}, priority="cmdline")
    try:
        fmt = log_format(settings.get("ARCHIVE_LOG_FORMAT"))
    except ValueError as exc:
        print(f"error: {site}: {exc}", file=sys.stderr)
        return EXIT_USAGE, None
    # The add-on's defaults apply only once a crawler is made: check them on a copy now,
    # so bad configuration is one clear line and exit 2, not a traceback.
    from crawler.crawl.addon import Addon

    probe = settings.copy()
    Addon().update_settings(probe)
    errors = check_settings(probe) or replay_errors(probe, [site])
    if errors:
        for error in errors:
            print(f"error: {site}: {error}", file=sys.stderr)
        return EXIT_USAGE, None
    from scrapy.spiderloader import get_spider_loader

    known = get_spider_loader(settings).list()
    if site not in known:
        print(
            f"error: no spider named {site!r} (known: {', '.join(sorted(known))})", file=sys.stderr
        )
        return EXIT_USAGE, None
    crawl_id = str(settings.get("ARCHIVE_CRAWL_ID") or "")
    if not crawl_id:
        crawl_id = new_crawl_id(site)
        settings.set("ARCHIVE_CRAWL_ID", crawl_id, priority="cmdline")
    log_config = CrawlLogConfig.from_settings(probe)
    replaying = replay_requested(probe)
    log_dir = locations(probe).log_dir
    # A replay's log and report go apart from the site's crawl logs, pruned apart.
    directory = replay_log_dir(log_dir, site) if replaying else log_dir / site
    log_file = None
    if log_config.mode == "file" and not settings.get("LOG_FILE"):
        prune_logs(directory, log_config.keep - 1)  # this crawl's makes ARCHIVE_LOG_KEEP
        log_file = crawl_log_file(directory.parent, site, crawl_id)
    elif settings.get("LOG_FILE"):
        log_file = Path(str(settings.get("LOG_FILE")))
    # Ours in place of Scrapy's root handler, first: Scrapy's banner lines carry the crawl too.
    settings.set("LOG_INSTALL_ROOT_HANDLER", False, priority="cmdline")
    install_crawl_logging(
        settings,
        fmt=fmt,
        site=site,
        crawl_id=crawl_id,
        log_file=log_file,
        terminal_level=terminal_level,
    )
    process = CrawlerProcess(settings)
    try:
        crawler = process.create_crawler(site)
    except KeyError:
        names = ", ".join(sorted(process.spider_loader.list()))
        print(f"error: no spider named {site!r} (known: {names})", file=sys.stderr)
        return EXIT_USAGE, None
    progress = None
    if progress_file is not None:
        from crawler.crawl.progress import ProgressWriter

        # Held here: Scrapy's signals keep only weak references to their receivers.
        progress = ProgressWriter(crawler, progress_file, log_file)
    try:
        process.crawl(crawler, **(spider_args or {}))
    except ValueError as exc:  # a spider argument failed validation
        print(f"error: {site}: {exc}", file=sys.stderr)
        return EXIT_USAGE, None
    process.start()
    del progress
    root = crawler.get_extension(ArchiveCrawl) if crawler.extensions is not None else None
    report = root.ledger.report if root is not None else None
    if report is not None and log_file is not None:
        report["log_file"] = str(log_file)
    if report is not None and replaying:
        written = write_replay_report(report, directory, log_config.keep)
        report["report_file"] = str(written) if written is not None else None
    if report is not None and report["finish_reason"] in (CATALOG_MISMATCH, REPLAY_UNAVAILABLE):
        return EXIT_USAGE, report  # said at ERROR, in one line, as the crawl opened
    if report is not None and report["finish_reason"] == SITE_BUSY:
        return EXIT_BUSY, report  # its note says who holds the site (the log, the terminal)
    return (EXIT_FAILED if crawl_failed(report) else EXIT_OK), report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.crawl.runner",
        description="Run one crawl of one site in this process (used by `newsarchive crawl`).",
    )
    parser.add_argument("site")
    parser.add_argument("-a", dest="args", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("-s", dest="settings", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--report-file", type=Path, help="also write the crawl report here (JSON)")
    parser.add_argument(
        "--terminal-level",
        default="ERROR",
        help="with the log in a file: lines at this level and above also go to stderr (NONE: none)",
    )
    parser.add_argument(
        "--progress-file", type=Path, help="the crawl's figures, rewritten each second (JSON)"
    )
    ns = parser.parse_args(argv)
    terminal: int | None = None
    if ns.terminal_level.upper() != "NONE":
        try:
            terminal = log_level(ns.terminal_level, "--terminal-level")
        except ValueError as exc:
            parser.error(str(exc))
    code, report = run_crawl(
        ns.site,
        settings_overrides=parse_pairs(ns.settings, "-s"),
        spider_args=parse_pairs(ns.args, "-a"),
        terminal_level=terminal,
        progress_file=ns.progress_file,
    )
    if ns.report_file is not None and report is not None:
        ns.report_file.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return code


if __name__ == "__main__":
    sys.exit(main())
