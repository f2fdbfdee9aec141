"""Press TV (www.presstv.ir, mirrored on www.presstv.co.uk).

Article URLs are ``/Detail/YYYY/MM/DD/<id>/<Slug>``; the key is the numeric id (yt-dlp's
extractor and a dedupe test do the same), so slug spellings and the co.uk host are one article.
Discovery: the main RSS feed and a few per-section feeds, the sitemap index (its ``<loc>``s
holding "sitemap" are child sitemaps, the others article URLs) and the Iran section listing
(``li.next`` pagination). Selectors are the ones a Go scraper of the live site uses (SOURCES.md
section 2); the date falls back to the URL's day, with a warning. Video pages share the
article URL shape and are told apart by their jwplayer ``var config``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from crawler.crawl.spider import NewsSpider
from crawler.text.extract import SiteRules

if TYPE_CHECKING:
    from scrapy.http import Response

HOSTS = frozenset({"www.presstv.ir", "presstv.ir", "www.presstv.co.uk", "presstv.co.uk"})
SITE = "https://www.presstv.ir"

_PATH_RE = re.compile(r"^/detail/(\d{4})/(\d{1,2})/(\d{1,2})/(\d+)(?:/[^/]*)?/?$", re.IGNORECASE)
# jwplayer's setup object, the mark of a video page.
_VIDEO_RE = re.compile(r"\bvar\s+config\s*=\s*\{")

RULES = SiteRules(
    title=("h1.news-title-container",),
    body=("div.news-body-container",),
    drop=("div.share-buttons",),
    drop_text=(r"^(?i:read more)\s*:",),
    published=("time.news-detail",),
    tags=("ul.news-tags li a",),
    section=("ol.breadcrumb li:last-child a",),
    lead=("h2.news-summary",),
    timezone="Asia/Tehran",
    url_date=r"/[Dd]etail/(?P<year>\d{4})/(?P<month>\d{1,2})/(?P<day>\d{1,2})/\d+",
)


def article_key(url: str) -> str | None:
    """The numeric id of a Press TV article URL (either host, any slug), or None."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in HOSTS:
        return None
    match = _PATH_RE.match(parts.path)
    if match is None:
        return None
    return str(int(match.group(4)))


class PressTvSpider(NewsSpider):
    name = "presstv"
    allowed_domains: ClassVar[list[str]] = ["presstv.ir", "presstv.co.uk"]
    feeds: ClassVar[tuple[str, ...]] = (
        f"{SITE}/rss.xml",
        f"{SITE}/rss/rss-101.xml",  # Iran
        f"{SITE}/rss/rss-10107.xml",  # Sport
    )
    sitemaps: ClassVar[tuple[str, ...]] = (f"{SITE}/sitemap.xml",)
    sitemap_follow: ClassVar[tuple[str, ...]] = (r"sitemap",)
    listings: ClassVar[tuple[str, ...]] = (f"{SITE}/Section/101/",)
    listing_next: ClassVar[str | None] = "li.next > a"
    listing_max_pages: ClassVar[int] = 2
    rules: ClassVar[SiteRules] = RULES

    def article_key(self, url: str) -> str | None:
        return article_key(url)

    def is_article_page(self, response: Response) -> bool:
        return _VIDEO_RE.search(response.text) is None
