"""crawler.text.generic: the body of hand-written pages, and none of their chrome."""

from __future__ import annotations

import pytest

from crawler.text.generic import GenericResult, extract_main

URL = "https://news.example/2025/06/11/story"

BODY = [
    "The city council voted on Tuesday to extend the night bus service to every district, "
    "after a year in which ridership on the two trial lines doubled.",
    "Transport officials said the new routes would start in September and cost about four "
    "million a year, paid for by the regional budget rather than by higher fares.",
    "Residents of the outer districts, who had petitioned for the change since 2019, welcomed "
    "the decision but asked for buses every twenty minutes instead of every hour.",
]
CHROME = [
    "Home",
    "World",
    "Sport",
    "Subscribe to our newsletter for the best stories of the week, delivered every morning.",
    "Council approves new budget for libraries and parks",
    "Opinion: why the night bus matters more than the tram",
    "Great news, I have waited years for this and hope it finally comes to our street soon.",
    "Copyright 2025 Example News. All rights reserved. Terms of use and privacy policy.",
    "Share on Facebook",
]


def _paragraphs(body: list[str]) -> str:
    return "".join(f"<p>{p}</p>\n" for p in body)


NEWS_PAGE = f"""<!DOCTYPE html>
<html lang="en-GB"><head><meta charset="utf-8">
<title>Night buses for every district | Example News</title>
<meta property="og:title" content="Night buses for every district">
<meta property="article:published_time" content="2025-06-11T08:30:00+01:00">
<script type="application/ld+json">{{"@type": "NewsArticle", "headline": "Night buses for every
district", "datePublished": "2025-06-11T08:30:00+01:00"}}</script>
<style>p {{ color: red }}</style>
</head><body>
<header class="site-header"><a href="/">Example News</a>
<nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/sport">Sport</a></li></ul></nav></header>
<div class="page">
<article>
<h1>Night buses for every district</h1>
<div class="byline">By Jane Doe, 11 June 2025</div>
<div class="share"><a href="#">Share on Facebook</a></div>
{_paragraphs(BODY)}
<script>var ad = "never text";</script>
</article>
<aside class="sidebar"><div class="newsletter"><p>{CHROME[3]}</p></div></aside>
<section class="related-stories"><h2>Related</h2><ul>
<li><a href="/a">{CHROME[4]}</a></li><li><a href="/b">{CHROME[5]}</a></li></ul></section>
<section id="comments" class="comments"><h2>3 comments</h2>
<div class="comment"><p>{CHROME[6]}</p></div></section>
</div>
<footer><p>{CHROME[7]}</p></footer>
</body></html>"""


def test_news_page_gives_the_article_and_no_chrome() -> None:
    result = extract_main(NEWS_PAGE, URL)
    assert isinstance(result, GenericResult)
    assert result.paragraphs == BODY
    text = "\n".join(result.paragraphs)
    for line in CHROME:
        assert line not in text
    assert "never text" not in text
    assert "By Jane Doe" not in text


def test_news_page_metadata_from_the_same_parse() -> None:
    result = extract_main(NEWS_PAGE, URL)
    assert result.title == "Night buses for every district"
    assert result.published == "2025-06-11T08:30:00+01:00"
    assert result.language == "en-GB"
    # The headline is the title, not a paragraph.
    assert result.title not in result.paragraphs


def test_article_in_main_without_any_class_names() -> None:
    html = f"""<html><body>
    <div><a href="/">Home</a> | <a href="/about">About</a> | <a href="/contact">Contact</a></div>
    <main><h1>A plain page</h1>
    <h2>What happened</h2>
    {_paragraphs(BODY[:2])}
    <h2>What comes next</h2>
    {_paragraphs(BODY[2:])}
    </main>
    <div><a href="/imprint">Imprint</a> <a href="/privacy">Privacy</a></div>
    </body></html>"""
    result = extract_main(html, URL)
    # Subheadings are part of the body, the first one included.
    assert result.paragraphs == ["What happened", BODY[0], BODY[1], "What comes next", BODY[2]]
    assert "Imprint" not in "\n".join(result.paragraphs)
    assert result.title == "A plain page"


def test_itemprop_article_body_is_preferred_to_a_longer_teaser_list() -> None:
    teasers = "".join(
        f"<div class='card'><a href='/s/{i}'><h3>Another story, number {i}, in the same "
        f"section</h3></a><p>A summary of story {i} that runs on for a while, with a comma, "
        f"and ends with a full stop.</p></div>"
        for i in range(8)
    )
    html = f"""<html><body>
    <div itemscope itemtype="https://schema.org/NewsArticle">
      <h1 itemprop="headline">Night buses</h1>
      <div itemprop="articleBody">{_paragraphs(BODY)}</div>
    </div>
    <div class="more">{teasers}</div>
    </body></html>"""
    result = extract_main(html, URL)
    assert result.paragraphs == BODY
    assert result.title == "Night buses"


def test_link_lines_inside_the_body_are_dropped_but_long_linked_paragraphs_kept() -> None:
    linked = (
        'The full report, <a href="/r">published by the council on its website</a>, runs to '
        "ninety pages and lists every stop of the new night routes."
    )
    html = f"""<html><body><article>
    <p>{BODY[0]}</p>
    <p><a href="/x">Read more: council budget</a></p>
    <p>{linked}</p>
    <p>{BODY[1]}</p>
    </article></body></html>"""
    result = extract_main(html, URL)
    assert result.paragraphs == [
        BODY[0],
        "The full report, published by the council on its website, runs to ninety pages and "
        "lists every stop of the new night routes.",
        BODY[1],
    ]


