"""Cookie challenges in front of a site: recognised, solved in the browser, the request retried.

en.irna.ir sits behind ArvanCloud, which answers a client without its cookies with a short
page whose script computes the ``__arcsjs`` / ``__arcsjsc`` cookies, sets them and reloads
(``../shared/SOURCES.md``). The challenge page is archived like any response (WarcCapture
writes it before this middleware runs) but never reaches the spider. The page is solved in
Chromium (crawler/fetch/render.py ``solve_challenge``), not by evaluating its script in an embedded
engine: the browser is a dependency already, it runs the script as any visitor's browser
would (``document.cookie``, ``location``, whatever the script is obfuscated into) where an
engine would need the expressions cut out of the page by pattern, and it is given the page
as received, so solving costs no second request. Once solved the cookies go into Scrapy's
cookie jar (as the retried request's cookies) and every later request is plain HTTP; the
site asking again (the cookies expired) is solved again. Requests answered by the challenge
while another one was being solved are retried with the new cookies, without a new solve.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.httpobj import urlparse_cached

from crawler.constants import (
    META_CHALLENGE_SOLVES,
    STATS_CHALLENGE_FAILED,
    STATS_CHALLENGE_SEEN,
    STATS_CHALLENGE_SOLVED,
)
from crawler.fetch.render import Renderers
from crawler.options import setting_float, setting_int

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.capture.exchange import Exchange

logger = logging.getLogger(__name__)

# ArvanCloud's challenge: a short page naming itself, setting these cookies.
MAX_CHALLENGE_BYTES = 5000
MARKER = b"arvancloud"
COOKIES = ("__arcsjs", "__arcsjsc")
CHALLENGE_KIND = "arvancloud-cookie"  # the WARC-Challenge value of its capture
_META_GENERATION = "archive_challenge_generation"  # solves of the host when the request left


class ChallengeError(IgnoreRequest):
    """A challenge page that could not be solved: the request is given up."""


def is_challenge(response: Response) -> bool:
    """Whether a response is ArvanCloud's cookie challenge rather than the page asked for."""
    if "rendered" in response.flags:
        return False
    return challenge_body(response.body)


def challenge_body(body: bytes) -> bool:
    """Whether a (decoded) response body is ArvanCloud's cookie challenge page."""
    if len(body) >= MAX_CHALLENGE_BYTES:
        return False
    low = body.lower()
    return MARKER in low and b"<script" in low and COOKIES[0].encode() in low


def exchange_is_challenge(exchange: Exchange) -> bool:
    """The same test on an exchange as it came over the wire (the browser's, through the
    egress proxy): its body decoded, at most as far as a challenge page can be long."""
    if exchange.status != 200 or not exchange.body:
        return False
    codings = [
        token.strip().lower()
        for name, value in exchange.response_headers
        if name.strip().lower() == b"content-encoding"
        for token in value.decode("latin-1").split(",")
        if token.strip()
    ]
    body = exchange.body
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip", "deflate"):
            wbits = 16 + zlib.MAX_WBITS if coding != "deflate" else zlib.MAX_WBITS
            try:
                body = zlib.decompressobj(wbits).decompress(body, MAX_CHALLENGE_BYTES)
            except zlib.error:
                return False
        elif coding == "br":
            import brotli

            try:
                body = brotli.Decompressor().process(body, output_buffer_limit=MAX_CHALLENGE_BYTES)
            except brotli.error:
                return False
        elif coding != "identity":
            return False
    return challenge_body(body)


@dataclass(frozen=True, slots=True)
class ChallengeConfig:
    timeout: float
    max_solves: int

    @classmethod
    def from_settings(cls, settings: Any) -> ChallengeConfig:
        return cls(
            timeout=setting_float(settings, "ARCHIVE_CHALLENGE_TIMEOUT", above=0),
            max_solves=setting_int(settings, "ARCHIVE_CHALLENGE_MAX_SOLVES", minimum=1),
        )


class ChallengeMiddleware:
    """Solves a host's challenge once in the browser and retries the request with its cookies."""

    def __init__(
        self, crawler: Crawler, timeout: float, max_solves: int, renderers: Renderers
    ) -> None:
        self.crawler = crawler
        self.renderers = renderers
        self.timeout = timeout
        self.max_solves = max_solves
        self._solves: dict[str, int] = {}
        self._cookies: dict[str, list[dict[str, object]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        config = ChallengeConfig.from_settings(crawler.settings)
        return cls(crawler, config.timeout, config.max_solves, Renderers())

    def process_request(self, request: Request) -> None:
        host = urlparse_cached(request).hostname or ""
        request.meta[_META_GENERATION] = self._solves.get(host, 0)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if not is_challenge(response):
            return response
        stats = self.crawler.stats
        assert stats is not None
        stats.inc_value(STATS_CHALLENGE_SEEN)
        host = urlparse_cached(request).hostname or ""
        tries = int(request.meta.get(META_CHALLENGE_SOLVES, 0))
        if tries >= self.max_solves:
            stats.inc_value(STATS_CHALLENGE_FAILED)
            raise ChallengeError(
                f"{request.url}: still a challenge after {tries} solves"
                " (ARCHIVE_CHALLENGE_MAX_SOLVES)"
            )
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            if request.meta.get(_META_GENERATION, 0) == self._solves.get(host, 0):
                self._cookies[host] = await self._solve(request, response)
                self._solves[host] = self._solves.get(host, 0) + 1
                stats.inc_value(STATS_CHALLENGE_SOLVED)
        retry = request.replace(cookies=self._cookies[host], dont_filter=True)
        retry.meta[META_CHALLENGE_SOLVES] = tries + 1
        return retry

    async def _solve(self, request: Request, response: Response) -> list[dict[str, object]]:
        stats = self.crawler.stats
        assert stats is not None
        renderer = self.renderers.browser()  # built, Playwright imported, on first need
        if renderer is None:
            stats.inc_value(STATS_CHALLENGE_FAILED)
            raise ChallengeError(f"{request.url}: a challenge, and no browser handler to solve it")
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, values in response.headers.items()
            for value in values
        ]
        # Loaded with the browser handler (crawler/fetch/chromium.py), not by every crawl.
        from playwright.async_api import Error as PlaywrightError

        started = time.monotonic()
        try:
            cookies = await renderer.solve_challenge(
                response.url, response.status, headers, response.body, COOKIES, self.timeout
            )
        except (PlaywrightError, TimeoutError, NotConfigured) as exc:
            stats.inc_value(STATS_CHALLENGE_FAILED)
            logger.error("Could not solve the challenge of %s: %s", request.url, exc)
            raise ChallengeError(f"{request.url}: challenge not solved: {exc}") from exc
        logger.info(
            "Solved the cookie challenge of %s in the browser in %.1f s",
            urlparse_cached(request).netloc,
            time.monotonic() - started,
        )
        return [dict(c) for c in cookies]
