"""Extraction: sample 004 byte for byte, generic and page modes, metadata, bad input, encodings."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from crawler.mirror.routes import SITES_DIR
from crawler.text.extract import (
    Article,
    ExtractionError,
    SiteRules,
    extract_article,
    extract_text,
    parse_datetime,
)
from spiders.tdi import RULES
from tests.conftest import data_dir, expected_text

TDI = SITES_DIR / "tdi"
SITE = "https://thediplomaticinsight.com"
SAMPLE_SLUG = "iranian-fm-discusses-gaza-with-hamas-and-islamic-jihad-leaders"
SAMPLE_URL = f"{SITE}/{SAMPLE_SLUG}/"
PKT = timezone(timedelta(hours=5))
SAMPLE_004 = "004_2c00aa427ae8dd86.txt"


def tdi_page(slug: str = SAMPLE_SLUG) -> str:
    return (TDI / f"{slug}.html").read_text(encoding="utf-8")


def expected_004() -> str:
    return expected_text(SAMPLE_004).decode("utf-8")


# ------------------------------------------------------------------ sample 004


def test_sample_004_byte_exact_with_site_rules() -> None:
    text = extract_text(tdi_page(), SAMPLE_URL, RULES)
    assert text.encode("utf-8") == expected_text(SAMPLE_004)


def test_sample_004_from_bytes_as_fetched() -> None:
    # The capture hands over bytes plus the encoding it decided; the result must not change.
    data = (TDI / f"{SAMPLE_SLUG}.html").read_bytes()
    article = extract_article(data, SAMPLE_URL, RULES, encoding="utf-8")
    assert article.text == expected_004()


def test_sample_004_metadata() -> None:
    article = extract_article(tdi_page(), SAMPLE_URL, RULES)
    assert article.extractor == "rules"
    assert article.warnings == ()
    assert article.title == "Iranian FM discusses Gaza with Hamas and Islamic Jihad leaders"
    assert article.authors == ("Maham Shabir",)
    assert article.published == datetime(2023, 10, 24, 17, 5, 32, tzinfo=PKT)
    assert article.published is not None and article.published.utcoffset() == timedelta(hours=5)
    assert article.modified == datetime(2023, 10, 24, 17, 7, 10, tzinfo=PKT)
    assert article.tags == ("Gaza", "Hamas", "Iran", "Islamic Jihad", "Palestine")
    assert article.section == "Middle East"
    assert article.language == "en-US"
    assert article.canonical_url == SAMPLE_URL
    assert article.description is not None and article.description.startswith("Tehran, 24 Oct")
    assert article.images == (
        {
            "src": f"{SITE}/wp-content/uploads/2023/10/Iranian-FM-Amirabdollahian-696x392.jpg",
            "caption": "",
        },
    )
    assert article.text == article.title + "\n\n" + "\n\n".join(article.paragraphs) + "\n"


def test_generic_extraction_of_the_tdi_page_drops_the_chrome() -> None:
    article = extract_article(tdi_page(), SAMPLE_URL)
    expected = expected_004().rstrip("\n").split("\n\n")
    assert article.extractor == "generic"
    assert "no site rules; used the generic extractor" in article.warnings
    assert "Also read" not in article.text
    assert "Previous article" not in article.text
    assert "A dedicated and passionate" not in article.text
    assert article.paragraphs[0] == expected[1]
    assert article.paragraphs[-1] == expected[-1]
    assert [article.title, *article.paragraphs] == expected
    # metadata comes from the same tree: meta tags and JSON-LD
    assert article.authors == ("Maham Shabir",)
    assert article.published == datetime(2023, 10, 24, 17, 5, 32, tzinfo=PKT)


# A page of another layout: no WordPress classes, JSON-LD metadata, chrome of its own.
OTHER_LAYOUT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Ports deal signed in Karachi | Harbour Times</title>
<meta property="og:title" content="Ports deal signed in Karachi | Harbour Times">
<meta property="og:site_name" content="Harbour Times">
<meta name="description" content="Two port operators signed a terminal deal.">
<script type="application/ld+json">
{"@context": "https://schema.org", "@graph": [
 {"@type": "NewsArticle", "headline": "Ports deal signed in Karachi",
  "datePublished": "2024-03-05T09:15:00Z", "dateModified": "2024-03-05T11:00:00Z",
  "author": [{"@id": "#p1"}, {"@type": "Person", "name": "Omar Qureshi"}],
  "keywords": "Ports, Shipping, Karachi", "articleSection": "Business"},
 {"@type": "Person", "@id": "#p1", "name": "Hina Baig"}]}
</script></head>
<body>
<header class="masthead"><nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/business">Business</a></li></ul></nav></header>
<main><article class="story">
<h1 class="story-headline">Ports deal signed in Karachi</h1>
<div class="byline">By Hina Baig and Omar Qureshi · 5 March 2024</div>
<section class="story-text">
<p>KARACHI: Two port operators signed an agreement on Tuesday to build and run a new container
terminal at the western wharves, officials said.</p>
<p>The terminal is expected to handle about one million containers a year once its three berths are
complete, easing congestion that has delayed ships for weeks at a time.</p>
<p>Related: Shipping lines add a weekly service to the Gulf</p>
<p>Construction will begin after the monsoon season, and the first berth should open within two
years, according to the port authority.</p>
<p>Traders welcomed the agreement, saying that shorter waiting times would lower freight costs for
exporters of textiles and rice.</p>
</section>
<aside class="share"><a href="#">Share on X</a> <a href="#">Share on Facebook</a></aside>
</article>
<section class="comments"><h3>Comments</h3><p>Be the first to comment.</p></section>
</main>
<footer><p>© 2024 Harbour Times. All rights reserved.</p><p>Contact · Advertise · Privacy</p>
</footer></body></html>"""
OTHER_URL = "https://harbour.example/business/ports-deal-signed-in-karachi"


