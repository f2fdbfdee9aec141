"""Finding a news site's feeds, sitemaps, listing pages and article URLs: pure functions.

What ``newsarchive sources add`` and the generic spider (crawler/crawl/generic.py) decide from
what they fetched, with no I/O here: feed links in a page (trafilatura's ``determine_feed``:
``<link rel=alternate>`` first, feed-looking ``<a>`` links second), sitemaps named in
robots.txt (trafilatura's ``extract_robots_sitemaps``), the usual places of both, and the
tests that tell an article from a section, tag or author page:

* by its URL: a date (``/2025/06/11/``) or a long numeric id in the path, or a slug of several
  words, and no first segment that names a kind of listing (``/tag/``, ``/category/``,
  ``/author/``, ``/page/2``, ...);
* by its page: ``og:type`` ``article``, or JSON-LD ``NewsArticle`` (or another Article type);
  ``og:type`` ``website`` or a JSON-LD ``CollectionPage`` marks a listing;
* by where a listing links it: links in the page's navigation, header, footer or sidebars are
  chrome, not the listing's items.

Only trafilatura's functions of a string are used: its ``find_feed_urls`` and
``sitemap_search`` fetch with their own HTTP client, past the crawl's egress guard, proxy,
robots.txt and User-Agent, so the fetching is the probe's (crawler/crawl/probe.py) and the
generic spider's, through Scrapy.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit, urlunsplit

import lxml.html
from lxml import etree

# Where feeds and sitemaps usually are, tried when a page and robots.txt name none.
FEED_PATHS: Final = ("/feed/", "/rss", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml")
SITEMAP_PATHS: Final = (
    "/sitemap.xml",
    "/sitemap_index.xml",
    "/news-sitemap.xml",
    "/sitemap-news.xml",
    "/sitemap_news.xml",
    "/wp-sitemap.xml",
)

# First path segments of pages that list articles or are no article at all.
LISTING_SEGMENTS: Final = frozenset(
    {
        "about",
        "about-us",
        "amp",
        "archive",
        "archives",
        "author",
        "authors",
        "categories",
        "category",
        "contact",
        "contact-us",
        "feed",
        "feeds",
        "login",
        "newsletter",
        "page",
        "privacy",
        "privacy-policy",
        "rss",
        "search",
        "section",
        "sections",
        "subscribe",
        "tag",
        "tags",
        "terms",
        "topic",
        "topics",
        "wp-admin",
        "wp-content",
        "wp-includes",
        "wp-json",
        "wp-login.php",
    }
)
# Path endings of files that are no page.
_FILE_SUFFIX: Final = re.compile(
    r"\.(?:xml|rss|atom|json|txt|jpe?g|png|gif|webp|svg|ico|css|js|pdf|zip|gz|mp3|mp4)$", re.I
)
_DATE_PATH: Final = re.compile(r"/(?:19|20)\d\d/(?:0?[1-9]|1[0-2])(?:/(?:0?[1-9]|[12]\d|3[01]))?/")
_DATE_DASHED: Final = re.compile(r"(?:^|[/_-])(?:19|20)\d\d-\d\d-\d\d(?:[/_.-]|$)")
_ID: Final = re.compile(r"(?:^|[/_.-])(\d{4,12})(?=[/_.-]|$)")
_YEAR_ONLY: Final = re.compile(r"^(?:19|20)\d\d$")
_PAGINATION: Final = re.compile(r"(?:^|/)(?:page|p)/?\d+/?$|[?&](?:page|p|paged)=\d+", re.I)
_TRACKING: Final = re.compile(r"^(?:utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid|ref|output)$", re.I)
_WORD_SLUG: Final = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+){3,}", re.I)

ARTICLE_TYPES: Final = frozenset(
    {
        "article",
        "newsarticle",
        "reportagenewsarticle",
        "analysisnewsarticle",
        "opinionnewsarticle",
        "backgroundnewsarticle",
        "reviewnewsarticle",
        "blogposting",
        "liveblogposting",
    }
)
LISTING_TYPES: Final = frozenset({"collectionpage", "itemlist", "website", "searchresultspage"})
# Containers whose links are the site's chrome, not a listing's items.
_CHROME: Final = frozenset({"nav", "header", "footer", "aside"})
_CHROME_WORDS: Final = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|navigation|menu|footer|header|sidebar|breadcrumbs?|widget)"
    r"(?:$|[\s_-])",
    re.I,
)
_NEXT_WORDS: Final = re.compile(r"^(?:next|next page|older|older posts|more|»|›|→)\W*$", re.I)


@dataclass(frozen=True, slots=True)
class Link:
    """A link of a page: absolute URL, its text, and whether it sits in the site's chrome."""

    url: str
    text: str
    chrome: bool


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


