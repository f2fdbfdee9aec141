"""Almasirah English: one PHP news site under three host names.

english.almasirah.net, english.almasirah.net.ye and english.masirahtv.net serve the same site,
and its pages link across them (the .net.ye homepage links articles on masirahtv.net). Article
URLs are ``/post/<id>/<Title-Slug>`` (also ``/news/<id>/...``); the key is the numeric id, so
the same story through another host or another spelling of its slug is one article.

Discovery: the homepage and the News section (paginated with ``li.next``), and ``rss.php``.
The article markup is unverified (SOURCES.md section 3): the body is the ``<p>``s of the post
container, without the site's self-description (which the page repeats in header and footer),
the hashtags line and the relative age ("about 2 days"); the hashtags become the tags. The
``News - <Section>:`` prefix of the first paragraph and a closing ``Source: ...`` line are part
of the published text and stay. The page gives no visible date: it comes from
``article:published_time``, and an article without it is archived with a "no published date"
warning (the relative age is not turned into a date).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import parse_qsl, urlsplit

from crawler.crawl.spider import NewsSpider
from crawler.text.extract import SiteRules

if TYPE_CHECKING:
    from scrapy.http import Response

HOSTS = frozenset({"english.almasirah.net", "english.almasirah.net.ye", "english.masirahtv.net"})
HOME = "https://english.almasirah.net.ye/"

_PATH_RE = re.compile(r"^/(?:post|news)/(\d+)(?:/[^/]*)?/?$", re.IGNORECASE)
_TRACKING = re.compile(r"^(?:utm_[a-z]+|fbclid|gclid)$")

# The site's self-description, as the digest script that reads the live site filters it.
BOILERPLATE = (
    r"Almasirah Media Network|English version of Almasirah|misinformation imposed by the main"
)
# "#Iran #Gaza about 2 days": hashtags, optionally followed by the relative age.
HASHTAGS_LINE = (
    r"^#\w[\w-]*(?:\s+#\w[\w-]*)*(?:\s+(?i:about|over|almost)?\s*\S+\s+\w+(?:\s+ago)?)?$"
)
RELATIVE_AGE = (
    r"^(?i:(?:about|over|almost)\s+)?(?:an?|\d+)\s+"
    r"(?i:second|minute|hour|day|week|month|year)s?(?i:\s+ago)?$"
)

RULES = SiteRules(
    title=('meta[property="og:title"]', "h1.post-title", "h1"),
    body=("div.post-content",),
    drop=("p.post-tags", "span.post-time", "div.share-box"),
    drop_text=(BOILERPLATE, HASHTAGS_LINE, RELATIVE_AGE),
    published=('meta[property="article:published_time"]',),
    tags=("p.post-tags a", 'meta[property="article:tag"]'),
    section=('meta[property="article:section"]',),
    timezone="Asia/Aden",
)


def article_key(url: str) -> str | None:
    """The post id of an Almasirah English article URL on any of its hosts, or None."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in HOSTS:
        return None
    if parts.query and not all(_TRACKING.match(k) for k, _ in parse_qsl(parts.query, True)):
        return None
    match = _PATH_RE.match(parts.path)
    if match is None:
        return None
    return str(int(match.group(1)))


class AlmasirahSpider(NewsSpider):
    name = "almasirah"
    allowed_domains: ClassVar[list[str]] = sorted(HOSTS)
    feeds: ClassVar[tuple[str, ...]] = ("https://english.masirahtv.net/rss.php",)
    listings: ClassVar[tuple[str, ...]] = (HOME, f"{HOME}section/1/News")
    listing_next: ClassVar[str | None] = "ul.pagination li.next a"
    listing_max_pages: ClassVar[int] = 2
    rules: ClassVar[SiteRules] = RULES

    def article_key(self, url: str) -> str | None:
        return article_key(url)

    def is_article_page(self, response: Response) -> bool:
        # Video posts share the /post/<id>/ shape; the page type says what they are.
        og_type = response.css('meta[property="og:type"]::attr(content)').get()
        return og_type is None or og_type.strip().lower() == "article"