def test_generic_extraction_of_another_layout() -> None:
    article = extract_article(OTHER_LAYOUT, OTHER_URL)
    assert article.extractor == "generic"
    assert article.title == "Ports deal signed in Karachi"
    assert article.paragraphs[0].startswith("KARACHI: Two port operators signed")
    assert article.paragraphs[-1].startswith("Traders welcomed the agreement")
    assert "container terminal at the western wharves" in article.paragraphs[0]
    for chrome in ("Related:", "Share on", "All rights reserved", "Home", "Be the first"):
        assert chrome not in article.text
    assert article.authors == ("Hina Baig", "Omar Qureshi")  # @id reference resolved
    assert article.published == datetime(2024, 3, 5, 9, 15, tzinfo=UTC)
    assert article.tags == ("Ports", "Shipping", "Karachi")
    assert article.section == "Business"
    assert article.language == "en"


def test_site_rules_that_miss_fall_back_to_the_generic_extractor_with_a_warning() -> None:
    article = extract_article(OTHER_LAYOUT, OTHER_URL, RULES)
    assert article.extractor == "generic"
    assert "body selector missed; fell back to the generic extractor" in article.warnings
    assert article.paragraphs[0].startswith("KARACHI:")
    assert "Related:" not in article.text


# ------------------------------------------------------------------ page mode


def test_page_mode_looks_like_the_raw_sample() -> None:
    raw = (data_dir() / "samples/004_2c00aa427ae8dd86.txt").read_text(encoding="utf-8")
    article = extract_article(tdi_page(), SAMPLE_URL, RULES, mode="page")
    text = article.text
    assert article.extractor == "resiliparse"
    assert not text.startswith(article.title or "?")  # like the sample: no headline
    assert text.startswith("Tehran, 24 October 2023 (TDI):")
    for paragraph in expected_004().rstrip("\n").split("\n\n")[1:]:
        assert paragraph in text
    assert "Also read:\u00a0President of Pakistan stands with Palestine, calls for UN" in text
    assert "Also read:\u00a0Iran calls for OIC sanctions on Israel amid Gaza crisis" in text
    assert "Previous articleWorld Polio Day 2023\nNext articleZambia Independence Day 2023" in text
    assert "\nMaham Shabir\nA dedicated and passionate undergraduate scholar" in text
    assert "LEAVE A REPLY" not in text and "RELATED ARTICLES" not in text
    assert "\n\n\n" not in text and text.endswith("\n")
    # the same blocks in the same order as the raw sample
    positions = [text.index(block) for block in raw.split("\n\n")]
    assert positions == sorted(positions)
    # metadata does not depend on the text mode
    assert article.authors == ("Maham Shabir",)
    assert article.title == "Iranian FM discusses Gaza with Hamas and Islamic Jihad leaders"


# ------------------------------------------------------------------ every mirror article

