"""president.ir English (``/en/``): the Iranian presidency's site, listing-driven.

Discovery: the ``/en/`` homepage and the ``/en/archive`` news listing with its pages (the site
has no sitemap; the RSS feed is only a candidate). Article key: the numeric id of
``https://president.ir/en/<id>`` (no slug); the legacy ``/en/?ArtID=<id>`` form of the 2010s
site gives the same key. Photo galleries share the ``/en/<id>`` shape and are told apart by the
body class (``news-detail`` for news). Pages carry a date only (``2025-06-12``), read as Tehran
midnight.

The site is a JavaScript shell: listing and article pages hold only the ``<head>`` until a
script fills the body from a JSON endpoint, so they are rendered in Chromium
(``render_pages``; crawler/fetch/render.py archives the browser's traffic and the DOM).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import parse_qsl, urlsplit

from crawler.crawl.spider import NewsSpider, body_classes
from crawler.text.extract import SiteRules

if TYPE_CHECKING:
    from scrapy.http import Response

HOSTS = frozenset({"president.ir", "www.president.ir"})
TIMEZONE = "Asia/Tehran"

_ARTICLE_RE = re.compile(r"^/en/(\d{1,9})/?$")
# The legacy form: /en/?ArtID=<id> (also seen as /en/default.aspx?ArtID=<id>)
_LEGACY_PATHS = frozenset({"/en/", "/en", "/en/default.aspx"})
_TRACKING = re.compile(r"^(?:utm_[a-z]+|fbclid|gclid)$")

RULES = SiteRules(
    title=("h1.news-title", 'meta[property="og:title"]'),
    body=("div.news-body",),
    published=("div.news-date time", 'meta[property="article:published_time"]'),
    tags=("ul.news-tags li a",),
    section=("ol.breadcrumb li:last-child a",),
    timezone=TIMEZONE,
)


def _article_id(value: str) -> str | None:
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        return None
    number = int(value)
    return str(number) if number > 0 else None


def article_key(url: str) -> str | None:
    """The numeric id of a president.ir English article URL, or None for any other URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in HOSTS:
        return None
    query = parse_qsl(parts.query, keep_blank_values=True)
    ids = [v for k, v in query if k.lower() == "artid"]
    if any(not (k.lower() == "artid" or _TRACKING.match(k)) for k, _ in query):
        return None
    path = parts.path
    if ids:
        if path.lower() not in _LEGACY_PATHS or len(ids) != 1:
            return None
        return _article_id(ids[0])
    match = _ARTICLE_RE.match(path)
    return _article_id(match.group(1)) if match else None


class PresidentSpider(NewsSpider):
    name = "president"
    allowed_domains: ClassVar[list[str]] = ["president.ir"]  # and www. below it
    listings: ClassVar[tuple[str, ...]] = (
        "https://president.ir/en/",
        "https://president.ir/en/archive",
    )
    listing_links: ClassVar[str] = "div.news-list h3 a"
    listing_next: ClassVar[str | None] = "ul.pagination li.next a"
    listing_max_pages: ClassVar[int] = 5
    render_pages: ClassVar[bool] = True
    # The script replaces the shell's empty #app with the page, site header first.
    render_ready: ClassVar[str | None] = "header.site-header"
    rules: ClassVar[SiteRules] = RULES

    def article_key(self, url: str) -> str | None:
        return article_key(url)

    def is_article_page(self, response: Response) -> bool:
        return "news-detail" in body_classes(response)
