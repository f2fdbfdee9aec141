"""The Diplomatic Insight (thediplomaticinsight.com): WordPress with the tagDiv "Newspaper" theme.

Discovery: the WordPress RSS feed (newest posts) and the core sitemap index, of which only the
post sitemaps are followed. Article key: the post slug, the one path segment of every permalink
(``https://thediplomaticinsight.com/<slug>/``). The slug is in every URL the feed and the
sitemap give, so a key is known before any fetch; the numeric post id shows only in the page
(``rel=shortlink``) and the feed's guid. Shortlinks (``/?p=123``) and other query URLs are not
article URLs: WordPress redirects them to the permalink, which the feed and sitemap already give.
A renamed post redirects from its old slug, and the page is then archived under the new slug.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import parse_qsl, urlsplit

from crawler.crawl.spider import NewsSpider, body_classes
from crawler.text.extract import SiteRules

if TYPE_CHECKING:
    from scrapy.http import Response

HOSTS = frozenset({"thediplomaticinsight.com", "www.thediplomaticinsight.com"})

# WordPress slugs: lower-case letters, digits, hyphens, and percent-escaped UTF-8.
_SLUG_RE = re.compile(r"^/((?:[a-z0-9-]|%[0-9a-f]{2})+)/?$")
# First path segments WordPress (and this theme) use for things that are not posts.
_RESERVED = frozenset(
    {
        "author",
        "category",
        "tag",
        "page",
        "feed",
        "comments",
        "search",
        "embed",
        "amp",
        "wp-admin",
        "wp-content",
        "wp-includes",
        "wp-json",
        "wp-login",
        "xmlrpc",
        "trackback",
        "attachment",
        "sitemap",
        "sitemaps",
        "type",
    }
)
# Query parameters that only track a click; a permalink carrying them is still the permalink.
_TRACKING = re.compile(r"^(?:utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid)$")

RULES = SiteRules(
    title=("h1.tdb-title-text", "h1.entry-title"),
    # Classic single templates and tagDiv Cloud templates; the element name keeps the lookup
    # cheap (a bare class selector tests every element of the page).
    body=("div.td-post-content", "div.tdb_single_content div.tdb-block-inner"),
    drop=(
        # in-content ad slots ("- Advertisement -")
        "div.td-a-rec",
        "div.td-g-rec",
        ".td-post-sharing",
        ".td-post-sharing-top",
        ".td-post-sharing-bottom",
        ".td-post-next-prev",
        ".author-box-wrap",
        ".td_block_related_posts",
        ".td-post-source-tags",
        ".jp-relatedposts",
        ".sharedaddy",
    ),
    drop_text=(r"^Also read:",),
    published=(
        'meta[property="article:published_time"]::attr(content)',
        "time.entry-date::attr(datetime)",
    ),
    modified=('meta[property="article:modified_time"]::attr(content)',),
    # One author per WordPress post: the meta tag is exact and far cheaper than the byline.
    authors=('meta[name="author"]', "div.td-post-author-name a", "div.td-author-name a"),
    tags=("ul.td-tags li a", 'meta[property="article:tag"]'),
    section=('meta[property="article:section"]', "ul.td-category li.entry-category a"),
    timezone="Asia/Karachi",
)


def article_key(url: str) -> str | None:
    """The post slug of a TDI permalink, or None for any other URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in HOSTS:
        return None
    if parts.query and not all(_TRACKING.match(k) for k, _ in parse_qsl(parts.query, True)):
        return None
    match = _SLUG_RE.match(parts.path.lower())
    if match is None:
        return None
    slug = match.group(1)
    if slug in _RESERVED or slug.startswith("wp-") or slug.strip("-").isdigit():
        # numeric first segments are date archives (/2023/)
        return None
    # Percent escapes stay as they are: the key must be safe as a file name.
    return slug


class TdiSpider(NewsSpider):
    name = "tdi"
    allowed_domains: ClassVar[list[str]] = ["thediplomaticinsight.com"]  # and www. below it
    feeds: ClassVar[tuple[str, ...]] = ("https://thediplomaticinsight.com/feed/",)
    sitemaps: ClassVar[tuple[str, ...]] = ("https://thediplomaticinsight.com/wp-sitemap.xml",)
    # Pages, categories, tags and users have their own sitemaps; none of them holds posts.
    # Yoast's post sitemaps too, in case the site turns it on (it redirects wp-sitemap.xml).
    sitemap_follow: ClassVar[tuple[str, ...]] = (
        r"/wp-sitemap-posts-post-\d+\.xml$",
        r"/post-sitemap\d*\.xml$",
    )
    rules: ClassVar[SiteRules] = RULES

    def article_key(self, url: str) -> str | None:
        return article_key(url)

    def is_article_page(self, response: Response) -> bool:
        # WordPress marks a post page "single-post"; static pages (/about-us/) share the
        # permalink shape but are "page".
        return "single-post" in body_classes(response)