MIRROR_ARTICLES = sorted(
    path.stem for path in TDI.glob("*.html") if " single-post " in path.read_text(encoding="utf-8")
)


def test_mirror_has_six_articles() -> None:
    assert len(MIRROR_ARTICLES) == 6


@pytest.mark.parametrize("slug", MIRROR_ARTICLES)
def test_every_mirror_article_extracts_cleanly_with_rules(slug: str) -> None:
    article = extract_article(tdi_page(slug), f"{SITE}/{slug}/", RULES)
    assert article.extractor == "rules"
    assert article.warnings == ()
    assert article.paragraphs[0].split(" (TDI): ")[0].endswith("2023")  # dateline first
    assert article.published is not None and article.published.utcoffset() == timedelta(hours=5)
    assert article.authors and article.tags and article.section
    for chrome in (
        "Also read",
        "Previous article",
        "Next article",
        "TAGS",
        "Advertisement",
        "LEAVE A REPLY",
        "RELATED ARTICLES",
    ):
        assert chrome not in article.text


def test_blocks_headings_quotes_lists_and_captions() -> None:
    slug = "tdi-hosts-roundtable-on-climate-diplomacy-in-islamabad"
    article = extract_article(tdi_page(slug), f"{SITE}/{slug}/", RULES)
    assert "Loss and damage" in article.paragraphs  # subheading kept as its own paragraph
    quote = (
        "\u201cAdaptation is no longer a choice for us; it is a matter of survival,\u201d one "
        "of the panellists told the audience."
    )
    assert article.paragraphs.count(quote) == 1  # <blockquote><p> not doubled
    assert "simpler access to climate finance for developing countries;" in article.paragraphs
    assert "operational at\u202fCOP28." in article.text  # narrow no-break space kept
    caption = "Participants of the roundtable on climate diplomacy in Islamabad."
    assert caption not in article.text
    assert {
        "src": f"{SITE}/wp-content/uploads/2023/10/TDI-climate-roundtable-panel.jpg",
        "caption": caption,
    } in article.images
    assert all("banner" not in image["src"] for image in article.images)  # ad image dropped


# ------------------------------------------------------------------ text shaping

SIMPLE_RULES = SiteRules(
    title=("h1",), body=("div.body",), drop=(".box",), drop_text=(r"^Advertisement$",)
)


def simple(body: str, title: str = "Headline") -> Article:
    return extract_article(
        f"<html><body><h1>{title}</h1><div class='body'>{body}</div></body></html>",
        "https://x.example/a",
        SIMPLE_RULES,
    )


def test_whitespace_is_collapsed_inside_and_trimmed_at_edges_only() -> None:
    article = simple(
        "<p>\n\t  One\n  two\tthree\u00a0four\u202ffive  \n</p><p>\u00a0</p><p>a<br>b</p>"
    )
    assert article.paragraphs == ("One two three\u00a0four\u202ffive", "a b")


def test_nested_blocks_split_instead_of_doubling() -> None:
    article = simple(
        "<blockquote>Intro <p>First</p> middle <p>Second</p>end</blockquote>"
        "<ul><li>Item <ul><li>Sub</li></ul></li></ul>"
    )
    assert article.paragraphs == ("Intro", "First", "middle", "Second", "end", "Item", "Sub")


def test_drop_selectors_and_drop_text_remove_chrome_but_keep_tails() -> None:
    article = simple(
        "<p>Keep <span class='box'>chrome</span>this</p><div class='box'><p>gone</p>"
        "</div><p>Advertisement</p><script>var x = 1;</script><p>Last</p>"
    )
    assert article.paragraphs == ("Keep this", "Last")


def test_lead_outside_the_body_becomes_the_first_paragraph() -> None:
    rules = SiteRules(title=("h1",), body=("div.body",), lead=("p.lead",))
    article = extract_article(
        "<html><body><h1>T</h1><p class='lead'>The lead.</p>"
        "<div class='body'><p>Body.</p></div></body></html>",
        "https://x.example/a",
        rules,
    )
    assert article.lead == "The lead."
    assert article.paragraphs == ("The lead.", "Body.")