def same_site(url: str, hosts: Iterable[str]) -> bool:
    """Whether ``url`` is http(s) on one of ``hosts`` (or a subdomain ``www.`` of one)."""
    if not url.startswith(("http://", "https://")):
        return False
    host = host_of(url)
    names = {h.lower() for h in hosts}
    return host in names or host.removeprefix("www.") in {n.removeprefix("www.") for n in names}


def clean_url(url: str) -> str:
    """The URL without fragment and click-tracking parameters."""
    parts = urlsplit(url.strip())
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)
    ]
    rest = "&".join(f"{k}={v}" if v else k for k, v in query)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", rest, ""))


def _parse(html: str | bytes) -> Any:
    if isinstance(html, str):
        # lxml refuses a str with an XML encoding declaration.
        html = html.encode("utf-8")
    if not html.strip():
        return None
    try:
        return lxml.html.fromstring(html, parser=lxml.html.HTMLParser(encoding="utf-8"))
    except (etree.ParserError, ValueError):
        return None


# --------------------------------------------------------------------------- feeds, sitemaps


def feed_links(html: str, url: str) -> list[str]:
    """Feeds a page names (``<link rel=alternate>``, else feed-looking links), on its own site."""
    from trafilatura.feeds import FeedParameters, determine_feed

    base = urlunsplit((*urlsplit(url)[:2], "", "", ""))
    found = determine_feed(html, FeedParameters(base, host_of(url), url))
    return [u for u in dict.fromkeys(found) if same_site(u, [host_of(url)])]


def robots_sitemaps(robots_txt: str, url: str) -> list[str]:
    """The ``Sitemap:`` lines of a robots.txt, as absolute URLs."""
    from trafilatura.sitemaps import extract_robots_sitemaps

    base = urlunsplit((*urlsplit(url)[:2], "", "", ""))
    return list(dict.fromkeys(extract_robots_sitemaps(robots_txt, base)))


def usual_places(url: str, paths: Sequence[str]) -> list[str]:
    base = urlunsplit((*urlsplit(url)[:2], "", "", ""))
    return [base + path for path in paths]


# --------------------------------------------------------------------------- article URLs


