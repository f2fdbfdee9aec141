"""Synthetic news article pages (60–125 KB, TDI "Newspaper" theme shape) for the benchmark.

``write_site`` lays them out as static files (each beside its gzip copy, for a server's
``gzip_static``): ``/news/synthetic-article-NNNNNN.html``, listing pages of 50 links each
(``/listing/page-NNN.html``, the crawl's start URLs) and ``/robots.txt``. Links are relative, so
the same files serve under any host. ``install`` serves the articles from the loopback mirror.
"""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawler.mirror.server import MirrorRequest, MirrorServer

HOST = "bench.newsarchive.test"
BASE = f"https://{HOST}"
PER_LISTING = 50
_ARTICLE = re.compile(r"/news/synthetic-article-(\d{6})\.html")
# gzip -6, as `gzip` and most build steps that make the .gz files of a static site.
GZIP_LEVEL = 6

_WORDS = [
    "minister",
    "talks",
    "ceasefire",
    "delegation",
    "summit",
    "council",
    "trade",
    "energy",
    "sanctions",
    "border",
    "agreement",
    "envoy",
    "ministry",
    "statement",
    "cooperation",
    "regional",
    "security",
    "economic",
    "reform",
    "parliament",
    "vote",
    "visit",
    "bilateral",
    "relations",
    "humanitarian",
    "aid",
    "crisis",
    "negotiations",
    "framework",
    "dialogue",
    "infrastructure",
    "investment",
    "diplomatic",
    "official",
    "spokesperson",
    "conference",
    "initiative",
]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(12, 26))]
    return " ".join(words).capitalize() + "."


def article_path(n: int) -> str:
    return f"/news/synthetic-article-{n:06d}.html"


def listing_path(i: int) -> str:
    return f"/listing/page-{i:03d}.html"


def article_url(n: int) -> str:
    return f"{BASE}{article_path(n)}"


def article_page(n: int) -> bytes:
    """A deterministic page: heavy head and chrome, 8–20 body paragraphs, 60–125 KB in all."""
    rng = random.Random(n)
    title = " ".join(rng.choice(_WORDS) for _ in range(8)).title()
    paragraphs = [
        " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))
        for _ in range(rng.randint(8, 20))
    ]
    target = rng.randint(60_000, 125_000)
    nav = "".join(
        f'<li class="menu-item"><a href="/category/c{i}/">{rng.choice(_WORDS).title()}</a></li>'
        for i in range(40)
    )
    body = "".join(f"<p>{p}</p>\n" for p in paragraphs)
    page = (
        '<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">'
        f"<title>{title} - Bench Insight</title>"
        f'<meta property="og:title" content="{title}">'
        '<meta property="article:published_time" content="2025-06-11T09:30:00+05:00">'
        '<meta name="author" content="Bench Writer">'
        '<link rel="stylesheet" href="/wp-content/themes/Newspaper/style.css">'
        "<script>window.tdConfig = {" + ",".join(f'"k{i}": {i}' for i in range(300)) + "};</script>"
        '</head><body class="post-template-default single single-post">'
        f'<div class="td-header-wrap"><ul class="sf-menu">{nav}</ul></div>'
        '<article class="post type-post status-publish"><div class="tdb_single_content">'
        f'<h1 class="tdb-title-text">{title}</h1>'
        '<time class="entry-date updated td-module-date" datetime="2025-06-11T09:30:00+05:00">'
        "June 11, 2025</time>"
        f'<div class="td-post-content tagdiv-type">{body}</div>'
        '<div class="td-post-next-prev"><a href="#">Previous article</a></div>'
        '<div class="td-author-name"><a href="#">Bench Writer</a></div></div></article>'
    )
    filler = []
    size = len(page)
    i = 0
    while size < target:
        chunk = (
            f'<div class="td-related-row"><a href="/related-{n}-{i}/">'
            f'{_sentence(rng)}</a><span class="td-post-date">June {i % 28 + 1}, 2025</span></div>\n'
        )
        filler.append(chunk)
        size += len(chunk)
        i += 1
    return (page + '<div class="td-footer">' + "".join(filler) + "</div></body></html>").encode()


def listing_page(i: int, articles: range) -> bytes:
    """A category page: 50 article links with their headlines, a little chrome."""
    items = "".join(
        f'<li><h3 class="entry-title"><a class="story" href="{article_path(n)}">'
        f"{' '.join(random.Random(n).choice(_WORDS) for _ in range(8)).title()}</a></h3>"
        f'<time datetime="2025-06-11T09:30:00+05:00">June 11, 2025</time></li>\n'
        for n in articles
    )
    return (
        '<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">'
        f"<title>News, page {i + 1} - Bench Insight</title></head>"
        '<body class="archive category"><div class="td-header-wrap"><a href="/">Home</a></div>'
        f'<ul class="td-category-list">{items}</ul></body></html>'
    ).encode()


def write_site(root: Path, pages: int) -> list[str]:
    """Write ``pages`` articles, their listings and robots.txt under ``root``, each HTML file
    beside its ``.gz``; returns the listing paths (the crawl's start pages)."""
    (root / "news").mkdir(parents=True, exist_ok=True)
    (root / "listing").mkdir(exist_ok=True)
    (root / "robots.txt").write_bytes(b"User-agent: *\nAllow: /\n")
    files = [(article_path(n), article_page(n)) for n in range(pages)]
    listings = []
    for i, start in enumerate(range(0, pages, PER_LISTING)):
        listings.append(listing_path(i))
        files.append(
            (listing_path(i), listing_page(i, range(start, min(start + PER_LISTING, pages))))
        )
    for path, body in files:
        target = root / path.lstrip("/")
        target.write_bytes(body)
        target.with_name(target.name + ".gz").write_bytes(gzip.compress(body, GZIP_LEVEL, mtime=0))
    return listings


def install(server: MirrorServer) -> None:
    """``python -m crawler.mirror.server --setup bench.synthetic:install``: serve the articles."""
    from crawler.mirror.messages import MirrorResponse

    cache: dict[str, bytes] = {}

    def handler(req: MirrorRequest) -> MirrorResponse | None:
        path = req.path
        if path == "/robots.txt":
            return MirrorResponse(body=b"User-agent: *\nAllow: /\n", content_type="text/plain")
        match = _ARTICLE.fullmatch(path)
        if match is None:
            return None
        body = cache.get(path)
        if body is None:
            body = cache[path] = article_page(int(match.group(1)))
        return MirrorResponse(body=body, content_type="text/html; charset=UTF-8", encoding="gzip")

    server.add_handler(HOST, "/", handler)
