"""Run one crawl of one site in this process (the unit the CLI and the scheduler start)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from crawler.constants import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from crawler.options import parse_pairs


def crawl_failed(report: dict[str, Any] | None) -> str | None:
    """Why a finished crawl counts as failed, or None."""
    if report is None:
        return "no crawl report (the crawl did not open)"
    if report["finish_reason"] != "finished":
        return f"finish reason {report['finish_reason']}"
    if not report["pages"]["responses"]:
        return f"no page could be fetched ({report['pages']['download_errors']} download errors)"
    if report["warc"]["errors"]:
        return f"{report['warc']['errors']} WARC write errors"
    if problems := report.get("health", {}).get("problems"):
        return "; ".join(problems)
    if report["errors"]["spider_exceptions"]:
        return f"{report['errors']['spider_exceptions']} spider exceptions"
    return None


def run_crawl(
    site: str,
    *,
    settings_overrides: dict[str, str] | None = None,
    spider_args: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any] | None]:
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    from crawler.crawl.archive import ArchiveCrawl
    from crawler.crawl.config import check_settings
    from crawler.logs import install_json_handler, log_format

    settings = get_project_settings()
    settings.setdict(settings_overrides or {}, priority="cmdline")
    try:
        fmt = log_format(settings.get("ARCHIVE_LOG_FORMAT"))
    except ValueError as exc:
        print(f"error: {site}: {exc}", file=sys.stderr)
        return EXIT_USAGE, None
    if settings.getdict("ADDONS"):
        # The add-on's defaults apply only once a crawler is made: check them on a copy now,
        # so bad configuration is one clear line and exit 2, not a traceback.
        from crawler.crawl.addon import Addon

        probe = settings.copy()
        Addon().update_settings(probe)
        errors = check_settings(probe)
        if errors:
            for error in errors:
                print(f"error: {site}: {error}", file=sys.stderr)
            return EXIT_USAGE, None
    if fmt == "json":
        # Ours in place of Scrapy's root handler, first: Scrapy's banner lines are JSON too.
        settings.set("LOG_INSTALL_ROOT_HANDLER", False, priority="cmdline")
        install_json_handler(settings)
    process = CrawlerProcess(settings)
    try:
        crawler = process.create_crawler(site)
    except KeyError:
        names = ", ".join(sorted(process.spider_loader.list()))
        print(f"error: no spider named {site!r} (known: {names})", file=sys.stderr)
        return EXIT_USAGE, None
    try:
        process.crawl(crawler, **(spider_args or {}))
    except ValueError as exc:  # a spider argument failed validation
        print(f"error: {site}: {exc}", file=sys.stderr)
        return EXIT_USAGE, None
    process.start()
    root = crawler.get_extension(ArchiveCrawl) if crawler.extensions is not None else None
    report = root.ledger.report if root is not None else None
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
    ns = parser.parse_args(argv)
    code, report = run_crawl(
        ns.site,
        settings_overrides=parse_pairs(ns.settings, "-s"),
        spider_args=parse_pairs(ns.args, "-a"),
    )
    if ns.report_file is not None and report is not None:
        ns.report_file.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return code


if __name__ == "__main__":
    sys.exit(main())
