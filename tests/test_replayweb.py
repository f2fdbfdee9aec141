"""The demo's WACZ packages open in ReplayWeb.page itself (issue 17).

For each of the five mirrored sites, the crawl's WACZ (as the store holds it) is served from
loopback to ReplayWeb.page (npm `replaywebpage`, unpacked by `scripts/bootstrap --test`) in
Debian's Chromium: every article replays with a sentence of its body visible, and the app's
full-text search finds a word that only that article's body holds.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.replayweb import ReplayWeb

pytestmark = pytest.mark.slow

SITES = ("almasirah", "irna", "president", "presstv", "tdi")
WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Article:
    url: str
    title: str
    body: str  # the text file's paragraphs after the title


def wacz_of(store: Path, site: str) -> Path:
    [wacz] = sorted((store / "wacz" / site).glob("*.wacz"))
    return wacz


def articles(store: Path, site: str, crawl_id: str) -> list[Article]:
    """The crawl's articles from their sidecars and text files, by URL."""
    found = []
    for path in sorted((store / "text" / site).rglob("*.json")):
        meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("crawl_id") != crawl_id:
            continue
        text = path.with_suffix(".txt").read_text(encoding="utf-8")
        body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
        found.append(Article(meta["url"], meta["title"], body))
    return sorted(found, key=lambda a: a.url)


def sentence(article: Article) -> str:
    """A sentence from the body (not the lead, which pages also carry as their description)."""
    paragraphs = [p for p in article.body.split("\n\n") if len(p.strip()) > 40]
    chosen = paragraphs[1] if len(paragraphs) > 1 else paragraphs[0]
    first = re.split(r"(?<=[.!?])\s", chosen.strip(), maxsplit=1)[0]
    return first[:160]


def words(text: str) -> set[str]:
    return {w.lower() for w in WORD.findall(text)}


def body_only_word(wacz: Path, all_articles: list[Article], article: Article) -> str:
    """A word of ``article``'s body found in no title, no URL and no other page's text."""
    with zipfile.ZipFile(wacz) as package:
        lines = package.read("pages/pages.jsonl").decode("utf-8").splitlines()
    pages = [json.loads(line) for line in lines[1:] if line.strip()]
    elsewhere = set()
    for page in pages:
        elsewhere |= words(page.get("url", "")) | words(page.get("title") or "")
    for other in all_articles:
        elsewhere |= words(other.url) | words(other.title)
        if other.url != article.url:
            elsewhere |= words(other.body)
    candidates = sorted(
        (w for w in words(article.body) - elsewhere if len(w) >= 7),
        key=lambda w: (-len(w), w),
    )
    assert candidates, f"no word of {article.url}'s body is unique to it"
    return candidates[0]


@pytest.fixture(scope="module", params=SITES)
def site(request: pytest.FixtureRequest, demo_all_store: Path) -> tuple[Path, list[Article]]:
    name: str = request.param
    wacz = wacz_of(demo_all_store, name)
    found = articles(demo_all_store, name, wacz.stem)
    assert found, f"no article sidecars for {wacz.stem}"
    return wacz, found


def test_every_article_replays_with_its_body_visible(
    rwp: ReplayWeb, site: tuple[Path, list[Article]]
) -> None:
    wacz, found = site
    source = rwp.add(wacz)
    for article in found:
        expect = sentence(article)
        text = rwp.replay_text(source, article.url, expect, timeout=45)
        assert " ".join(expect.split()) in " ".join(text.split()), article.url


def test_full_text_search_finds_a_word_only_in_an_article_body(
    rwp: ReplayWeb, site: tuple[Path, list[Article]]
) -> None:
    wacz, found = site
    article = found[0]
    word = body_only_word(wacz, found, article)
    assert word not in article.title.lower()
    assert rwp.search(rwp.add(wacz), word, timeout=45) == [article.url]
