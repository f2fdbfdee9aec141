"""The newsarchive add-on: enables the crawl's composition root and its components in Scrapy.

Every archive component is enabled here, at a fixed order with ``priority="addon"`` so that
a project or spider can still name (or switch off) one; the root (``crawl/archive.py``) builds
and wires them for each crawl.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.utils.misc import load_object
from scrapy.utils.python import global_object_name

from crawler.options import archive_defaults, environment_overrides
from crawler.util import keep_tldextract_offline

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

# Output objects of one response handled at once (Scrapy's CONCURRENT_ITEMS, 100 by default).
CONCURRENT_ITEMS = 8
# Bytes of responses Scrapy's scraper holds before the engine starts no new request (Scrapy's
# SCRAPER_SLOT_MAX_ACTIVE_SIZE, 5,000,000). An article's response stays held until its text is
# committed, each body twice (the bytes and Scrapy's decoded text): with 5 MB a text crawl held
# ~80 pages at once where capture held ~45, 10 MiB more RSS (issue 22). 2 MB (~22 articles, the
# group commit's tenth of a second included) still keeps the text thread fed: the downloads in
# flight go on landing while the engine waits.
SCRAPER_SLOT_MAX_ACTIVE_SIZE = 2_000_000
# Scrapy's default extension that serves Python code over HTTP: the project switches it off
# (settings/), yet Scrapy imports its module to ask it, and with it aiohttp (7.5 MiB of every
# crawl's RSS, issue 22). Scrapy also imports every class EXTENSIONS names, even as None: so it
# leaves Scrapy's base list (EXTENSIONS_BASE) instead.
REMOTE_CONTROL = "scrapy.extensions.remote_control.RemoteControl"
# One extension: the composition root builds the run, capture, catalog and indexes itself.
EXTENSIONS = {"crawler.crawl.archive.ArchiveCrawl": 10}
ITEM_PIPELINES = {"crawler.crawl.pipeline.ArticlePipeline": 300}
DOWNLOADER_MIDDLEWARES = {
    "crawler.crawl.handlers.ArchiveProxyMiddleware": 740,
    # Marks requests to render; the browser handler does the rest.
    "crawler.crawl.handlers.RenderMiddleware": 745,
    # Below decompression (590) on the way in: it reads the challenge page's text.
    "crawler.crawl.handlers.ChallengeMiddleware": 585,
    # After redirects (600) on the way out: it sees the final 200 and its validators.
    "crawler.crawl.middlewares.ConditionalRequestMiddleware": 580,
}
SPIDER_MIDDLEWARES = {"crawler.crawl.middlewares.CaptureLinkMiddleware": 950}
# Scrapy's HTTP/1.1 handler plus the reason phrase (crawler/fetch/download.py), and Chromium for the
# requests that ask to be rendered (crawler/fetch/render.py).
DOWNLOAD_HANDLERS = {
    "http": "crawler.crawl.handlers.ArchiveDownloadHandler",
    "https": "crawler.crawl.handlers.ArchiveDownloadHandler",
}

# A crawl replayed from the archive (ARCHIVE_REPLAY_ENABLED): one handler for every scheme, so
# no request reaches a network; the replay pipeline in the article pipeline's place; none of the
# middlewares that only matter on the wire (proxy, render, challenge, conditional requests).
REPLAY_HANDLER = "crawler.crawl.handlers.ReplayDownloadHandler"
REPLAY_PIPELINE = (
    "crawler.crawl.pipeline.ArticlePipeline",
    "crawler.crawl.replay_pipeline.ReplayPipeline",
)
REPLAY_OFF_MIDDLEWARES = (
    "crawler.crawl.handlers.ArchiveProxyMiddleware",
    "crawler.crawl.handlers.RenderMiddleware",
    "crawler.crawl.handlers.ChallengeMiddleware",
    "crawler.crawl.middlewares.ConditionalRequestMiddleware",
    "crawler.crawl.handlers.RetryAfterMiddleware",
)
# The archive answers at once and the same way every time: no delay, no retry. At the
# "spider" priority: above the project module's politeness settings, below -s.
REPLAY_SETTINGS = {
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "RETRY_ENABLED": False,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
}


def _drop_remote_control(settings: BaseSettings) -> None:
    """Scrapy's remote control out of its base extensions while it is switched off, unless the
    project or spider names it in EXTENSIONS itself (then Scrapy decides, as before)."""
    try:
        if settings.getbool("REMOTE_CONTROL_ENABLED"):
            return
    except ValueError:  # not a boolean: Scrapy's own check says so, as without the add-on
        return
    named = settings.getdict("EXTENSIONS")
    if REMOTE_CONTROL in (k if isinstance(k, str) else global_object_name(k) for k in named):
        return
    base = settings.getdict("EXTENSIONS_BASE")
    if base.pop(REMOTE_CONTROL, None) is not None:
        settings.set("EXTENSIONS_BASE", base, priority="addon")


def _replaying(settings: BaseSettings) -> bool:
    try:
        return settings.getbool("ARCHIVE_REPLAY_ENABLED")
    except ValueError:  # said by the configuration check, which stops the crawl
        return False


def _replay(settings: BaseSettings) -> None:
    schemes = {*settings.getdict("DOWNLOAD_HANDLERS_BASE"), *settings.getdict("DOWNLOAD_HANDLERS")}
    # At the command line's priority: not even a -s DOWNLOAD_HANDLERS reaches the network.
    settings.set(
        "DOWNLOAD_HANDLERS", dict.fromkeys(sorted(schemes), REPLAY_HANDLER), priority="cmdline"
    )
    for name, value in REPLAY_SETTINGS.items():
        settings.set(name, value, priority="spider")
    live, replay = REPLAY_PIPELINE
    settings.set_in_component_priority_dict("ITEM_PIPELINES", load_object(live), None)
    settings.set_in_component_priority_dict(
        "ITEM_PIPELINES", load_object(replay), ITEM_PIPELINES[live]
    )
    for path in REPLAY_OFF_MIDDLEWARES:
        settings.set_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", load_object(path), None)


class Addon:
    """Enable with ``ADDONS = {"crawler.crawl.addon.Addon": 0}`` (settings/ does so)."""

    def __repr__(self) -> str:  # Scrapy logs the add-ons it enabled by their repr
        return "crawler.crawl.addon.Addon"

    def update_settings(self, settings: BaseSettings) -> None:
        keep_tldextract_offline()
        for name, value in archive_defaults().items():
            settings.set(name, value, priority="addon")
        # Scrapy starts CONCURRENT_ITEMS (100) asyncio tasks for every response's output, used
        # or not; a page here yields one item, a listing its requests: 8 keep every pipeline
        # busy, and the 92 tasks no page needed were a third of plain Scrapy's CPU (issue 22).
        settings.set("CONCURRENT_ITEMS", CONCURRENT_ITEMS, priority="addon")
        settings.set("SCRAPER_SLOT_MAX_ACTIVE_SIZE", SCRAPER_SLOT_MAX_ACTIVE_SIZE, priority="addon")
        # The environment beats the add-on defaults and the project module, not the command line.
        for name, value in environment_overrides().items():
            settings.set(name, value, priority="project")
        # Scrapy's robots.txt middleware lets concurrent first requests through unchecked.
        from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware as Stock

        from crawler.fetch.middlewares import RobotsTxtMiddleware

        # setdefault: a project that names the stock middleware itself keeps it.
        settings.setdefault_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", Stock, None)
        settings.setdefault_in_component_priority_dict(
            "DOWNLOADER_MIDDLEWARES", RobotsTxtMiddleware, 100
        )
        # Scrapy's retry middleware retries at once; ours waits (Retry-After, backoff).
        from scrapy.downloadermiddlewares.retry import RetryMiddleware as StockRetry

        from crawler.crawl.handlers import RetryAfterMiddleware

        settings.setdefault_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", StockRetry, None)
        settings.setdefault_in_component_priority_dict(
            "DOWNLOADER_MIDDLEWARES", RetryAfterMiddleware, 550
        )
        handlers = dict(settings.getdict("DOWNLOAD_HANDLERS"))
        for scheme, path in DOWNLOAD_HANDLERS.items():
            handlers.setdefault(scheme, path)
        settings.set("DOWNLOAD_HANDLERS", handlers, priority="addon")
        for setting, components in (
            ("EXTENSIONS", EXTENSIONS),
            ("ITEM_PIPELINES", ITEM_PIPELINES),
            ("DOWNLOADER_MIDDLEWARES", DOWNLOADER_MIDDLEWARES),
            ("SPIDER_MIDDLEWARES", SPIDER_MIDDLEWARES),
        ):
            for path, order in components.items():
                # setdefault: a project or spider that names the component (None = off) wins.
                settings.setdefault_in_component_priority_dict(setting, load_object(path), order)
        _drop_remote_control(settings)
        if _replaying(settings):
            _replay(settings)
