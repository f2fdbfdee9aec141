"""URL heuristics, table-driven: which TDI URLs are articles, and under which key."""

from __future__ import annotations

import pytest

from spiders.tdi import TdiSpider, article_key

SITE = "https://thediplomaticinsight.com"
SLUG = "iranian-fm-discusses-gaza-with-hamas-and-islamic-jihad-leaders"

ARTICLE_KEYS: list[tuple[str, str | None]] = [
    # permalinks, as the feed and the sitemap give them
    (f"{SITE}/{SLUG}/", SLUG),
    (f"{SITE}/world-polio-day-2023/", "world-polio-day-2023"),
    (
        f"{SITE}/pak-expresses-solidarity-with-indonesia-philippines-after-quakes/",
        "pak-expresses-solidarity-with-indonesia-philippines-after-quakes",
    ),
    # the same post through the other host, scheme, case, fragment or missing slash
    (f"https://www.thediplomaticinsight.com/{SLUG}/", SLUG),
    (f"http://thediplomaticinsight.com/{SLUG}/", SLUG),
    (f"HTTPS://TheDiplomaticInsight.com/{SLUG}/", SLUG),
    (f"{SITE}/Arctic-Next-Global-Power-Battleground/", "arctic-next-global-power-battleground"),
    (f"{SITE}/{SLUG}/#respond", SLUG),
    (f"{SITE}/{SLUG}", SLUG),
    (f"  {SITE}/{SLUG}/\n", SLUG),
    # tracking parameters do not make another page
    (f"{SITE}/{SLUG}/?utm_source=rss&utm_medium=rss&utm_campaign=x", SLUG),
    (f"{SITE}/{SLUG}/?fbclid=IwAR0abc", SLUG),
    # a percent-encoded (non-ASCII) slug keeps its escapes: the key is a file name
    (
        f"{SITE}/%D8%AE%D8%A8%D8%B1-%D8%B9%D8%A7%D8%AC%D9%84/",
        "%d8%ae%d8%a8%d8%b1-%d8%b9%d8%a7%d8%ac%d9%84",
    ),
    # a static page has the permalink shape: the page check (body class) rejects it later
    (f"{SITE}/about-us/", "about-us"),
    # shortlinks and other queries: WordPress redirects them; the permalink is discovered anyway
    (f"{SITE}/?p=41275", None),
    (f"{SITE}/{SLUG}/?p=41275", None),
    (f"{SITE}/{SLUG}/?amp=1", None),
    (f"{SITE}/?s=gaza", None),
    (f"{SITE}/{SLUG}/?replytocom=12", None),
    # archives and listings
    (f"{SITE}/", None),
    (SITE, None),
    (f"{SITE}/category/middle-east/", None),
    (f"{SITE}/category/middle-east/page/2/", None),
    (f"{SITE}/tag/gaza/", None),
    (f"{SITE}/author/maham-shabir/", None),
    (f"{SITE}/page/2/", None),
    (f"{SITE}/2023/", None),
    (f"{SITE}/2023/10/", None),
    (f"{SITE}/2023/10/24/{SLUG}/", None),
    # feeds, sitemaps, API, files, admin
    (f"{SITE}/feed/", None),
    (f"{SITE}/comments/feed/", None),
    (f"{SITE}/{SLUG}/feed/", None),
    (f"{SITE}/{SLUG}/amp/", None),
    (f"{SITE}/{SLUG}/embed/", None),
    (f"{SITE}/wp-sitemap.xml", None),
    (f"{SITE}/wp-sitemap-posts-post-1.xml", None),
    (f"{SITE}/sitemap_index.xml", None),
    (f"{SITE}/robots.txt", None),
    (f"{SITE}/wp-json/wp/v2/posts", None),
    (f"{SITE}/wp-json/", None),
    (f"{SITE}/wp-content/uploads/2023/10/Iranian-FM-Amirabdollahian.jpg", None),
    (f"{SITE}/wp-login.php", None),
    (f"{SITE}/wp-admin/", None),
    (f"{SITE}/xmlrpc.php", None),
    (f"{SITE}/feed", None),
    (f"{SITE}/search/", None),
    # other hosts and schemes
    (f"https://example.com/{SLUG}/", None),
    (f"https://thediplomaticinsight.com.example.net/{SLUG}/", None),
    (f"https://cdn.thediplomaticinsight.com/{SLUG}/", None),
    (f"ftp://thediplomaticinsight.com/{SLUG}/", None),
    ("mailto:info@thediplomaticinsight.com", None),
    ("", None),
    ("not a url", None),
]


@pytest.mark.parametrize(("url", "key"), ARTICLE_KEYS)
def test_article_key(url: str, key: str | None) -> None:
    assert article_key(url) == key


def test_the_spider_method_is_the_module_function() -> None:
    spider = TdiSpider()
    for url, key in ARTICLE_KEYS:
        assert spider.article_key(url) == key
