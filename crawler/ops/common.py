"""What the operator's commands share: the spiders' names and the settings a crawl would see."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import Any

from crawler.options import parse_pairs


def spider_names() -> list[str]:
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    from scrapy.spiderloader import get_spider_loader
    from scrapy.utils.project import get_project_settings

    return sorted(get_spider_loader(get_project_settings()).list())


def archive_settings(pairs: Sequence[str]) -> Any:
    """The settings a crawl would see: project, add-on defaults, environment, ``-s`` pairs."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    from scrapy.utils.project import get_project_settings

    from crawler.crawl.addon import Addon

    settings = get_project_settings()
    Addon().update_settings(settings)
    settings.setdict(parse_pairs(list(pairs), "-s"), priority="cmdline")
    return settings


def settings_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-s", dest="settings", action="append", default=[], metavar="NAME=VALUE", help=what
    )


def command_settings(ns: argparse.Namespace) -> tuple[Any, dict[str, str]]:
    """(resolved settings, overrides for the crawls) from --store, --proxy and -s; logging set."""
    from crawler.logs import log_format, setup_logging
    from crawler.options import parse_pairs

    overrides = parse_pairs(list(ns.settings), "-s")
    if getattr(ns, "store", None):
        overrides["ARCHIVE_STORE_URI"] = ns.store
    if getattr(ns, "proxy", None):
        overrides["ARCHIVE_PROXY"] = ns.proxy
    settings = archive_settings([f"{k}={v}" for k, v in overrides.items()])
    setup_logging(log_format(settings.get("ARCHIVE_LOG_FORMAT")), logging.INFO)
    return settings, overrides
