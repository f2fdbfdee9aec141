"""Byline authors and tags from a page's body (``crawler.text.byline``): small hand-written
pages, then the mirror's pages against their sites' rules."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser

from crawler.text.byline import author_names, byline, byline_authors, page_tags
from crawler.text.extract import Article, ExtractionError, extract_article

SITES = Path(__file__).resolve().parent.parent / "crawler" / "mirror" / "sites"


def _tree(body: str, head: str = "") -> LexborHTMLParser:
    return LexborHTMLParser(f"<html><head>{head}</head><body>{body}</body></html>")


@pytest.mark.parametrize(
    ("byline", "names"),
    [
        ("By Jane Doe", ["Jane Doe"]),
        ("by Jane Doe and John Roe | June 2, 2025", ["Jane Doe", "John Roe"]),
        ("Written by Maria de la Cruz & Ali al-Sadr", ["Maria de la Cruz", "Ali al-Sadr"]),
        ("By Samuel Adeyemi | June 2, 2025 6:20 AM", ["Samuel Adeyemi"]),
        ("By GILLIAN MOHNEY March 11, 2015 3:46 PM", ["GILLIAN MOHNEY"]),
        ("Aisha Rahman, Staff Writer", ["Aisha Rahman"]),
        ("Stella Kim, Jennifer Jett", ["Stella Kim", "Jennifer Jett"]),
        (
            "Martin Untersinger (avec Damien Leloup et Morgane Tual)",
            [
                "Martin Untersinger",
                "Damien Leloup",
                "Morgane Tual",
            ],
        ),
        ("Par Sébastien Farcis", ["Sébastien Farcis"]),
        ("Author: Ursula von der Leyen", ["Ursula von der Leyen"]),
        ("Richard (R.J.) Eskow", ["Richard Eskow"]),
        ("By Daniel Kahn Gillmor, Senior Staff Technologist, ACLU Speech", ["Daniel Kahn Gillmor"]),
        ("By Brenda Goodman, MA", ["Brenda Goodman"]),
        ("By AFP", ["AFP"]),
        ("محمد علي، أحمد حسن", ["محمد علي", "أحمد حسن"]),
        # Nobody's name.
        ("By Staff Writer", []),
        ("News Desk", []),
        ("Staff", []),
        ("jane.doe@example.com", []),
        ("https://example.com/author/jane", []),
        ("Posted by admin on 2024-01-02", []),
        ("Updated 3 hours ago", []),
        ("June 2, 2025", []),
        ("share this story on twitter", []),
    ],
)
def test_author_names(byline: str, names: list[str]) -> None:
    assert author_names(byline) == names


def test_rel_author_and_itemprop_author() -> None:
    tree = _tree(
        "<h1>Headline</h1><p class='meta'>By <a rel='author' href='/a/jane'>Jane Doe</a> and "
        "<a rel='author' href='/a/john'>John Roe</a></p><p>Story text.</p>"
    )
    assert byline_authors(tree) == ["Jane Doe", "John Roe"]
    tree = _tree(
        "<h1>Headline</h1><span itemprop='author' itemscope><span itemprop='name'>Jane Doe"
        "</span> <span itemprop='jobTitle'>Reporter</span></span>"
    )
    assert byline_authors(tree) == ["Jane Doe"]
    # itemprop=author in a <meta> is the head's business (crawler.text.extract reads it).
    assert byline_authors(_tree("<meta itemprop='author' content='Jane Doe'><p>x</p>")) == []


def test_elements_named_for_a_byline() -> None:
    tree = _tree(
        "<h1>Headline</h1><div class='td-post-author-name'><div class='td-author-by'>By</div>"
        " <a href='/author/maham'>Maham Shabir</a><div class='td-author-line'> - </div></div>"
        "<p>Story.</p><div class='author-box-wrap'><div class='td-author-name'>Someone Else"
        "</div><div class='td-author-description'>A long biography.</div></div>"
    )
    assert byline_authors(tree) == ["Maham Shabir"]
    # An author's biography box, a comment's author and a sidebar's list are no bylines.
    tree = _tree(
        "<h1>Headline</h1><p>Story.</p>"
        "<div class='author-bio'>Jane Doe writes about cities.</div>"
        "<div id='comments'><span class='comment-author'>Troll Person</span></div>"
        "<aside><span class='author'>Sidebar Author</span></aside>"
        "<nav><span class='byline'>Menu Person</span></nav>"
    )
    assert byline_authors(tree) == []


def test_a_by_line_after_the_headline() -> None:
    tree = _tree(
        "<header><h1>Headline</h1><p class='kicker'>Politics</p></header>"
        "<div class='meta'><span>By Jane Doe | 2 June 2025</span></div><p>Story.</p>"
    )
    assert byline_authors(tree) == ["Jane Doe"]
    # "By" far from the headline, or in a sentence of the story, is not a byline.
    tree = _tree(
        "<h1>Headline</h1>" + "<p>Paragraph.</p>" * 8 + "<p>By Jane Doe</p>"
        "<p>By the end of the year, the council will vote.</p>"
    )
    assert byline_authors(tree) == []


def test_tags() -> None:
    tree = _tree(
        "<h1>Headline</h1><p>Story.</p><span class='tags-links'>Tagged "
        "<a href='/tag/council/' rel='tag'>council</a>, <a href='/tag/budget/' rel='tag'>Budget"
        "</a></span><span class='cat-links'><a rel='category tag' href='/c/local'>Local</a>"
        "</span><aside class='widget widget_tag_cloud'><div class='tagcloud'>"
        "<a href='/tag/x'>Everything</a></div></aside>"
    )
    assert page_tags(tree) == ["council", "Budget"]
    tree = _tree(
        "<ul class='td-tags td-post-small-box'><li><span>TAGS</span></li><li><a href='/tag/gaza'>"
        "Gaza</a></li><li><a href='/tag/un'>United Nations</a></li></ul>"
        "<p class='post-tags'><a href='/tag/Iran'>#Iran</a> <a href='/tag/Gaza'>#Gaza</a></p>"
    )
    assert page_tags(tree) == ["Gaza", "United Nations", "Iran"]
    # A site-wide list (more links than an article has tags) or a menu of topics is not it.
    cloud = "".join(f"<a href='/tag/{i}'>Tag {i}</a>" for i in range(40))
    tree = _tree(
        f"<div class='tags'>{cloud}</div><nav class='topics'><a href='/t/a'>World</a></nav>"
    )
    assert page_tags(tree) == []
    # Post classes ("tag-gaza") name the tags' slugs, not the tags.
    assert page_tags(_tree("<article class='post tag-gaza tag-iran'><p>x</p></article>")) == []


def test_keywords_come_last() -> None:
    head = "<meta name='keywords' content='Masoud Pezeshkian, Palestine, , Gaza'>"
    assert page_tags(_tree("<p>Story.</p>", head)) == ["Masoud Pezeshkian", "Palestine", "Gaza"]
    head += "<meta name='news_keywords' content='Gaza ceasefire'>"
    assert page_tags(_tree("<p>Story.</p>", head)) == ["Gaza ceasefire"]
    body = "<ul class='news-tags'><li><a href='/Tag/Iran'>Iran</a></li></ul>"
    assert page_tags(_tree(body, head)) == ["Iran"]


# -- the mirror's pages -------------------------------------------------------------------------
# The article pages of each mirror site (its listings, tag and author pages left out).
ARTICLES = {
    "almasirah": ("post-", "news-"),
    "irna": ("news-",),
    "president": ("en-1",),
    "presstv": ("detail-",),
    "tdi": ("iran-", "president-", "tdi-", "world-", "zambia-"),
    "harborpost": ("post-",),
    "valleytimes": ("story-",),
    "coastaldaily": ("news-",),
}


def _mirror_articles(site: str) -> list[tuple[Path, Article]]:
    rules = importlib.import_module(f"spiders.{site}").RULES if site in RULED else None
    found = []
    for path in sorted((SITES / site).glob("*.html")):
        if not path.name.startswith(ARTICLES[site]) or path.name.endswith(".shell.html"):
            continue
        try:
            found.append(
                (path, extract_article(path.read_text(), f"https://{site}.test/a/", rules))
            )
        except ExtractionError:
            continue  # a video page, no text: nothing to compare
    return found


RULED = ("almasirah", "irna", "president", "presstv", "tdi")


@pytest.mark.parametrize("site", RULED)
def test_the_mirror_sites_tags_match_their_rules(site: str) -> None:
    """Where a site's rules name its tags, the generic reading finds the same ones."""
    compared = 0
    for path, article in _mirror_articles(site):
        html = path.read_text()
        if not article.tags:
            continue
        compared += 1
        assert page_tags(LexborHTMLParser(html)) == list(article.tags), path.name
        if article.authors and article.authors != ("News Desk",):
            assert byline_authors(LexborHTMLParser(html)) == list(article.authors), path.name
    assert compared >= 1