def test_selector_syntax_attr_xpath_and_meta() -> None:
    rules = SiteRules(
        title=("xpath://meta[@name='twitter:title']/@content",),
        body=("div.body",),
        published=("span.date::attr(data-ts)",),
        authors=("meta[name=author]",),
        timezone="Asia/Tehran",
    )
    article = extract_article(
        "<html><head><meta name='twitter:title' content='From XPath'>"
        "<meta name='author' content='A. Writer'></head><body><span class='date' "
        "data-ts='2025-06-11 19:16'>x</span><div class='body'><p>Text.</p></div></body></html>",
        "https://x.example/a",
        rules,
    )
    assert article.title == "From XPath"
    assert article.authors == ("A. Writer",)
    assert article.published == datetime(
        2025, 6, 11, 19, 16, tzinfo=timezone(timedelta(hours=3, minutes=30))
    )


def test_missing_fields_are_warned_about() -> None:
    article = simple("<p>Only text.</p>", title="")
    assert article.title is None
    assert article.text == "Only text.\n"
    assert "no title" in article.warnings
    assert "no published date" in article.warnings


def test_bad_json_ld_is_ignored_with_a_warning() -> None:
    article = extract_article(
        "<html><head><script type='application/ld+json'>{not json</script></head><body>"
        "<h1>T</h1><div class='body'><p>Text.</p></div></body></html>",
        "https://x.example/a",
        SIMPLE_RULES,
    )
    assert article.paragraphs == ("Text.",)
    assert "bad JSON-LD block ignored" in article.warnings


# ------------------------------------------------------------------ dates

TEHRAN = timezone(timedelta(hours=3, minutes=30))


@pytest.mark.parametrize(
    ("value", "zone", "expected", "assumed"),
    [
        ("2023-10-24T17:05:32+05:00", None, datetime(2023, 10, 24, 17, 5, 32, tzinfo=PKT), False),
        ("2023-10-24T12:05:32Z", None, datetime(2023, 10, 24, 12, 5, 32, tzinfo=UTC), False),
        (
            "2023-10-24T17:05:32.5+0500",
            None,
            datetime(2023, 10, 24, 17, 5, 32, 500000, tzinfo=PKT),
            False,
        ),
        (
            "Tue, 24 Oct 2023 12:05:32 +0000",
            None,
            datetime(2023, 10, 24, 12, 5, 32, tzinfo=UTC),
            False,
        ),
        ("2025-06-11 19:16:00", "Asia/Tehran", datetime(2025, 6, 11, 19, 16, tzinfo=TEHRAN), False),
        (
            "Jun 11, 2025, 7:16 PM",
            "Asia/Tehran",
            datetime(2025, 6, 11, 19, 16, tzinfo=TEHRAN),
            False,
        ),
        ("2025-06-12", None, datetime(2025, 6, 12, tzinfo=UTC), True),
        ("October 24, 2023", None, datetime(2023, 10, 24, tzinfo=UTC), True),
        ("yesterday", None, None, False),
        ("", None, None, False),
    ],
)
def test_parse_datetime(
    value: str, zone: str | None, expected: datetime | None, assumed: bool
) -> None:
    from zoneinfo import ZoneInfo

    parsed, was_assumed = parse_datetime(value, ZoneInfo(zone) if zone else None)
    assert parsed == expected
    assert was_assumed is assumed
    if parsed is not None:
        assert parsed.tzinfo is not None and parsed.utcoffset() == expected.utcoffset()  # type: ignore[union-attr]


def test_naive_page_date_without_a_site_zone_is_utc_with_a_warning() -> None:
    article = extract_article(
        "<html><head><meta property='article:published_time' content='2024-01-02T03:04:05'>"
        "</head><body><h1>T</h1><div class='body'><p>x</p></div></body></html>",
        "https://x.example/a",
        SIMPLE_RULES,
    )
    assert article.published == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert "published date has no zone; assumed UTC" in article.warnings


# ------------------------------------------------------------------ malformed input

DEEP = "<html><body>" + "<div>" * 10_000 + "<p>deep text</p>" + "</div>" * 10_000 + "</body></html>"
DEEP_UNCLOSED = "<html><body>" + "<div><span>" * 10_000 + "text"