def test_page_without_an_article_gives_no_paragraphs() -> None:
    links = "".join(f'<li><a href="/s/{i}">Section number {i}</a></li>' for i in range(40))
    html = f"""<html><head><title>Example News</title></head><body>
    <header><h1>Example News</h1></header>
    <ul class="sections">{links}</ul>
    <form><label>Search <input name="q"></label><button>Go</button></form>
    <footer>Copyright 2025</footer></body></html>"""
    result = extract_main(html, URL)
    assert result.paragraphs == []
    assert result.title == "Example News"


@pytest.mark.parametrize("html", ["", "   ", "plain text, no markup", "<p>", "</div></p>"])
def test_empty_or_trivial_input(html: str) -> None:
    result = extract_main(html, URL)
    assert result.paragraphs == []
    assert result.published is None


def test_malformed_html_is_read_as_a_browser_would() -> None:
    # An unclosed paragraph, stray end tags, a block inside an inline element, no end at all.
    html = f"""<html><body><div class="story-body">
    <p>{BODY[0]}
    <p>{BODY[1]}</span></em></td>
    <b><p>{BODY[2]}</p></b>
    <div><div class="comments"><p>{CHROME[6]}"""
    result = extract_main(html, URL)
    assert result.paragraphs == BODY


def test_an_unclosed_noscript_holding_the_page_is_not_dropped() -> None:
    html = f"<html><body><noscript><img src='/pixel.gif'><div class='content'>{_paragraphs(BODY)}"
    assert extract_main(html, URL).paragraphs == BODY


def test_a_wrapper_named_like_chrome_around_the_whole_page_is_not_chrome() -> None:
    html = f"""<html><body><div class="l-outer l-outer--nav"><form id="aspnetForm">
    <div class="text">{_paragraphs(BODY)}</div></form></div></body></html>"""
    assert extract_main(html, URL).paragraphs == BODY


def test_hidden_elements_are_not_text() -> None:
    html = f"""<html><body><article>{_paragraphs(BODY)}
    <div style="display: none"><p>{CHROME[6]}</p></div>
    <div hidden><p>{CHROME[3]}</p></div>
    <div aria-hidden="true"><p>{CHROME[7]}</p></div>
    </article></body></html>"""
    assert extract_main(html, URL).paragraphs == BODY


ARABIC = [
    "قال المجلس البلدي يوم الثلاثاء إنه سيمد خدمة الحافلات الليلية إلى جميع الأحياء، بعد عام "
    "تضاعف فيه عدد الركاب على الخطين التجريبيين.",
    "وأضاف المسؤولون أن الخطوط الجديدة ستبدأ في سبتمبر وأن كلفتها ستكون نحو أربعة ملايين في "
    "السنة، تدفعها الميزانية الإقليمية.",
]


def test_text_given_as_str_is_never_decoded_again() -> None:
    # The page was decoded already (by the crawl); a stale <meta charset> must not re-decode it.
    html = f"""<html lang="ar" dir="rtl"><head><meta charset="windows-1256">
    <meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"></head>
    <body><article>{_paragraphs(ARABIC)}</article></body></html>"""
    result = extract_main(html, URL)
    assert result.paragraphs == ARABIC
    assert result.language == "ar"


def test_nul_bytes_bom_and_controls_leave_no_trace() -> None:
    nul = BODY[0].replace("night bus", "night\x00 bus")
    html = f"\ufeff<html><body><article><p>{nul}</p><p>{BODY[1]}\x0b</p></article></body></html>"
    result = extract_main(html, URL)
    assert result.paragraphs == [BODY[0], BODY[1]]
    assert not any("\x00" in p or "\ufffd" in p for p in result.paragraphs)


def test_mojibake_in_the_str_is_kept_as_given() -> None:
    # Not this function's business to repair: it extracts what it is given.
    body = [p.replace("a", "Ã¡") for p in BODY]
    result = extract_main(f"<html><body><article>{_paragraphs(body)}</article></body>", URL)
    assert result.paragraphs == body


def test_nesting_deeper_than_any_recursion_limit() -> None:
    depth = 20_000
    html = "<html><body>" + "<div>" * depth + _paragraphs(BODY) + "</div>" * depth
    assert extract_main(html, URL).paragraphs == BODY


def test_line_breaks_and_whitespace_are_collapsed() -> None:
    html = (
        "<html><body><article><p>  The council   voted\n on Tuesday<br>to extend the night "
        "bus service to every district, after a year of trials.</p></article></body></html>"
    )
    assert extract_main(html, URL).paragraphs == [
        "The council voted on Tuesday to extend the night bus service to every district, "
        "after a year of trials."
    ]


def test_published_and_title_fall_back_through_the_page() -> None:
    html = f"""<html><head><title>Buses - Example News</title>
    <meta name="content-language" content="de, en"></head><body>
    <article><h1>Buses everywhere</h1><time datetime="2025-06-10">10 June</time>
    {_paragraphs(BODY)}</article></body></html>"""
    result = extract_main(html, URL)
    assert result.title == "Buses everywhere"
    assert result.published == "2025-06-10"
    assert result.language == "de"
    assert result.paragraphs == BODY