@pytest.mark.parametrize("site", ["harborpost", "valleytimes", "coastaldaily"])
def test_the_mirror_generic_sites_bylines(site: str) -> None:
    """The generic sites name their authors in their meta tags or JSON-LD too: the byline in
    the body says the same."""
    compared = 0
    for path, article in _mirror_articles(site):
        html = path.read_text()
        assert article.authors, path.name
        compared += 1
        tree = LexborHTMLParser(html)
        assert byline_authors(tree) == list(article.authors), path.name
        if site == "harborpost":
            assert page_tags(tree) == ["council"]
        # One walk for both gives the same.
        assert byline(tree) == (byline_authors(tree), page_tags(tree))
    assert compared >= 10


_NO_META_PAGE = """<!doctype html><html lang="en"><head><title>Harbour dredging starts</title>
</head><body><nav><a href="/">Home</a> <a href="/tag/all" rel="tag">Everything</a></nav>
<article><h1>Harbour dredging starts next month</h1>
<p class="byline">By Jane Doe and Omar Haddad | 4 June 2025</p>
<p>Work to deepen the harbour channel will begin next month, the port authority said on
Tuesday, after two years of delays over the cost of moving the dredged silt.</p>
<p>The authority expects the work to take about eight weeks and said ferry services would run
as normal throughout, apart from two weekend closures announced in advance.</p>
<div class="post-tags"><a href="/tag/port">Port</a> <a href="/tag/dredging">Dredging</a></div>
</article></body></html>"""


