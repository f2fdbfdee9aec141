"""crawler.text.generic: the body of hand-written pages, and none of their chrome."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize("html", ["", "   ", "<p>", "</div></p>", "<p>. , ;</p>"])
def test_empty_or_trivial_input(html: str) -> None:
    result = extract_main(html, URL)
    assert result.paragraphs == []
    assert result.published is None


def test_a_tiny_page_is_all_content_but_its_links_and_chrome() -> None:
    # Too little text for chrome around an article: what it has is the content (trafilatura's
    # baseline, Readability's test page 005), except link lines and marked chrome.
    html = """<html><body>plain text, no markup <nav><a href="/">Home</a></nav>
    <p><a href="/a">Another story</a></p></body></html>"""
    assert extract_main(html, URL).paragraphs == ["plain text, no markup"]
    assert extract_main("plain text, no markup", URL).paragraphs == ["plain text, no markup"]


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


def test_soft_hyphens_go_and_text_is_nfc() -> None:
    # "Wei\xadne" is how a hyphenating CMS writes "Weine"; Bengali's য় comes decomposed or not.
    # Zero-width spaces go too; a zero-width non-joiner stays (Persian spells words with it).
    sentence = (
        "Die Wei\xadne aus St. Mag\xadda\xadle\xadna sind seit dem\u200b Mittelalter bekannt "
        "und geschätzt, auch in Teheran (\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645)."
    )
    decomposed = " ".join(["\u0995\u09df"] * 30)  # U+09DF is U+09AF U+09BC in NFC
    html = f"<html><body><article><p>{sentence}</p><p>{decomposed}.</p></article></body></html>"
    paragraphs = extract_main(html, URL).paragraphs
    assert paragraphs[0] == sentence.replace("\xad", "").replace("\u200b", "")
    assert "\u200c" in paragraphs[0]
    assert paragraphs[1] == " ".join(["\u0995\u09af\u09bc"] * 30) + "."


def test_a_link_paragraph_inside_the_body_stays_a_link_line_after_it_goes() -> None:
    inside = '<p><a href="/report.pdf">Read the full report</a></p>'
    after = '<p><a href="/other">Another story entirely</a></p>'
    html = (
        f"<html><body><article><p>{BODY[0]}</p>{inside}<p>{BODY[1]}</p>"
        f"<p>{BODY[2]}</p>{after}</article></body></html>"
    )
    assert extract_main(html, URL).paragraphs == [BODY[0], "Read the full report", *BODY[1:]]


def test_the_standfirst_before_the_body_container_is_kept() -> None:
    lead = "Night buses will run in every district from September, the council decided on Tuesday."
    body = "".join(f"<p>{p}</p>" for p in BODY * 2)
    html = (
        '<html><body><div class="page"><div class="intro"><div>'
        f"<p>{lead}</p></div></div>"
        f'<div class="story-body">{body}</div>'
        '<div class="more">Photo: city archive</div></div></body></html>'
    )
    assert extract_main(html, URL).paragraphs == [lead, *BODY, *BODY]


def test_the_post_body_wins_over_the_main_content_around_it() -> None:
    # A body-named element inside one named for the page's main content: the main content
    # holds the post and, below it, the next post's excerpt.
    excerpt = "Next week: why the tram extension was delayed again."
    html = (
        '<html><body><div class="main-content">'
        f'<div class="post-content">{_paragraphs(BODY)}</div>'
        f'<div class="excerpt"><div>{excerpt}</div></div>'
        "</div></body></html>"
    )
    assert extract_main(html, URL).paragraphs == BODY


def test_a_second_article_beside_the_first_is_not_merged_into_it() -> None:
    # Two <article>s are two articles, however much the second one reads like body text.
    other = [p.replace("night bus", "tram") for p in BODY[:2]]
    html = (
        "<html><body><div>"
        f"<article>{_paragraphs(BODY)}</article><article>{_paragraphs(other)}</article>"
        "</div></body></html>"
    )
    assert extract_main(html, URL).paragraphs == BODY


def test_a_list_at_the_start_of_the_body_is_kept_unless_it_is_links() -> None:
    items = ["Two buses an hour", "Four new lines", "Night fares unchanged"]
    links = '<ul><li><a href="/a">More transport news</a></li></ul>'
    html = (
        "<html><body><article>"
        f"{links}<ul>{''.join(f'<li>{i}</li>' for i in items)}</ul>{_paragraphs(BODY)}"
        "</article></body></html>"
    )
    assert extract_main(html, URL).paragraphs == [*items, *BODY]


def test_code_after_the_last_paragraph_is_kept() -> None:
    code = "<pre>nightbus --all</pre>"
    html = f"<html><body><article>{_paragraphs(BODY)}{code}</article></body></html>"
    assert extract_main(html, URL).paragraphs == [*BODY, "nightbus --all"]


def test_the_standfirst_in_the_header_above_the_body_wrapper_is_kept() -> None:
    lead = "Night buses will run in every district from September, the council decided on Tuesday."
    body = "".join(f"<p>{p}</p>" for p in BODY * 2)
    html = (
        '<html><body><div class="story"><div class="head"><div class="standfirst">'
        f"<span>{lead}</span></div></div>"
        f'<div class="wrap"><div class="story-body">{body}</div><div>Photo: archive</div></div>'
        "</div></body></html>"
    )
    assert extract_main(html, URL).paragraphs == [lead, *BODY, *BODY]


def test_a_body_full_of_short_lines_still_outweighs_a_sentence_elsewhere() -> None:
    # A recipe: two paragraphs and forty ingredients; beside it, a sentence about something
    # else. Short lines count neither for nor against the container holding them.
    ingredients = [f"{n} g of ingredient number {n}" for n in range(1, 41)]
    aside = "Evening classes start in November at the school."
    html = (
        "<html><body><article class='recipe'>"
        f"{_paragraphs(BODY[:2])}<ul>{''.join(f'<li>{i}</li>' for i in ingredients)}</ul>"
        "</article>"
        f"<div class='school'><p>{aside}</p></div></body></html>"
    )
    assert extract_main(html, URL).paragraphs == [*BODY[:2], *ingredients]


def test_a_credit_line_and_the_articles_trailer_are_not_body() -> None:
    # A picture's credit inside the body, and after the last paragraph a copyright notice and
    # an invitation to download the app: the publisher's, not the article's.
    html = f"""<html><body><article>
    <p>{BODY[0]}</p>
    <p>© Getty Images</p>
    <p>{BODY[1]}</p>
    <p>Titelbild: Jane Doe / Example News</p>
    <p>{BODY[2]}</p>
    <p>For the latest stories and breaking news download the Example News app for iOS and
    Android, free of charge.</p>
    <p>© 2025, Example News. This article is the property of Example News and may not be
    republished without permission.</p>
    </article></body></html>"""
    assert extract_main(html, URL).paragraphs == BODY


def test_a_paragraph_about_copyright_stays_even_last() -> None:
    mid = (
        "The council said the copyright in the route maps stays with the designers, who will "
        "be paid for each new edition printed for the bus stops."
    )
    html = f"""<html><body><article>
    <p>{BODY[0]}</p><p>{mid}</p><p>{BODY[1]}</p><p>{BODY[2]}</p><p>{mid}</p>
    </article></body></html>"""
    assert extract_main(html, URL).paragraphs == [BODY[0], mid, BODY[1], BODY[2], mid]


def test_a_modifier_saying_what_an_element_holds_is_not_chrome() -> None:
    # "o-section--has-ads", "has-sharing": the element holds ads or sharing buttons beside the
    # article; it is not an advertisement (the ads inside it are chrome by their own names).
    from crawler.text.generic import _name_flags

    assert _name_flags("o-section o-section--has-ads") == (0, False)
    assert _name_flags("contentHeader has-sharing") == (0, False)
    assert _name_flags("TestReport with-ads") == (0, False)
    assert _name_flags("ad-slot")[1]
    assert _name_flags("share-buttons")[1]
    assert _name_flags("o-section--ads")[1]


def test_a_body_holding_a_long_link_list_is_the_container_not_one_of_its_items() -> None:
    # A podcast's shownotes: the post's prose and a long list of links inside the element
    # named for the body. The list sinks the body's value, but a list nested in one of its
    # items, holding a line of prose, is not the article.
    links = "".join(
        f'<li><a href="/l/{i}">Link number {i} of the shownotes to another site</a></li>'
        for i in range(30)
    )
    item = (
        "<li>Guests<ul><li>Between the links a longer note on the episode's guests, who joined "
        "us from the studio in Hamburg on a rainy Tuesday evening.</li></ul></li>"
    )
    html = f"""<html><body><div class="sidebar"><a href="/">Home</a></div>
    <article><div class="entry-content">{_paragraphs(BODY)}
    <ul>{links}{item}</ul></div></article></body></html>"""
    assert extract_main(html, URL).paragraphs[:3] == BODY


def test_a_paragraph_ending_in_a_german_closing_quote_is_a_sentence() -> None:
    # „…“ closes with U+201C: a short quoted line is a paragraph of the post, not a label.
    quoted = "„Ich weiß, ich bin müde und sollte das vielleicht nicht sagen…“"
    html = f"""<html><body><div class="post"><h2><a href="/p">Ein Beitrag</a></h2>
    <p>14. Juni 2013</p><p>{quoted}</p><p>– „Dann sag es nicht“</p></div>
    <div class="widget"><p>Kategorien</p></div></body></html>"""
    assert quoted in extract_main(html, URL).paragraphs


def test_a_short_extraction_gives_way_to_the_pages_prose_outside_chrome() -> None:
    # A product page: the best container holds two lines (under 250 characters); three more
    # paragraphs sit in panels whose link lists sink them. The page's prose outside chrome,
    # more than twice as long, is the text (trafilatura's recovery when its output is short).
    claims = [
        "Our first blend, roasted since 1956 in the hills above the old city, for every "
        "morning of the year and every cup.",
        "Sweet, round and balanced, with notes of dried fruit, of honey and of dark chocolate, "
        "from beans of two continents.",
    ]
    links = "".join(
        f'<li><a href="/p/{i}">Another product of the range, number {i}</a></li>' for i in range(8)
    )
    panels = "".join(
        f'<div class="panel"><div class="text"><p>{p}</p></div><ul>{links}</ul></div>' for p in BODY
    )
    html = f"""<html><body>
    <section class="content-info">{_paragraphs(claims)}</section>
    {panels}</body></html>"""
    assert extract_main(html, URL).paragraphs == [*claims, *BODY]


def test_an_appeal_for_support_and_the_licence_after_the_article_are_not_body() -> None:
    appeal = (
        "If you enjoyed reading this story, would you consider supporting our work? Every "
        "donation keeps the newsroom independent."
    )
    licence = "This text is published under a Creative Commons licence (CC-BY-NC-ND 4.0)."
    html = f"""<html><body><article>{_paragraphs(BODY)}<p>{appeal}</p><p>{licence}</p>
    </article></body></html>"""
    assert extract_main(html, URL).paragraphs == BODY


def test_an_advertising_disclosure_before_the_article_is_not_body() -> None:
    disclosure = (
        "This post contains references to products from one or more of our advertisers. We "
        "may receive compensation when you click on links to those products."
    )
    lead = (
        "Advertising revenue at the city's transport company fell by a fifth last year, the "
        "council's report says, as fewer posters were sold for the buses."
    )
    html = f"<html><body><article><p>{disclosure}</p>{_paragraphs(BODY)}</article></body></html>"
    assert extract_main(html, URL).paragraphs == BODY
    # A lead about advertising is the article's.
    html = f"<html><body><article><p>{lead}</p>{_paragraphs(BODY)}</article></body></html>"
    assert extract_main(html, URL).paragraphs == [lead, *BODY]


def test_chinese_lines_without_sentence_marks_are_paragraphs() -> None:
    # Forty Han characters say about as much as a hundred Latin ones: a blog's lines of
    # Chinese prose, none with a full stop, are the article, not labels.
    lines = [
        "一波波接續性低溫寒流報到 已將新竹尖石鄉後山一帶層層山巒披上嫣紅的彩衣",
        "玉峰道路一路上雲氣山嵐滯留山頭 順路下切蜿蜒道路後不久即抵達來到玉峰國小",
        "美樹美如其名偌大楓香樹早已呈現金黃 泛紅色彩也是愛攝人仕所喜愛造訪之地",
        "第二次造訪美樹發現到營區變了 印象中以前生冷招牌換成了原木招牌可謂匠心獨運",
        "燻黑原木加上金黃色醒目字體 加上了貓頭鷹原木創作也充分發揮了裝飾藝術功力",
    ]
    html = f"""<html><body><div class="entry">{_paragraphs(lines)}</div>
    <div class="sidebar"><p>{CHROME[6]}</p></div></body></html>"""
    assert extract_main(html, URL).paragraphs == lines


def test_hindi_lines_ending_in_a_danda_are_sentences() -> None:
    # "।" ends a Hindi sentence as "." an English one.
    lines = [
        "नगर परिषद ने मंगलवार को रात की बस सेवा को हर जिले तक बढ़ाने का फैसला किया।",
        "परिवहन अधिकारियों ने कहा कि नए मार्ग सितंबर में शुरू होंगे।",
        "बाहरी जिलों के निवासियों ने इस फैसले का स्वागत किया।",
    ]
    html = f"""<html><body><div class="entry">{_paragraphs(lines)}</div>
    <div class="sidebar"><p>{CHROME[6]}</p></div></body></html>"""
    assert extract_main(html, URL).paragraphs == lines


def test_a_page_whose_body_is_drawn_by_script_gives_its_json_ld_article_body() -> None:
    # Nothing in the markup but the menu and a placeholder: the article's text is in its
    # JSON-LD (trafilatura's baseline reads articleBody first), one paragraph a line.
    article = json.dumps(
        {"@type": "NewsArticle", "headline": "Night buses", "articleBody": "\n".join(BODY)}
    )
    html = f"""<html><head><script type="application/ld+json">{article}</script></head>
    <body><nav><a href="/">Home</a> <a href="/world">World</a></nav>
    <div id="app"><p>Loading…</p></div></body></html>"""
    assert extract_main(html, URL).paragraphs == BODY
    # HTML inside articleBody is read as text.
    article = json.dumps({"@type": "Article", "articleBody": _paragraphs(BODY)})
    html = f"""<html><head><script type="application/ld+json">{article}</script></head>
    <body><div id="app"></div></body></html>"""
    assert extract_main(html, URL).paragraphs == BODY


def test_a_read_also_line_with_a_long_headline_is_not_body() -> None:
    # "Read also: <another story's headline>" between the paragraphs, past 60 characters.
    also = "Read also: Council approves new budget for libraries, parks and the two town pools"
    html = f"""<html><body><article><p>{BODY[0]}</p><p>{also}</p>
    <p>{BODY[1]}</p><p>{BODY[2]}</p></article></body></html>"""
    assert extract_main(html, URL).paragraphs == BODY
