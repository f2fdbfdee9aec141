"""Pages rendered in Chromium (scrapy-playwright), archived as what the browser received.

A request is rendered when its meta has ``archive_render`` (a spider with ``render_pages``
sets it on its listing and article requests); every other request goes to the plain
HTTP/1.1 handler (crawler/fetch/download.py), as without this module. Playwright is started on the
first rendered page only, with Debian's Chromium (``ARCHIVE_RENDER_EXECUTABLE``), and only
imported then: the browser handler is crawler/fetch/chromium.py, built on first need
(``Renderers``), so a crawl that renders nothing never loads Playwright or scrapy-playwright.

Chromium's only way out is the crawl's egress proxy (crawler/fetch/egress.py), started with
the browser: every connection it opens, redirects and preconnects included, is vetted by the
same netguard as Scrapy's, and every exchange is archived from the wire by the same capture
code (size cap, ``WARC-Truncated``, revisits, the head as received). This module adds what no
wire carries: the rendered DOM as a resource record concurrent to the document's response,
the screenshot, and a metadata record naming the subresources that failed
(crawler/capture/browser.py). The spider gets the DOM as an HtmlResponse flagged
``rendered``, which WarcCapture does not write again; its capture in the request's meta is
the document's response record, with the DOM record that the text refers to.

Limits: pages open at once (``ARCHIVE_RENDER_MAX_PAGES``), a fresh browser context after
``ARCHIVE_RENDER_CONTEXT_PAGES`` pages (a long crawl's memory does not grow), resource types
not fetched (``ARCHIVE_RENDER_BLOCK``), and a page timeout after which the page is abandoned
(counted, ``archive/render/timeout``) and the crawl goes on. A browser that crashes or
disconnects is launched again on the next page (scrapy-playwright's own handling).

What this takes from scrapy-playwright, checked against its 0.0.48 (the pinned version):
- Public: the handler's ``download_request`` and ``close``, the ``PLAYWRIGHT_*`` settings, the
  ``playwright``, ``playwright_context`` and ``playwright_context_kwargs`` meta keys, and the
  ``abort_request`` hook that ``PLAYWRIGHT_ABORT_REQUEST`` fills.
- Private, for want of a public hook (0.0.48 has none for these):
  ``_download_request_with_page`` (what a page's navigation returns: the page must be watched
  from before the navigation to its close, a page past its timeout must still be archived,
  and the DOM is archived as a resource record; the public
  ``playwright_page_init_callback``, ``playwright_page_methods`` and
  ``playwright_include_page`` give the page but not its timeout, nor its responses once
  scrapy-playwright has closed it); ``_maybe_launch_in_thread`` and ``_engine_started`` (no
  setting starts the browser on the first rendered page instead of with every crawl);
  ``_launch``, ``_maybe_launch_browser``, ``browser``, ``context_wrappers`` and ``config``
  (starting the browser late, a fresh context every ``ARCHIVE_RENDER_CONTEXT_PAGES`` pages, and
  solving a challenge in it). None of them touches what is archived: the egress proxy does.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self
from urllib.parse import urlsplit

from scrapy.exceptions import IgnoreRequest

from crawler.constants import META_RENDER
from crawler.fetch.egress import EgressConfig
from crawler.options import setting_bool, setting_float, setting_int

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

# Chromium flags for a crawler: no sandbox (containers), no GPU, no traffic of its own.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--headless",
    # Nothing of Chromium's own on the wire: the egress proxy's log shows only the pages' hosts.
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-pings",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--safebrowsing-disable-auto-update",
    # A page's scripts get a bounded heap: a runaway page fails, the browser stays up.
    "--js-flags=--max-old-space-size=512",
)
# Playwright's resource types (Request.resource_type).
RESOURCE_TYPES = frozenset(
    {
        "document",
        "stylesheet",
        "image",
        "media",
        "font",
        "script",
        "texttrack",
        "xhr",
        "fetch",
        "eventsource",
        "websocket",
        "manifest",
        "other",
    }
)


class RenderTimeoutError(IgnoreRequest):
    """A page did not finish loading within ARCHIVE_RENDER_PAGE_TIMEOUT: abandoned."""


def _positive(settings: BaseSettings, name: str, *, integer: bool = False) -> float:
    if integer:
        return setting_int(settings, name, minimum=1)
    return setting_float(settings, name, above=0)


def _names(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise TypeError(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


def _is_loopback_proxy(proxy: str) -> bool:
    host = urlsplit(proxy).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class RenderConfig:
    """The ARCHIVE_RENDER_* settings, checked (settings/defaults.py documents each)."""

    enabled: bool
    executable: str
    page_timeout: float
    idle: float
    max_pages: int
    max_contexts: int
    context_pages: int
    block: frozenset[str]
    max_body: int
    screenshot: bool
    trusted_spki: tuple[str, ...]
    proxy: str
    user_agent: str

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RenderConfig:
        raw_block = settings.get("ARCHIVE_RENDER_BLOCK")
        raw_spki = settings.get("ARCHIVE_RENDER_TRUSTED_SPKI")
        known = ", ".join(sorted(RESOURCE_TYPES))
        try:
            block = frozenset(t.lower() for t in _names(raw_block))
        except TypeError:
            raise ValueError(
                f"ARCHIVE_RENDER_BLOCK must be resource types, comma-separated ({known}), "
                f"got {raw_block!r}"
            ) from None
        unknown = sorted(block - RESOURCE_TYPES)
        if unknown:
            raise ValueError(
                f"ARCHIVE_RENDER_BLOCK has unknown resource types {unknown} (known: {known}), "
                f"got {raw_block!r}"
            )
        if "document" in block:
            raise ValueError(
                "ARCHIVE_RENDER_BLOCK must not block 'document' (the page itself), "
                f"got {raw_block!r}"
            )
        try:
            spki = _names(raw_spki)
        except TypeError:
            raise ValueError(
                "ARCHIVE_RENDER_TRUSTED_SPKI must be base64 SHA-256 SPKI hashes, "
                f"comma-separated, got {raw_spki!r}"
            ) from None
        for pin in spki:
            try:
                ok = len(base64.b64decode(pin, validate=True)) == 32
            except binascii.Error:
                ok = False
            if not ok:
                raise ValueError(
                    "ARCHIVE_RENDER_TRUSTED_SPKI must be base64 SHA-256 SPKI hashes, "
                    f"comma-separated: {pin!r} is no base64 SHA-256 SPKI hash"
                )
        proxy = str(settings.get("ARCHIVE_PROXY") or "")
        if spki and not _is_loopback_proxy(proxy):
            raise ValueError(
                "ARCHIVE_RENDER_TRUSTED_SPKI is only for the loopback mirror: "
                f"ARCHIVE_PROXY must be a loopback proxy, got {proxy or 'none'!r}"
            )
        executable = str(settings.get("ARCHIVE_RENDER_EXECUTABLE") or "")
        if not executable or not Path(executable).is_absolute():
            raise ValueError(
                "ARCHIVE_RENDER_EXECUTABLE must be the absolute path of the Chromium binary, "
                f"got {executable!r}"
            )
        return cls(
            enabled=setting_bool(settings, "ARCHIVE_RENDER_ENABLED"),
            executable=executable,
            page_timeout=_positive(settings, "ARCHIVE_RENDER_PAGE_TIMEOUT"),
            idle=_positive(settings, "ARCHIVE_RENDER_IDLE"),
            max_pages=int(_positive(settings, "ARCHIVE_RENDER_MAX_PAGES", integer=True)),
            max_contexts=int(_positive(settings, "ARCHIVE_RENDER_MAX_CONTEXTS", integer=True)),
            context_pages=int(_positive(settings, "ARCHIVE_RENDER_CONTEXT_PAGES", integer=True)),
            block=block,
            max_body=int(_positive(settings, "ARCHIVE_RENDER_MAX_BODY", integer=True)),
            screenshot=setting_bool(settings, "ARCHIVE_RENDER_SCREENSHOT"),
            trusted_spki=spki,
            proxy=proxy,
            user_agent=str(settings.get("USER_AGENT") or ""),
        )

    def launch_options(self, egress_args: Sequence[str] = ()) -> dict[str, Any]:
        """Chromium's options; ``egress_args`` point it at the crawl's egress proxy, the only
        certificate key it trusts (the proxy's) included. The upstream proxy and the mirror's
        pins are the egress proxy's business (``egress_config``)."""
        return {
            "executable_path": self.executable,
            "headless": True,
            "args": [*CHROMIUM_ARGS, *egress_args],
        }

    def egress_config(self) -> EgressConfig:
        return EgressConfig(
            max_body=self.max_body,
            upstream=self.proxy,
            # Only the mirror's own certificates; every other certificate error stays an error.
            upstream_pins=self.trusted_spki,
            read_timeout=self.page_timeout,
        )

    def context_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            # Service workers would answer fetches the page's events never see.
            "service_workers": "block",
            "accept_downloads": False,
        }
        if self.user_agent:
            options["user_agent"] = self.user_agent
        return options


