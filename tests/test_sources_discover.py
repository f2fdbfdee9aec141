"""Discovery heuristics of crawler/text/discover.py: table-driven, no I/O."""

from __future__ import annotations

import re

import pytest

from crawler.text import discover


@pytest.mark.parametrize(
    "url",
    [
        "https://www.harborpost.example/2025/06/11/council-approves-new-budget/",
        "https://news.coastaldaily.example/news/4210037/flu-shots",
        "https://www.valleytimes.example/stories/riverton-transit-adds-bus-routes-80514.html",
        "https://en.irna.ir/news/85859288/Pezeshkian-urges-unity",
        "https://www.presstv.ir/Detail/2025/06/11/750123/Iran-Oman",
        "https://thediplomaticinsight.com/iran-calls-for-oic-sanctions-on-israel-amid-gaza-crisis/",
        "https://site.example/2025-06-11/short/",
        "https://site.example/world/europe/article-123456",
    ],
)
def test_article_urls(url: str) -> None:
    assert discover.looks_like_article(url), discover.url_score(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.harborpost.example/",
        "https://www.harborpost.example/category/politics/",
        "https://www.harborpost.example/tag/council/",
        "https://www.harborpost.example/author/maria-okafor/",
        "https://www.harborpost.example/about-us/",
        "https://www.harborpost.example/page/2/",
        "https://www.valleytimes.example/news/page/2/",
        "https://www.valleytimes.example/local/",
        "https://www.valleytimes.example/news?page=3",
        "https://www.harborpost.example/feed/",
        "https://www.harborpost.example/wp-sitemap.xml",
        "https://www.harborpost.example/2025/",
        "https://site.example/topics/climate-change-and-the-future-of-energy/",
        "https://site.example/news/tag/gaza-ceasefire-talks-latest/",
        "https://site.example/wp-content/uploads/2025/06/photo-123456.jpg",
    ],
)
def test_not_article_urls(url: str) -> None:
    assert not discover.looks_like_article(url), discover.url_score(url)


def test_article_key_auto_ignores_host_slash_and_tracking() -> None:
    a = discover.article_key(
        "https://www.x.example/2025/06/11/a-long-story-slug-here/?utm_source=t"
    )
    b = discover.article_key("https://x.example/2025/06/11/a-long-story-slug-here")
    assert a == b == "2025/06/11/a-long-story-slug-here"
    assert discover.article_key("https://x.example/tag/a-long-story-slug-here/") is None
    assert discover.article_key("ftp://x.example/2025/06/11/a-long-story-slug-here/") is None


def test_article_key_with_patterns_uses_the_id_group() -> None:
    patterns = [re.compile(r"^/news/(?P<id>\d+)/[^/]+$")]
    assert discover.article_key("https://n.example/news/4210037/old-slug", patterns) == "4210037"
    assert discover.article_key("https://n.example/news/4210037/new-slug", patterns) == "4210037"
    # A URL no pattern matches is no article, however article-like it looks.
    assert discover.article_key("https://n.example/2025/06/11/a-long-story-slug/", patterns) is None


@pytest.mark.parametrize(
    ("urls", "pattern"),
    [
        (
            [f"https://h.example/2025/06/{d:02d}/story-number-{d}-here/" for d in range(1, 9)],
            r"^/\d{4}/\d{1,2}/\d{1,2}/[^/]+/$",
        ),
        (
            [f"https://h.example/news/{4210000 + i}/a-slug-{i}-of-words" for i in range(6)],
            r"^/news/(?P<id>\d+)/[^/]+$",
        ),
        (
            [f"https://h.example/stories/some-story-{80500 + i}.html" for i in range(6)],
            r"^/stories/[^/]+-(?P<id>\d+)\.html$",
        ),
    ],
)
def test_common_pattern(urls: list[str], pattern: str) -> None:
    found = discover.common_pattern(urls, share=0.9)
    assert found == pattern
    assert all(re.search(found, u.split("h.example", 1)[1]) for u in urls)


def test_common_pattern_none_when_shapes_differ() -> None:
    urls = [
        "https://h.example/2025/06/01/one-story-slug-here/",
        "https://h.example/news/4210000/another",
        "https://h.example/stories/third-one-80500.html",
    ]
    assert discover.common_pattern(urls) is None
    assert discover.common_pattern([]) is None


