"""The browser handler: scrapy-playwright for the requests that ask to be rendered.

What it does, and what it takes from scrapy-playwright, is told in crawler/fetch/render.py.
This module is apart from the settings and the middleware there because it imports Playwright
and scrapy-playwright (about 11 MiB): it is imported when a crawl first needs its browser (a
page to render, a challenge to solve; ``render.Renderers``), never by a crawl that renders
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from playwright.async_api import Request as PlaywrightRequest
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse
from scrapy.http.headers import Headers
from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

from crawler.capture.browser import page_records
from crawler.capture.exchange import CaptureInfo, Exchange
from crawler.capture.records import format_warc_date, utc_now
from crawler.capture.session import CaptureSession
from crawler.constants import (
    META_ARTICLE_KEY,
    META_CAPTURE,
    META_RENDER_READY,
    STATS_RENDER_NOT_READY,
    STATS_RENDER_PAGES,
    STATS_RENDER_RESOURCES,
    STATS_RENDER_TIMEOUT,
    STATS_WARC_ERRORS,
)
from crawler.fetch.download import ArchiveHTTP11DownloadHandler
from crawler.fetch.egress import EGRESS_HEADER, EgressProxy
from crawler.fetch.render import RenderConfig, Renderers, RenderTimeoutError

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

STATS_RENDER_FAILED_RESOURCES = "archive/render/failed_resources"
_POLL = 0.05  # seconds between checks of a page's network activity


class _PageWatch:
    """One page's network activity (for the idle wait) and its failed subresources."""

    def __init__(self, page: Page, types: dict[tuple[str, str], str]) -> None:
        self.inflight = 0
        self.last_change = time.monotonic()
        self.failed: list[str] = []  # "url (reason)"
        self.types = types
        page.on("request", self._started)
        page.on("requestfinished", self._finished)
        page.on("requestfailed", self._failed)
        page.on("response", self._answered)

    def _started(self, request: PlaywrightRequest) -> None:
        self.inflight += 1
        self.last_change = time.monotonic()
        # For the egress proxy's records: what the browser asked this URL for (a URL asked
        # for by several pages at once is asked for as the same type; the table stays small).
        if len(self.types) >= 10_000:
            self.types.clear()
        self.types[(request.method, request.url)] = request.resource_type

    def _finished(self, request: PlaywrightRequest) -> None:
        self.inflight -= 1
        self.last_change = time.monotonic()

    def _failed(self, request: PlaywrightRequest) -> None:
        self.inflight -= 1
        self.last_change = time.monotonic()
        if request.url.startswith(("http://", "https://")):
            self.failed.append(f"{request.url} ({request.failure or 'failed'})")

    def _answered(self, response: Any) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.url} (HTTP {response.status})")

    async def wait_idle(self, quiet: float, deadline: float) -> bool:
        """Wait until no request has been open for ``quiet`` seconds; False at the deadline."""
        while time.monotonic() < deadline:
            if self.inflight <= 0 and time.monotonic() - self.last_change >= quiet:
                return True
            await asyncio.sleep(_POLL)
        return False