MALFORMED: list[tuple[str, str | bytes, str | None]] = [
    # (label, input, ExtractionError reason or None when some text may come out)
    ("empty string", "", "empty-document"),
    ("whitespace", " \n\t ", "empty-document"),
    ("empty bytes", b"", "empty-document"),
    ("NUL bytes", b"\x00\x00\x00", "empty-document"),
    ("NULs around text", "\x00<p>\x00</p>\x00", "empty-body"),
    ("garbage", "<<<>>>&&&;;<!--<![CDATA[", "empty-body"),
    ("binary", bytes(range(256)) * 4, None),
    ("wrong charset", b"<meta charset='x-no-such-charset'><p>caf\xe9 cr\xe8me</p>", None),
    ("unclosed tags", "<html><body><div class='body'><p>Unclosed <b>bold <i>and <p>more", None),
    ("deep nesting", DEEP, None),
    ("deep unclosed nesting", DEEP_UNCLOSED, None),
    ("only chrome", "<html><body><nav><a href='/'>Home</a></nav></body></html>", "empty-body"),
    ("script only", "<script>document.write('<p>x</p>')</script>", "empty-body"),
    ("lone surrogate", "<p>bad \ud800 surrogate</p>", None),
]


@pytest.mark.parametrize(("label", "data", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
@pytest.mark.parametrize("rules", [None, SIMPLE_RULES, RULES], ids=["generic", "simple", "tdi"])
@pytest.mark.parametrize("mode", ["article", "page"])
def test_malformed_input_raises_only_extraction_error(
    label: str, data: str | bytes, reason: str | None, rules: SiteRules | None, mode: str
) -> None:
    try:
        article = extract_article(data, "https://x.example/a", rules, mode=mode)
    except ExtractionError as exc:
        assert exc.reason
        if reason is not None:
            assert exc.reason == reason
    else:
        assert reason is None, f"{label}: expected ExtractionError({reason})"
        assert article.text.endswith("\n") and article.paragraphs


def test_unclosed_tags_still_give_their_text() -> None:
    article = extract_article(
        "<html><body><h1>Head<div class='body'><p>One <b>bold<p>Two",
        "https://x.example/a",
        SIMPLE_RULES,
    )
    assert article.paragraphs == ("One bold", "Two")


def test_unknown_mode_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="mode must be one of") as info:
        extract_article("<p>x</p>", "https://x.example/a", mode="markdown")
    assert not isinstance(info.value, ExtractionError)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"title": "h1", "body": ("div",)}, TypeError),  # a bare string, not a tuple
        ({"title": ("h1",), "body": ()}, ValueError),
        ({"title": ("h1[",), "body": ("div",)}, ValueError),
        ({"title": ("xpath://h1[",), "body": ("div",)}, ValueError),
        ({"title": ("h1",), "body": ("div",), "drop_text": ("(",)}, ValueError),
        ({"title": ("h1",), "body": ("div",), "timezone": "Mars/Olympus"}, ValueError),
    ],
)
def test_site_rules_are_validated_when_declared(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        SiteRules(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ encodings

ARABIC_TITLE = "وزير الخارجية يلتقي نظيره"
ARABIC_BODY = (
    "التقى وزير الخارجية اليوم نظيره في العاصمة وبحثا العلاقات الثنائية والتطورات الإقليمية.",
    "وأكد الجانبان على أهمية تعزيز التعاون في مختلف المجالات.",
)
ARABIC_RULES = SiteRules(title=("h1",), body=("div.story",))


def arabic_page(head: str = "") -> str:
    paragraphs = "".join(f"<p>{p}</p>" for p in ARABIC_BODY)
    return (
        f"<html dir='rtl' lang='ar'><head>{head}<title>خبر</title></head><body><article>"
        f"<h1>{ARABIC_TITLE}</h1><div class='story'>{paragraphs}</div></article></body></html>"
    )


def test_windows_1256_bytes_with_meta_charset() -> None:
    data = arabic_page('<meta charset="windows-1256">').encode("cp1256")
    article = extract_article(data, "https://ar.example/a", ARABIC_RULES)
    assert article.title == ARABIC_TITLE
    assert article.paragraphs == ARABIC_BODY
    assert article.language == "ar"


def test_windows_1256_bytes_with_http_equiv_charset() -> None:
    head = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    article = extract_article(
        arabic_page(head).encode("cp1256"), "https://ar.example/a", ARABIC_RULES
    )
    assert article.paragraphs == ARABIC_BODY


def test_windows_1256_bytes_without_any_charset_are_detected() -> None:
    article = extract_article(arabic_page().encode("cp1256"), "https://ar.example/a", ARABIC_RULES)
    assert article.title == ARABIC_TITLE
    assert article.paragraphs == ARABIC_BODY


def test_utf8_bytes_without_charset() -> None:
    article = extract_article(arabic_page().encode("utf-8"), "https://ar.example/a", ARABIC_RULES)
    assert article.paragraphs == ARABIC_BODY


def test_the_callers_encoding_wins_over_a_wrong_meta_charset() -> None:
    # What the HTTP header said (kept by the capture) beats a stale <meta>.
    data = arabic_page('<meta charset="iso-8859-1">').encode("utf-8")
    assert (
        extract_article(data, "https://ar.example/a", ARABIC_RULES, encoding="utf-8").paragraphs
        == ARABIC_BODY
    )
    wrong = extract_article(data, "https://ar.example/a", ARABIC_RULES)
    assert wrong.paragraphs != ARABIC_BODY  # the meta alone misleads: the argument matters


def test_bom_wins() -> None:
    data = b"\xef\xbb\xbf" + arabic_page('<meta charset="windows-1256">').encode("utf-8")
    assert extract_article(data, "https://ar.example/a", ARABIC_RULES).paragraphs == ARABIC_BODY


def test_article_is_plain_data() -> None:
    article = extract_article(tdi_page(), SAMPLE_URL, RULES)
    # Everything but the datetimes is JSON-ready, for the sidecar.
    payload = dataclasses.asdict(article)
    payload["published"] = article.published.isoformat() if article.published else None
    payload["modified"] = article.modified.isoformat() if article.modified else None
    assert json.loads(json.dumps(payload))["published"] == "2023-10-24T17:05:32+05:00"


def test_deep_nesting_is_read_to_libxml2s_limit_with_a_warning() -> None:
    data = (
        "<html><body><h1>Deep</h1><div class='body'><p>Shallow text.</p>"
        + "<div>" * 10_000
        + "<p>too deep</p>"
        + "</div>" * 10_000
        + "</div></body></html>"
    )
    for mode in ("article", "page"):
        article = extract_article(data, "https://x.example/a", SIMPLE_RULES, mode=mode)
        assert "document nested too deeply; read to depth 256" in article.warnings
        assert "Shallow text." in article.paragraphs
        assert "too deep" not in article.text


def test_extraction_in_threads_gives_the_same_text() -> None:
    # The pipeline extracts in a thread pool: per-thread parsers must not mix documents up.
    from concurrent.futures import ThreadPoolExecutor

    slugs = MIRROR_ARTICLES * 4
    pages = {slug: tdi_page(slug) for slug in MIRROR_ARTICLES}
    alone = {slug: extract_text(pages[slug], f"{SITE}/{slug}/", RULES) for slug in MIRROR_ARTICLES}
    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = list(pool.map(lambda s: extract_text(pages[s], f"{SITE}/{s}/", RULES), slugs))
    assert texts == [alone[slug] for slug in slugs]


@pytest.mark.parametrize("page", ["tdi", "other"])
def test_the_one_parse_generic_path_reads_the_same_metadata_as_lxml(page: str) -> None:
    # Without rules the page is parsed once, by lexbor; with rules that miss, lxml reads the
    # metadata and the same generic extractor the body: every field must agree.
    html, url = (tdi_page(), SAMPLE_URL) if page == "tdi" else (OTHER_LAYOUT, OTHER_URL)
    missing = SiteRules(title=(), body=("div.no-such-body",))
    one, two = extract_article(html, url), extract_article(html, url, missing)
    assert one.extractor == two.extractor == "generic"
    for name in (
        "title",
        "paragraphs",
        "published",
        "published_text",
        "modified",
        "authors",
        "tags",
        "section",
        "language",
        "description",
        "canonical_url",
        "images",
    ):
        assert getattr(one, name) == getattr(two, name), name
    assert one.authors and one.published is not None and one.tags


def test_rules_digest_is_of_every_field_and_follows_a_change() -> None:
    # Kept per rules after the first text: still the digest of the rules' JSON, and rules that
    # differ in any field (or are rebuilt equal) get theirs.
    import hashlib

    from crawler.text.extract import rules_digest

    fields = json.dumps(dataclasses.asdict(RULES), sort_keys=True, ensure_ascii=False)
    expected = "sha256:" + hashlib.sha256(fields.encode("utf-8")).hexdigest()
    assert rules_digest(RULES) == rules_digest(RULES) == expected
    assert rules_digest(dataclasses.replace(RULES)) == expected
    changed = dataclasses.replace(RULES, drop=(*RULES.drop, "div.more"))
    assert rules_digest(changed) not in (None, expected)
    assert rules_digest(None) is None