ARTICLE_OG = '<html><head><meta property="og:type" content="article"></head><body></body></html>'
ARTICLE_LD = (
    '<html><head><script type="application/ld+json">{"@context":"https://schema.org",'
    '"@graph":[{"@type":"WebSite"},{"@type":["NewsArticle"],"headline":"x"}]}</script>'
    "</head><body><p>x</p></body></html>"
)
LISTING_OG = '<html><head><meta property="og:type" content="website"></head><body></body></html>'
LISTING_LD = (
    '<html><head><script type="application/ld+json">{"@type":"CollectionPage"}</script>'
    "</head><body></body></html>"
)
BARE_ARTICLE = (
    '<html><body><h1>Headline</h1><time datetime="2025-06-11">June 11</time><p>x</p></body></html>'
)


@pytest.mark.parametrize(
    ("page", "kind", "article"),
    [
        (ARTICLE_OG, "article", True),
        (ARTICLE_LD, "article", True),
        (LISTING_OG, "listing", False),
        (LISTING_LD, "listing", False),
        (BARE_ARTICLE, None, True),
        ("<html><body><h1>Welcome</h1></body></html>", None, False),
        ("", None, False),
        (
            '<html><head><script type="application/ld+json">{broken</script></head></html>',
            None,
            False,
        ),
    ],
)
def test_page_kind(page: str, kind: str | None, article: bool) -> None:
    assert discover.page_kind(page) == kind
    assert discover.is_article_page(page) is article


LISTING = """<html><head><link rel="alternate" type="application/rss+xml" href="/feed/">
<link rel="alternate" type="application/rss+xml" href="https://other.example/feed/"></head>
<body><header><nav><a href="/category/world/">World</a>
<a href="/2025/06/01/story-in-the-menu-bar-here/">Menu story</a></nav></header>
<main><article><h2><a href="/2025/06/11/first-story-of-the-day/">First</a></h2></article>
<article><h2><a href="https://x.example/2025/06/10/second-story-of-the-day/#c">Second</a></h2></article>
<article><h2><a href="https://elsewhere.example/2025/06/10/not-ours-story-here/">Off</a></h2></article>
<p><a class="next" href="/page/2/">Older posts</a></p></main>
<aside class="widget"><a href="/2025/05/01/most-read-sidebar-story/">Most read</a></aside>
<footer><a href="/about-us/">About</a></footer></body></html>"""


def test_listing_articles_leave_out_the_chrome() -> None:
    url = "https://x.example/"
    assert discover.listing_articles(LISTING, url, ["x.example"]) == [
        "https://x.example/2025/06/11/first-story-of-the-day/",
        "https://x.example/2025/06/10/second-story-of-the-day/",
    ]
    links = {link.url: link.chrome for link in discover.page_links(LISTING, url)}
    assert links["https://x.example/2025/06/01/story-in-the-menu-bar-here/"] is True
    assert links["https://x.example/2025/05/01/most-read-sidebar-story/"] is True
    assert links["https://x.example/2025/06/11/first-story-of-the-day/"] is False
    assert discover.next_page(LISTING, url) == "https://x.example/page/2/"
    assert discover.section_links(LISTING, url, ["x.example"]) == [
        "https://x.example/category/world/"
    ]


def test_feed_links_from_the_page_on_its_own_site() -> None:
    assert discover.feed_links(LISTING, "https://x.example/") == ["https://x.example/feed/"]


def test_robots_sitemaps_and_usual_places() -> None:
    robots = "User-agent: *\nDisallow: /wp-admin/\n# Sitemap: https://x.example/old.xml\n"
    robots += "Sitemap: https://x.example/wp-sitemap.xml\nsitemap: /news.xml\n"
    assert discover.robots_sitemaps(robots, "https://x.example/robots.txt") == [
        "https://x.example/wp-sitemap.xml",
        "https://x.example/news.xml",
    ]
    assert discover.usual_places("https://x.example/a/b?c", ["/feed/"]) == [
        "https://x.example/feed/"
    ]