class RenderingDownloadHandler(ScrapyPlaywrightDownloadHandler, ArchiveHTTP11DownloadHandler):  # type: ignore[misc]
    """scrapy-playwright for rendered requests; crawler/fetch/download.py's handler for the rest.

    ``capture`` writes what the browser received (None: nothing is archived); ``renderers``
    is the crawl's shared browser (``Renderers``).
    """

    def __init__(
        self,
        crawler: Crawler,
        capture: CaptureSession | None = None,
        renderers: Renderers | None = None,
        render: RenderConfig | None = None,
    ) -> None:
        super().__init__(crawler)
        self.capture = capture
        self.renderers = renderers or Renderers()
        # Parsed once at the crawl's start (crawler/crawl/config.py); here only without it.
        self.render = render or RenderConfig.from_settings(crawler.settings)
        settings = crawler.settings
        self._user_launch_options = dict(self.config.launch_options)
        self.config.launch_options = {**self.render.launch_options(), **self._user_launch_options}
        self.egress: EgressProxy | None = None
        self._types: dict[tuple[str, str], str] = {}  # (method, url) -> resource type
        self._article_urls: dict[str, str] = {}  # a rendered article's URL -> its key
        if not settings.get("PLAYWRIGHT_MAX_PAGES_PER_CONTEXT"):
            self.config.max_pages_per_context = self.render.max_pages
        if not settings.get("PLAYWRIGHT_MAX_CONTEXTS"):
            self.config.max_contexts = self.render.max_contexts
            self.context_semaphore = asyncio.Semaphore(self.render.max_contexts)
        if settings.get("PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT") is None:
            self.config.navigation_timeout_ms = self.render.page_timeout * 1000
        # The browser's own request headers (with our User-Agent, set on the context): the
        # archive records what the browser sent.
        if "PLAYWRIGHT_PROCESS_REQUEST_HEADERS" not in settings:
            self.process_request_headers = None
        self._user_abort: Any = getattr(self, "abort_request", None)
        self.abort_request = self._abort
        self._started = False
        self._start_lock = asyncio.Lock()
        self._generation = 0
        self._context_pages = 0
        # One browser per crawl: the first handler built (https or http) renders for both.
        self.renderers.claim(self)

    # -- life cycle ----------------------------------------------------------------------
    async def _maybe_launch_in_thread(self) -> None:
        """Playwright starts with the first rendered page, not with every crawl."""

    def _engine_started(self) -> None:
        """As above, for Scrapy versions before 2.14."""

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            if not Path(self.render.executable).exists():
                raise NotConfigured(
                    f"Chromium not found at {self.render.executable} (ARCHIVE_RENDER_EXECUTABLE;"
                    " install it: apt-get install chromium)"
                )
            self.egress = EgressProxy(
                self.render.egress_config(),
                self.netguard,
                self.capture_exchange if self.capture is not None else None,
                stats=self.stats,
                hints=self._hints,
            )
            await self.egress.start()
            options = self.render.launch_options(self.egress.chromium_args())
            self.config.launch_options = {**options, **self._user_launch_options}
            await self._launch()
            self._started = True

    async def close(self) -> None:
        if self._started:
            await super().close()
        else:  # no browser was started: only the plain handler's connections to close
            await ArchiveHTTP11DownloadHandler.close(self)
        if self.egress is not None:
            await self.egress.close()
            self.egress = None

    def capture_exchange(self, exchange: Exchange) -> CaptureInfo | None:
        """An exchange the egress proxy relayed: archived as the Scrapy path archives one."""
        capture = self.capture
        self.stats.inc_value(STATS_RENDER_RESOURCES)
        if capture is None or capture.writer is None:
            return None
        key = self._article_urls.get(exchange.url) if exchange.method == "GET" else None
        if key is not None:
            exchange = dataclasses.replace(exchange, article_key=key)
        return capture.capture(exchange)

    def _hints(self, method: str, url: str) -> dict[str, str] | None:
        kind = self._types.get((method, url))
        return {"WARC-Resource-Type": kind} if kind else None

    # -- rendering -----------------------------------------------------------------------
    def _context_name(self) -> str:
        """The context for the next page: a fresh one every ARCHIVE_RENDER_CONTEXT_PAGES."""
        if self._context_pages >= self.render.context_pages:
            self._generation += 1
            self._context_pages = 0
        self._context_pages += 1
        return f"archive-render-{self._generation}"

    async def _abort(self, request: PlaywrightRequest) -> bool:
        if request.resource_type in self.render.block:
            return True
        # Private addresses are refused by the egress proxy, for every connection Chromium
        # makes (its redirects and preconnects too, which never reach this hook).
        if self._user_abort is not None:
            result = self._user_abort(request)
            return bool(await result if asyncio.iscoroutine(result) else result)
        return False

    async def download_request(self, request: Request) -> Response:
        if not request.meta.get("playwright"):
            plain: Response = await ArchiveHTTP11DownloadHandler.download_request(self, request)
            return plain
        owner = self.renderers.owner
        if owner is not None and owner is not self:
            shared: Response = await owner.download_request(request)
            return shared
        await self.netguard.check(request)
        await self._ensure_started()
        request.meta["playwright_context"] = self._context_name()
        request.meta.setdefault("playwright_context_kwargs", self.render.context_options())
        response: Response = await super().download_request(request)
        return response

    async def _download_request_with_page(
        self, request: Request, page: Page, spider: Spider
    ) -> Response:
        config = self.render
        context_name = str(request.meta.get("playwright_context"))
        watch = _PageWatch(page, self._types)
        article_key = request.meta.get(META_ARTICLE_KEY)
        if article_key is not None:
            self._article_urls[request.url] = str(article_key)
        started = time.monotonic()
        deadline = started + config.page_timeout
        browser = page.context.browser
        agent = f"Chromium/{browser.version if browser else '?'}"
        agent += f" (Playwright/{package_version('playwright')}; newsarchive)"
        try:
            try:
                navigation = await page.goto(
                    request.url, wait_until="load", timeout=config.page_timeout * 1000
                )
            except PlaywrightTimeoutError:
                self._abandon(request, watch, page.url, agent)
                raise RenderTimeoutError(
                    f"{request.url} did not finish loading within {config.page_timeout:g} s"
                ) from None
            if navigation is None:
                raise IgnoreRequest(f"{request.url}: the browser made no navigation request")
            if await navigation.header_value(EGRESS_HEADER) is not None:
                # The egress proxy answered for the site (a refused address, a failed
                # connection): a failed page, named with the proxy's reason, never archived
                # as the site's page.
                reason = (await navigation.text()).strip()[:300]
                raise IgnoreRequest(f"{request.url}: not rendered: {reason}")
            ready = await self._wait_ready(page, request.meta.get(META_RENDER_READY), deadline)
            quiet = await watch.wait_idle(config.idle, deadline)
            dom = await page.content()
            shot = await page.screenshot(type="png", full_page=True) if config.screenshot else None
            document_headers = await navigation.headers_array()
            await self._redirect_meta(request, navigation.request)
        finally:
            with contextlib.suppress(PlaywrightError):
                await page.close()
            self.stats.inc_value("playwright/page_count/closed")
            await self._retire(context_name)
            self._article_urls.pop(request.url, None)
        request.meta["download_latency"] = time.monotonic() - started
        fields: dict[str, str | list[str]] = {}
        if not ready:
            fields["render-note"] = "not ready: no element matched the ready selector in time"
        elif not quiet:
            fields["render-note"] = "network still busy at the page timeout"
        headers = Headers(
            [
                (h["name"], h["value"])
                for h in document_headers
                if h["name"].lower() not in ("content-encoding", "content-length", "content-type")
                and not h["name"].startswith(":")
            ]
        )
        headers["Content-Type"] = "text/html; charset=utf-8"
        response = HtmlResponse(
            url=page.url,
            status=navigation.status,
            headers=headers,
            body=dom.encode("utf-8"),
            encoding="utf-8",
            request=request,
            flags=["rendered"],
        )
        self._archive(request, response, watch, dom, shot, agent, fields)
        self.stats.inc_value(STATS_RENDER_PAGES)
        return response

    async def _wait_ready(self, page: Page, selector: object, deadline: float) -> bool:
        """Wait for the spider's ready selector (if any); False if it never matched."""
        if not selector:
            return True
        remaining = max(deadline - time.monotonic(), 0.1)
        try:
            await page.wait_for_selector(str(selector), state="attached", timeout=remaining * 1000)
        except PlaywrightTimeoutError:
            self.stats.inc_value(STATS_RENDER_NOT_READY)
            logger.warning("%s: no %r after %g s; archived as it is", page.url, selector, remaining)
            return False
        return True

    async def _retire(self, context_name: str) -> None:
        """Close a context that is no longer given pages once its last page is closed."""
        if context_name == f"archive-render-{self._generation}":
            return
        wrapper = self.context_wrappers.get(context_name)
        if wrapper is not None and not wrapper.context.pages:
            with contextlib.suppress(PlaywrightError):
                await wrapper.context.close()

    @staticmethod
    async def _redirect_meta(request: Request, final: PlaywrightRequest) -> None:
        urls: list[str] = []
        reasons: list[int | None] = []
        hop = final.redirected_from
        while hop is not None:
            urls.append(hop.url)
            answer = await hop.response()
            reasons.append(answer.status if answer is not None else None)
            hop = hop.redirected_from
        if urls:
            request.meta["redirect_times"] = len(urls)
            request.meta["redirect_urls"] = urls[::-1]
            request.meta["redirect_reasons"] = reasons[::-1]

    # -- archiving -----------------------------------------------------------------------
    def _document(self, url: str) -> CaptureInfo | None:
        """The egress proxy's capture of the page's document (its final URL)."""
        if self.egress is None:
            return None
        info = self.egress.captured.get(url)
        return info if isinstance(info, CaptureInfo) else None

    def _archive(
        self,
        request: Request,
        response: Response | None,
        watch: _PageWatch,
        dom: str | None,
        screenshot: bytes | None,
        agent: str,
        fields: dict[str, str | list[str]],
    ) -> None:
        """The browser's own records of the page (its exchanges are the egress proxy's)."""
        page_url = response.url if response is not None else request.url
        if watch.failed:
            # Each failed subresource is named once, with the page it belonged to.
            self.stats.inc_value(STATS_RENDER_FAILED_RESOURCES, len(watch.failed))
            fields["failed-resources"] = list(watch.failed)
            logger.warning(
                "%s: %d subresources failed: %s",
                page_url,
                len(watch.failed),
                "; ".join(watch.failed[:10]) + (" …" if len(watch.failed) > 10 else ""),
            )
        capture = self.capture
        if capture is None or capture.writer is None:
            return
        document = self._document(page_url)
        try:
            records = page_records(
                capture.builder,
                page_url=page_url,
                document_id=document.record_id if document is not None else None,
                page_id=str(uuid.uuid4()),
                browser=agent,
                date=utc_now(),
                dom=dom,
                screenshot=screenshot,
                fields=fields,
            )
        except ValueError as exc:
            logger.warning("not archiving the rendering of %s: %s", page_url, exc)
            self.stats.inc_value(STATS_WARC_ERRORS)
            return
        capture.submit(records.records)
        if response is None or document is None:
            return
        # The spider's capture: the document's response, with the DOM its text comes from.
        request.meta[META_CAPTURE] = dataclasses.replace(
            document,
            rendered_dom=records.dom_id,
            rendered_dom_uri=records.dom_uri,
            rendered_dom_date=format_warc_date(records.dom_date) if records.dom_date else None,
        )

    def _abandon(self, request: Request, watch: _PageWatch, url: str, agent: str) -> None:
        """A page past its timeout: what did arrive is archived (by the egress proxy), the
        page's metadata says so, and it is counted."""
        self.stats.inc_value(STATS_RENDER_TIMEOUT)
        logger.warning(
            "Abandoned %s: not loaded within %g s (%d requests open)",
            request.url,
            self.render.page_timeout,
            watch.inflight,
        )
        note: dict[str, str | list[str]] = {
            "render-result": f"abandoned: not loaded within {self.render.page_timeout:g} s"
        }
        self._archive(request, None, watch, None, None, agent, note)

    # -- cookie challenges ---------------------------------------------------------------
    async def solve_challenge(
        self,
        url: str,
        status: int,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        cookie_names: Sequence[str],
        timeout: float,
    ) -> list[dict[str, Any]]:
        """Run a challenge page in a fresh context and return the cookies its script set.

        The browser gets the page as already received (no second request) and nothing else:
        every other request, the script's reload included, is aborted.
        """
        await self._ensure_started()
        await self._maybe_launch_browser()
        context = await self.browser.new_context(**self.render.context_options())
        try:
            page = await context.new_page()
            served = False
            kept = {
                name: value
                for name, value in headers
                if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            }

            async def answer(route: Any) -> None:
                nonlocal served
                if not served and route.request.is_navigation_request():
                    served = True
                    await route.fulfill(status=status, headers=kept, body=body)
                else:
                    await route.abort()

            await page.route("**", answer)
            deadline = time.monotonic() + timeout
            with contextlib.suppress(PlaywrightError):
                await page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
            while True:
                found = {c.get("name"): c for c in await context.cookies([url])}
                if all(name in found for name in cookie_names):
                    return [
                        {
                            "name": c["name"],
                            "value": c["value"],
                            "domain": c["domain"],
                            "path": c["path"],
                            "secure": c["secure"],
                        }
                        for c in found.values()
                    ]
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the challenge set no cookie {', '.join(cookie_names)} in {timeout:g} s"
                    )
                await asyncio.sleep(_POLL)
        finally:
            with contextlib.suppress(PlaywrightError):
                await context.close()