class RenderMiddleware:
    """Marks requests that ask for rendering (``archive_render``) for the browser handler.

    Checks the ARCHIVE_RENDER_* settings when the crawl starts (a bad value stops it with the
    setting's name). With ``ARCHIVE_RENDER_ENABLED`` off they are fetched plainly.
    """

    def __init__(self, config: RenderConfig) -> None:
        self.config = config

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(RenderConfig.from_settings(crawler.settings))

    def process_request(self, request: Request) -> None:
        if self.config.enabled and request.meta.get(META_RENDER):
            request.meta["playwright"] = True


class Browser(Protocol):
    """What the crawl asks of its browser handler (crawler/fetch/chromium.py
    ``RenderingDownloadHandler``, not imported here: it imports Playwright)."""

    async def download_request(self, request: Request) -> Response: ...

    async def solve_challenge(
        self,
        url: str,
        status: int,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        cookie_names: Sequence[str],
        timeout: float,
    ) -> list[dict[str, Any]]: ...


class Renderers:
    """The crawl's one browser, shared: Scrapy builds a handler per scheme (http, https), and
    the first one built renders for both; the challenge middleware solves in it too. One per
    crawl, made by the composition root and given to each of them.

    The browser handler (crawler/fetch/chromium.py) imports Playwright and scrapy-playwright
    (about 11 MiB), so it is built on first need: a plain handler ``offer``s how to build it,
    and ``browser`` builds it for the first rendered page or challenge. A crawl that renders
    nothing and meets no challenge never imports them.
    """

    def __init__(self) -> None:
        self.owner: Browser | None = None
        self._make: Callable[[], Browser] | None = None

    def claim(self, handler: Browser) -> Browser:
        if self.owner is None:
            self.owner = handler
        return self.owner

    def offer(self, make: Callable[[], Browser]) -> None:
        """How to build the browser handler, should a page need it (the first offer stays)."""
        if self._make is None:
            self._make = make

    def browser(self) -> Browser | None:
        """The crawl's browser handler, built now if it was offered and not built yet."""
        if self.owner is None and self._make is not None:
            self.claim(self._make())
        return self.owner
