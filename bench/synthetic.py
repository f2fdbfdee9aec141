"""Synthetic news article pages (60–125 KB, TDI "Newspaper" theme shape) for the benchmark."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from crawler.mirror.messages import MirrorResponse

if TYPE_CHECKING:
    from crawler.mirror.server import MirrorRequest, MirrorServer

HOST = "bench.newsarchive.test"
BASE = f"https://{HOST}"

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


def article_url(n: int) -> str:
    return f"{BASE}/synthetic-article-{n:06d}/"


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
        f'<li class="menu-item"><a href="{BASE}/category/c{i}/">{rng.choice(_WORDS).title()}</a>'
        f"</li>"
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
            f'<div class="td-related-row"><a href="{BASE}/related-{n}-{i}/">'
            f'{_sentence(rng)}</a><span class="td-post-date">June {i % 28 + 1}, 2025</span></div>\n'
        )
        filler.append(chunk)
        size += len(chunk)
        i += 1
    return (page + '<div class="td-footer">' + "".join(filler) + "</div></body></html>").encode()


def install(server: MirrorServer) -> None:
    """``python -m crawler.mirror.server --setup bench.synthetic:install``: serve the pages."""
    cache: dict[str, bytes] = {}

    def handler(req: MirrorRequest) -> MirrorResponse | None:
        path = req.path
        if path == "/robots.txt":
            return MirrorResponse(body=b"User-agent: *\nAllow: /\n", content_type="text/plain")
        try:
            n = int(path.strip("/").rsplit("-", 1)[1])
        except (IndexError, ValueError):
            return None
        body = cache.get(path)
        if body is None:
            body = cache[path] = article_page(n)
        return MirrorResponse(body=body, content_type="text/html; charset=UTF-8", encoding="gzip")

    server.add_handler(HOST, "/", handler)