def url_score(url: str) -> int:
    """How much a URL looks like one article's: 2 or more yes, 0 or less no.

    A date or a long number in the path, or a slug of four or more words, counts for it; a
    first segment naming a listing (``tag``, ``category``, ``author``, ``page``...), a page
    number, a file that is no page, or the site's home counts against it.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return -9
    path = unquote(parts.path or "/")
    segments = [s for s in path.split("/") if s]
    if not segments or _FILE_SUFFIX.search(path):
        return -9
    if segments[0].lower() in LISTING_SEGMENTS or _PAGINATION.search(path + "?" + parts.query):
        return -9
    if len(segments) == 1 and _YEAR_ONLY.match(segments[0]):
        return -9
    score = 0
    if _DATE_PATH.search(path + "/") or _DATE_DASHED.search(path):
        score += 2
    last = segments[-1]
    if _ID.search("/" + "/".join(segments[-2:])) and not _YEAR_ONLY.match(last):
        score += 2
    if _WORD_SLUG.search(last.rsplit(".", 1)[0]):
        score += 2
    elif len(segments) == 1 and "-" not in last and "_" not in last:
        score -= 2  # /politics, /world: a section
    if len(segments) >= 2 and segments[-2].lower() in ("tag", "tags", "category", "author"):
        score -= 4
    return score


def looks_like_article(url: str) -> bool:
    return url_score(url) >= 2


def article_key(url: str, patterns: Sequence[re.Pattern[str]] = ()) -> str | None:
    """A generic source's key for an article URL, or None when the URL is no article.

    With ``patterns`` (regexes searched in the URL's path and query): a URL none matches is no
    article, and the group ``id`` of the one that matches is the key when it has one. Without
    (``articles = "auto"``): :func:`looks_like_article` decides. Otherwise the key is the path
    (host, scheme, trailing slash and tracking parameters left out): one article under two host
    names or with ``utm_`` parameters is one article.
    """
    try:
        parts = urlsplit(clean_url(url))
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    where = parts.path + (f"?{parts.query}" if parts.query else "")
    if patterns:
        for pattern in patterns:
            match = pattern.search(where)
            if match is not None:
                if "id" in pattern.groupindex and match.group("id"):
                    return match.group("id")
                break
        else:
            return None
    elif not looks_like_article(url):
        return None
    key = parts.path.strip("/") + (f"?{parts.query}" if parts.query else "")
    return key or None


_IDS: Final = (r"\d+", r"[^/]+-\d+")
_ID_GROUP: Final = r"(?P<id>\d+)"


def _shape(segment: str) -> str:
    if re.fullmatch(r"(?:19|20)\d\d", segment):
        return r"\d{4}"
    if re.fullmatch(r"\d{1,3}", segment):
        return r"\d{1,2}" if len(segment) <= 2 else r"\d{3}"
    if re.fullmatch(r"\d+", segment):
        return r"\d+"
    if re.fullmatch(r"[a-z0-9]+(?:[-_][a-z0-9]+)*-\d{4,}(?:\.html?)?", segment, re.I):
        ending = ".html" if segment.lower().endswith(".html") else ""
        return r"[^/]+-\d+" + re.escape(ending)
    stem = segment.rsplit(".", 1)[0]
    if _WORD_SLUG.fullmatch(stem) or ("-" in stem and len(stem) >= 12) or len(segment) > 30:
        ending = "." + segment.rsplit(".", 1)[1] if "." in segment else ""
        return r"[^/]+" + re.escape(ending)
    return re.escape(segment)


def url_pattern(url: str) -> str:
    """The shape of an article URL's path as a regex: ``/2025/06/11/a-slug/`` gives
    ``^/\\d{4}/\\d{1,2}/\\d{1,2}/[^/]+/$``; words that are the same in every article stay."""
    path = urlsplit(url).path or "/"
    shapes = [_shape(s) if s else "" for s in path.split("/")]
    ids = [i for i, shape in enumerate(shapes) if shape.startswith(_IDS)]
    if len(ids) == 1:
        # The one id of the path names the article (its key): a changed slug is one article.
        shape = shapes[ids[0]]
        shapes[ids[0]] = shape.replace(r"\d+", r"(?P<id>\d+)", 1) if shape != r"\d+" else _ID_GROUP
    return "^" + "/".join(shapes) + "$"


def common_pattern(urls: Sequence[str], share: float = 0.8) -> str | None:
    """A URL shape that at least ``share`` of the article URLs have, or None."""
    if not urls:
        return None
    counts = Counter(url_pattern(u) for u in urls)
    pattern, count = counts.most_common(1)[0]
    if count < max(2, share * len(urls)):
        return None
    # A shape with no variable part would match one URL only.
    return pattern if "\\d" in pattern or "[^/]" in pattern else None


# --------------------------------------------------------------------------- pages


def _ld_types(root: Any) -> set[str]:
    types: set[str] = set()
    for script in root.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text or "")
        except (ValueError, RecursionError):
            continue
        for item in _ld_items(data):
            value = item.get("@type")
            for name in value if isinstance(value, list) else [value]:
                if isinstance(name, str):
                    types.add(name.rsplit("/", 1)[-1].lower())
    return types


def _ld_items(data: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 4:
        return
    if isinstance(data, list):
        for item in data:
            yield from _ld_items(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        if isinstance(graph := data.get("@graph"), list):
            for item in graph:
                yield from _ld_items(item, depth + 1)


def page_kind(html: str | bytes) -> str | None:
    """``"article"``, ``"listing"`` or None (the page does not say), by what the page declares:
    ``og:type`` and the JSON-LD types."""
    root = _parse(html)
    if root is None:
        return None
    return _kind(root)


def _kind(root: Any) -> str | None:
    types = _ld_types(root)
    if types & ARTICLE_TYPES:
        return "article"
    og = root.xpath('string(//meta[@property="og:type"]/@content)').strip().lower()
    if og == "article" or og.startswith("article:"):
        return "article"
    if og in ("website", "blog") or types & LISTING_TYPES:
        return "listing"
    return None


def _in_chrome(element: Any) -> bool:
    for parent in element.iterancestors():
        tag = parent.tag if isinstance(parent.tag, str) else ""
        if tag in _CHROME:
            return True
        if parent.get("role") in ("navigation", "banner", "contentinfo", "complementary"):
            return True
        marks = f"{parent.get('class') or ''} {parent.get('id') or ''}"
        if _CHROME_WORDS.search(marks):
            return True
    return False


def page_links(html: str | bytes, url: str) -> list[Link]:
    """Every http(s) link of a page, absolute, once each (the first place it appears wins)."""
    root = _parse(html)
    if root is None:
        return []
    found: dict[str, Link] = {}
    for anchor in root.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href or href.startswith(("#", "javascript:", "mailto:", "tel:")):
            continue
        try:
            absolute = clean_url(urljoin(url, href))
        except ValueError:
            continue
        if not absolute.startswith(("http://", "https://")) or absolute in found:
            continue
        text = " ".join(anchor.text_content().split())
        found[absolute] = Link(absolute, text, _in_chrome(anchor))
    return list(found.values())


def next_page(html: str | bytes, url: str) -> str | None:
    """The listing's next page: ``rel=next``, else a link whose text says next or older."""
    root = _parse(html)
    if root is None:
        return None
    for href in root.xpath('//link[@rel="next"]/@href | //a[@rel="next"]/@href'):
        return clean_url(urljoin(url, str(href)))
    for anchor in root.iter("a"):
        text = " ".join(anchor.text_content().split())
        classes = (anchor.get("class") or "").split()
        if (_NEXT_WORDS.match(text) or "next" in classes) and anchor.get("href"):
            return clean_url(urljoin(url, anchor.get("href")))
    return None


def listing_articles(html: str | bytes, url: str, hosts: Iterable[str]) -> list[str]:
    """The article URLs a listing page links outside its chrome, on the site's hosts."""
    names = list(hosts) or [host_of(url)]
    return [
        link.url
        for link in page_links(html, url)
        if not link.chrome and same_site(link.url, names) and looks_like_article(link.url)
    ]


def section_links(html: str | bytes, url: str, hosts: Iterable[str]) -> list[str]:
    """Links of the site's navigation that look like sections (listing pages to try)."""
    names = list(hosts) or [host_of(url)]
    out = []
    for link in page_links(html, url):
        if not same_site(link.url, names) or looks_like_article(link.url):
            continue
        path = urlsplit(link.url).path.strip("/")
        first = path.split("/", 1)[0].lower() if path else ""
        if not path or first in ("tag", "tags", "author", "authors", "search", "page", "feed"):
            continue
        if first in LISTING_SEGMENTS - {"section", "sections", "category", "categories", "topic"}:
            continue
        if _FILE_SUFFIX.search(path):
            continue
        out.append(link.url)
    return out


def is_article_page(html: str | bytes) -> bool:
    """Whether a fetched page is an article: it says so, or it says nothing and has an
    ``<article>`` or a headline with a dated ``<time>``; a page that says it is a listing is not.
    """
    root = _parse(html)
    if root is None:
        return False
    kind = _kind(root)
    if kind is not None:
        return kind == "article"
    if root.xpath("//article"):
        return True
    return bool(root.xpath("//h1") and root.xpath("//time[@datetime]"))