def test_extract_article_fills_authors_and_tags_from_the_body_when_the_head_has_none() -> None:
    article = extract_article(_NO_META_PAGE, "https://news.example/harbour-dredging")
    assert list(article.authors) == ["Jane Doe", "Omar Haddad"]
    assert list(article.tags) == ["Port", "Dredging"]


def test_the_heads_authors_win_over_the_body() -> None:
    page = _NO_META_PAGE.replace("</title>", '</title><meta name="author" content="Ali Rezaei">')
    article = extract_article(page, "https://news.example/harbour-dredging")
    assert list(article.authors) == ["Ali Rezaei"]


@pytest.mark.parametrize(
    "inner",
    [
        "By Jane Roe",
        "By " + "word " * 40,  # just past 160 characters
        "By " + "word " * 31,  # just under
        "By Jane Roe" + " \n\t " * 2000,  # long, but mostly space: collapses short
        " \u00a0 " * 300 + "By Jane Roe",  # the words after a long run of space
        "<p>By Jane</p>" + "<span> </span>" * 400 + "<p>Roe</p>",
        ("Paragraph of the article body. " * 3000),  # an article's container
    ],
)
def test_a_short_text_is_the_text_when_short_and_empty_when_long(inner: str) -> None:
    # Byline candidates only count at 160 characters or fewer: a long element's text is told
    # too long from its first part; the answer must be the one collapsing it whole gives.
    from crawler.text.byline import _BYLINE_CHARS, _short_text, _text

    node = LexborHTMLParser(f"<html><body><div>{inner}</div></body></html>").css_first("div")
    assert node is not None
    whole = _text(node)
    expected = whole if len(whole) <= _BYLINE_CHARS else ""
    assert _short_text(node, _BYLINE_CHARS) == expected
