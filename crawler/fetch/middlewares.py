"""Small Scrapy middlewares: route through a configured proxy; link captures to article items."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.downloadermiddlewares.robotstxt import (
    RobotsTxtMiddleware as _ScrapyRobotsTxtMiddleware,
)
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.response import response_status_message
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from crawler.options import setting_float

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.robotstxt import RobotParser
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    proxy: str  # "": requests go out directly

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> ProxyConfig:
        raw = settings.get("ARCHIVE_PROXY") or ""
        proxy = raw if isinstance(raw, str) else ""
        try:
            parts = urlsplit(proxy)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            _ = parts.port  # a port out of range raises ValueError
        except ValueError:
            ok = False
        if raw and not ok:
            raise ValueError(
                f"ARCHIVE_PROXY must be an http(s)://host:port URL (or empty), got {raw!r}"
            )
        return cls(proxy)


@dataclass(frozen=True, slots=True)
class RetryConfig:
    backoff: float
    max_wait: float

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RetryConfig:
        return cls(
            backoff=setting_float(settings, "ARCHIVE_RETRY_BACKOFF", minimum=0),
            max_wait=setting_float(settings, "ARCHIVE_RETRY_MAX_WAIT", minimum=0),
        )


class ArchiveProxyMiddleware:
    """Sends every request through ``ARCHIVE_PROXY`` (the loopback mirror in tests and demo).

    Runs before Scrapy's HttpProxyMiddleware, which then does the CONNECT tunnelling for
    https. A request that names its own ``proxy`` in meta keeps it.
    """

    def __init__(self, proxy: str) -> None:
        self.proxy = proxy

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        proxy = ProxyConfig.from_settings(crawler.settings).proxy
        if not proxy:
            raise NotConfigured("ARCHIVE_PROXY is not set")
        return cls(proxy)

    def process_request(self, request: Request) -> None:
        request.meta.setdefault("proxy", self.proxy)


class RobotsTxtMiddleware(_ScrapyRobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, with every waiter getting the parsed rules.

    In Scrapy 2.19, requests that arrive while a host's robots.txt is still downloading all
    await one shared Deferred; only the first gets the parser, the rest get None and go out
    unchecked. Here each later waiter waits on a Deferred of its own and then reads the parser
    that the middleware stored before firing the shared one.
    """

    async def robot_parser(self, request: Request) -> RobotParser | None:
        netloc = urlparse_cached(request).netloc
        pending = self._parsers.get(netloc)
        if isinstance(pending, Deferred):
            waiter: Deferred[None] = Deferred()

            def release(result: Any) -> Any:
                waiter.callback(None)
                return result

            pending.addBoth(release)
            await maybe_deferred_to_future(waiter)
            parser = self._parsers.get(netloc)
            return None if isinstance(parser, Deferred) else parser
        return await super().robot_parser(request)


def retry_after_seconds(value: bytes | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryAfterMiddleware(RetryMiddleware):
    """Scrapy's retries with backoff: wait what ``Retry-After`` asks (429, 503), else 1, 2, 4 s….

    A wait longer than ``ARCHIVE_RETRY_MAX_WAIT`` gives up at once (counted) rather than hold
    a request for hours; the next scheduled crawl tries again. Only the retried request waits:
    the download slot is free meanwhile.
    """

    def __init__(self, settings: BaseSettings, config: RetryConfig | None = None) -> None:
        super().__init__(settings)
        # Parsed once at the crawl's start (crawler/crawl/config.py); here only without it.
        config = config or RetryConfig.from_settings(settings)
        self.max_wait = config.max_wait
        self.backoff = config.backoff

    async def process_response(  # type: ignore[override]
        self, request: Request, response: Response
    ) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        retry = self._retry(request, response_status_message(response.status))
        if retry is None:
            return response
        asked = None
        if response.status in (429, 503):
            asked = retry_after_seconds(response.headers.get(b"Retry-After"))
        attempt = int(retry.meta.get("retry_times", 1))
        wait = asked if asked is not None else self.backoff * 2 ** (attempt - 1)
        stats = self.crawler.stats
        assert stats is not None
        if wait > self.max_wait:
            stats.inc_value("archive/retry/gave_up_long_wait")
            logger.warning(
                "Not retrying %s: the server asks to wait %.0f s (limit %.0f s)",
                request.url,
                wait,
                self.max_wait,
                extra={"spider": self.crawler.spider},
            )
            return response
        stats.inc_value("archive/retry/waits")
        stats.inc_value("archive/retry/wait_ms", int(wait * 1000))
        if wait > 0:
            from twisted.internet import reactor

            await maybe_deferred_to_future(deferLater(reactor, wait))
        return retry
