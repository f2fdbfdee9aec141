"""IRNA English (en.irna.ir): the Nastooh news CMS, served as plain HTML once past ArvanCloud.

Discovery: the RSS feed, the Google News sitemap and the ``/archive`` listing (its news items
only; photo and audio items are ``li.photo`` / ``li.audio``). Article key: the numeric news id
of ``https://en.irna.ir/news/<id>/<Title-Slug>``; the slug is cut at about 60 characters and
may be missing (``/news/<id>`` redirects to the slugged URL), so it never enters the key.
Photo, video and audio items share the ``/news/<id>`` shape and are told apart by the item
type Nastooh writes into the body class (``item-news``, ``item-photo``, ...).

Dates: ``article:published_time`` is UTC (``2025-06-11T15:46:00Z``) and the visible
``div.item-date`` is Tehran time (``Jun 11, 2025, 7:16 PM``, with a narrow no-break space before
``PM``). The visible date comes first, read as Tehran time, so the archived ``published``
keeps the publisher's +03:30 offset; the UTC meta is the fallback for pages without it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import parse_qsl, urlsplit

from crawler.crawl.spider import NewsSpider, body_classes
from crawler.text.extract import SiteRules

if TYPE_CHECKING:
    from scrapy.http import Response

HOSTS = frozenset({"en.irna.ir"})
TIMEZONE = "Asia/Tehran"

# /news/<id> or /news/<id>/<slug>; ids are 8 digits today, a ninth is allowed for later.
_NEWS_RE = re.compile(r"^/news/(\d{8,9})(?:/[^/]*)?/?$")
_TRACKING = re.compile(r"^(?:utm_[a-z]+|fbclid|gclid)$")
# The visible date, with any no-break space turned into a plain one so strptime reads it.
_VISIBLE_DATE = (
    "xpath:translate(normalize-space(//article[@id='item']"
    "//div[contains(concat(' ', normalize-space(@class), ' '), ' item-date ')]),"
    " '\u202f\u00a0', '  ')"
)

RULES = SiteRules(
    title=('meta[name="twitter:title"]', "h1.title"),
    # The lead (p.introtext) and the photo (figure.item-img) sit in div.item-summary inside the
    # body container: the lead is the first paragraph, the photo's alt text its image caption.
    body=("div.item-body",),
    drop=("div.item-tools", "div.video-player"),
    # the author/editor code ("3266**4353") closing every item
    drop_text=(r"^\d+\*\*\d+$",),
    published=(_VISIBLE_DATE, 'meta[property="article:published_time"]'),
    modified=('meta[property="article:modified_time"]',),
    tags=("section.tags li a",),
    section=("ol.breadcrumb li:last-child a", 'meta[property="article:section"]'),
    lead=("p.introtext", "p.summary"),
    timezone=TIMEZONE,
)


def article_key(url: str) -> str | None:
    """The news id of an IRNA English item URL, or None for any other URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in HOSTS:
        return None
    if parts.query and not all(_TRACKING.match(k) for k, _ in parse_qsl(parts.query, True)):
        return None
    match = _NEWS_RE.match(parts.path)
    return match.group(1) if match else None


class IrnaSpider(NewsSpider):
    name = "irna"
    allowed_domains: ClassVar[list[str]] = ["en.irna.ir"]
    feeds: ClassVar[tuple[str, ...]] = ("https://en.irna.ir/rss",)
    sitemaps: ClassVar[tuple[str, ...]] = ("https://en.irna.ir/sitemap/news/sitemap.xml",)
    listings: ClassVar[tuple[str, ...]] = ("https://en.irna.ir/archive",)
    listing_links: ClassVar[str] = "li.news h3 a"
    listing_next: ClassVar[str | None] = "ul.pagination li.next a"
    listing_max_pages: ClassVar[int] = 2
    rules: ClassVar[SiteRules] = RULES

    def article_key(self, url: str) -> str | None:
        return article_key(url)

    def is_article_page(self, response: Response) -> bool:
        # Nastooh writes the item type into the body class: news, photo, video, audio.
        return "item-news" in body_classes(response)
