"""Article text and fields from an HTML page: a pure function of (html, url, site rules)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urljoin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from charset_normalizer import from_bytes
from cssselect import HTMLTranslator, SelectorError
from lxml import etree
from lxml import html as lxml_html
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree
from w3lib.encoding import html_to_unicode

from crawler.text.generic import INLINE_TAGS, GenericResult, PageHead, extract_main

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

logger = logging.getLogger(__name__)

TEXT_MODES: Final = ("article", "page")
# The generic extraction's version, recorded with every text (sidecar, catalog): raised when
# a change to this module or to crawler.text.generic changes texts (2: generic.py replaced
# trafilatura for pages without site rules; 3: its body choice retuned, bylines and tags read from
# the body, doubly encoded UTF-8 repaired; 4: the body's blocks kept by a learned scorer), so
# `newsarchive reextract --extractor-below N` finds the texts made before it. Before: version 0.
EXTRACTOR_VERSION: Final = 4
DEFAULT_BLOCKS: Final = "p, h2, h3, h4, h5, h6, blockquote, li"


class ExtractionError(ValueError):
    """The page is not an article or has no body text; ``reason`` is a short machine token."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SiteRules:
    """Per-site selectors and chrome filters, declared in the spider module.

    Selectors are CSS (with parsel's ``::attr(name)`` suffix; ``::text`` means the element's
    text) or ``xpath:...``. A ``meta`` element yields its ``content`` (``meta[name=x]`` and
    ``meta[property=x]`` are answered from the page's meta index, case-insensitively), a
    ``time`` element its ``datetime`` unless an attribute is named. For single-valued fields
    the first selector that yields a value wins; for ``authors`` and ``tags`` the first
    selector that yields anything gives all its matches. Name the element in class selectors
    (``div.x``, not ``.x``) for the page-wide ones: a bare class tests every element.
    """

    title: tuple[str, ...]
    body: tuple[str, ...]
    blocks: str = DEFAULT_BLOCKS
    drop: tuple[str, ...] = ()
    drop_text: tuple[str, ...] = ()
    published: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    section: tuple[str, ...] = ()
    lead: tuple[str, ...] = ()
    timezone: str | None = None
    # A regex with groups ``year``, ``month``, ``day`` over the URL: the published date when the
    # page gives none (a day, at midnight in ``timezone``, with a warning).
    url_date: str | None = None

    def __post_init__(self) -> None:
        # Fail when the spider module is imported, not on the first page of a crawl.
        for name in (
            "title",
            "body",
            "drop",
            "drop_text",
            "published",
            "modified",
            "authors",
            "tags",
            "section",
            "lead",
        ):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                # A bare string would be iterated character by character.
                raise TypeError(f"SiteRules.{name} must be a tuple of strings, got {value!r}")
            if name == "drop_text":
                for pattern in value:
                    _regex(pattern)
            else:
                for selector in value:
                    _compile(selector)
        if not self.body:
            raise ValueError("SiteRules.body needs at least one selector")
        _compile(self.blocks)
        if self.timezone is not None:
            _zone(self.timezone)
        if self.url_date is not None:
            groups = _regex(self.url_date).groupindex
            if not {"year", "month", "day"} <= groups.keys():
                raise ValueError(
                    f"SiteRules.url_date needs groups year, month and day: {self.url_date!r}"
                )


def rules_digest(rules: SiteRules | None) -> str | None:
    """``sha256:<hex>`` of a site's rules (every field, as JSON): two texts made by rules with
    the same digest were made by the same selectors. None without rules."""
    if rules is None:
        return None
    return _rules_digest(rules)


@lru_cache(maxsize=64)
def _rules_digest(rules: SiteRules) -> str:
    # Once per site's rules (frozen, hashable by value), not at each text's sidecar: asdict and
    # JSON of every selector were 0.05 ms of each text.
    fields = json.dumps(asdict(rules), sort_keys=True, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(fields.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Article:
    """An extracted article: ``text`` is the headline, a blank line, the paragraphs separated by
    blank lines and a final newline (``page`` mode: the paragraphs only)."""

    url: str
    title: str | None
    paragraphs: tuple[str, ...]
    text: str
    published: datetime | None
    modified: datetime | None
    authors: tuple[str, ...]
    tags: tuple[str, ...]
    section: str | None
    lead: str | None
    language: str | None
    description: str | None
    canonical_url: str | None
    images: tuple[dict[str, str], ...]
    extractor: str
    warnings: tuple[str, ...]
    # The published date as the page wrote it ("2025-06-11", "June 11, 2025 10:20"): its
    # precision (``crawler.util.date_precision``) says whether it names a day or a moment.
    published_text: str | None = None


# --------------------------------------------------------------------------- selectors

_TRANSLATOR: Final = HTMLTranslator()
_SUFFIX_RE: Final = re.compile(r"::(?:attr\(\s*([^)\s]+)\s*\)|text)\s*$")


@dataclass(frozen=True, slots=True)
class _Selector:
    xpath: str
    attr: str | None
    meta_key: str | None = None  # meta[name=x] / meta[property=x]: answered from the meta index


_META_SELECTOR_RE: Final = re.compile(
    r"""^meta\[\s*(?:property|name|itemprop)\s*=\s*(["']?)([^"'\]]+)\1\s*\]"""
    r"""(?:::attr\(\s*content\s*\))?$"""
)


@lru_cache(maxsize=2048)
def _compile(selector: str) -> _Selector:
    if selector.startswith("xpath:"):
        expr = selector[len("xpath:") :].strip()
        try:
            etree.XPath(expr)
        except etree.XPathSyntaxError as exc:
            raise ValueError(f"bad XPath selector {selector!r}: {exc}") from exc
        return _Selector(expr, None)
    css, attr = selector, None
    if match := _SUFFIX_RE.search(selector):
        css, attr = selector[: match.start()], match.group(1)
    meta = _META_SELECTOR_RE.match(selector.strip())
    try:
        return _Selector(
            _TRANSLATOR.css_to_xpath(css), attr, meta.group(2).strip().lower() if meta else None
        )
    except SelectorError as exc:
        raise ValueError(f"bad CSS selector {selector!r}: {exc}") from exc


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regex {pattern!r}: {exc}") from exc


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


# The pipeline extracts in a thread pool; each thread keeps its own lxml parser and compiled
# XPaths, so threads neither wait on a shared parser's lock nor share evaluation state.
_local = threading.local()


def _xpath(expr: str) -> Any:
    cache: dict[str, Any] | None = getattr(_local, "xpaths", None)
    if cache is None:
        cache = _local.xpaths = {}
    compiled = cache.get(expr)
    if compiled is None:
        compiled = cache[expr] = etree.XPath(expr, smart_strings=False)
    return compiled


def _parser() -> Any:
    parser = getattr(_local, "parser", None)
    if parser is None:
        # The document is handed over as UTF-8 bytes, so a stray <meta charset> cannot re-decode it.
        parser = _local.parser = etree.HTMLParser(
            encoding="utf-8",
            recover=True,
            remove_comments=True,
            remove_pis=True,
            no_network=True,
            collect_ids=False,
            default_doctype=False,
        )
        # HtmlElement (lxml.html's element API) through a lookup done in C: lxml.html's own
        # parser picks each element's class in Python, ~10 % of the whole extraction.
        parser.set_element_class_lookup(
            etree.ElementDefaultClassLookup(
                element=lxml_html.HtmlElement,
                comment=lxml_html.HtmlComment,
                pi=lxml_html.HtmlProcessingInstruction,
                entity=lxml_html.HtmlEntity,
            )
        )
    return parser


@lru_cache(maxsize=256)
def _union(selectors: tuple[str, ...]) -> str:
    return "xpath:" + " | ".join(_compile(s).xpath for s in selectors)


def _select(node: Any, selector: str) -> list[Any]:
    result = _xpath(_compile(selector).xpath)(node)
    return result if isinstance(result, list) else [result]


def _values(
    node: Any, selector: str, *, datetime_attr: bool = False, meta: _Meta | None = None
) -> list[str]:
    """The non-empty string values a selector yields under ``node``, in document order."""
    compiled = _compile(selector)
    if meta is not None and compiled.meta_key is not None:
        # Already read into the meta index: no second walk of the tree.
        return meta.all(compiled.meta_key)
    out = []
    for found in _select(node, selector):
        if isinstance(found, str):
            value: str | None = found
        elif not isinstance(found.tag, str):
            continue
        elif compiled.attr:
            value = found.get(compiled.attr)
        elif found.tag == "meta":
            value = found.get("content")
        elif datetime_attr and found.tag == "time" and found.get("datetime"):
            value = found.get("datetime")
        else:
            value = _inline_text(found)
        if value and (value := _collapse(value)):
            out.append(value)
    return out


def _first(
    node: Any, selectors: Iterable[str], *, datetime_attr: bool = False, meta: _Meta | None = None
) -> str | None:
    for selector in selectors:
        if values := _values(node, selector, datetime_attr=datetime_attr, meta=meta):
            return values[0]
    return None


def _all(node: Any, selectors: Iterable[str], meta: _Meta | None = None) -> list[str]:
    for selector in selectors:
        if values := _values(node, selector, meta=meta):
            return _unique(values)
    return []


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


# --------------------------------------------------------------------------- text helpers

# Only ASCII whitespace collapses: NBSP and narrow NBSP are characters the publisher chose.
_ASCII_WS_RE: Final = re.compile(r"[ \t\n\r\f\v]+")
# libxml2 turns NUL and other C0 controls into U+FFFD; they carry no text, so they are deleted
# (vertical tab and form feed are whitespace in HTML: spaces). Done on the UTF-8 bytes, where
# these values never occur inside a multi-byte sequence; bytes.translate is ~10x faster than a
# regex over the str.
_SPACE_CONTROLS: Final = bytes.maketrans(b"\x0b\x0c", b"  ")
_CONTROL_BYTES: Final = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
_SPACE_AND_CONTROLS: Final = "".join(map(chr, [*range(0x00, 0x21), 0x7F]))
# Things that never hold article text, inside any body.
_SKIP_TAGS: Final = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "iframe",
        "svg",
        "math",
        "canvas",
        "object",
        "embed",
        "video",
        "audio",
        "figure",
        "figcaption",
        "form",
        "button",
        "select",
        "textarea",
        "input",
        "head",
        "title",
        "meta",
        "link",
    }
)
# Related-link lines that generic extraction keeps but the archive never wants in a body.
_GENERIC_DROP_TEXT: Final = (
    re.compile(
        r"^(?:also read|read also|read more|see also|related(?: articles?| news| stories)?)"
        r"\s*[:\uff1a]",
        re.IGNORECASE,
    ),
)
# | - en dash, em dash, middle dot, bullet, guillemet, colon
_TITLE_SEPARATORS: Final = ("|", "-", "\u2013", "\u2014", "\u00b7", "\u2022", "\u00bb", ":")


def _collapse(text: str) -> str:
    if (
        "  " not in text
        and "\n" not in text
        and "\t" not in text
        and "\r" not in text
        and "\f" not in text
        and "\v" not in text
    ):
        return text.strip()  # the common case, without a regex
    return _ASCII_WS_RE.sub(" ", text).strip()


def _inline_text(node: Any) -> str:
    parts: list[str] = []
    walker = etree.iterwalk(node, events=("start", "end"))
    for event, element in walker:
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _SKIP_TAGS and element is not node:
                walker.skip_subtree()
                continue
            if tag not in INLINE_TAGS:
                parts.append(" ")
            if element.text:
                parts.append(element.text)
        else:
            if tag not in INLINE_TAGS:
                parts.append(" ")
            if element.tail and element is not node:
                parts.append(element.tail)
    return "".join(parts)


def _block_texts(body: Any, blocks: set[Any], skip: set[Any]) -> Iterator[str]:
    """Text of each block element under ``body``, in document order.

    A block nested in another block splits it: the outer text before and after the inner block
    becomes its own paragraph, so nothing is doubled and nothing is lost.
    """
    stack: list[list[str]] = []
    walker = etree.iterwalk(body, events=("start", "end"))
    for event, element in walker:
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if element is not body and (tag in _SKIP_TAGS or element in skip or not tag):
                walker.skip_subtree()
                continue
            if element in blocks:
                if stack:
                    yield "".join(stack[-1])
                    stack[-1] = []
                stack.append([])
            elif stack and tag not in INLINE_TAGS:
                stack[-1].append(" ")
            if stack and element.text:
                stack[-1].append(element.text)
        else:
            skipped = element is not body and (tag in _SKIP_TAGS or element in skip or not tag)
            if not skipped:
                if element in blocks:
                    yield "".join(stack.pop())
                elif stack and tag not in INLINE_TAGS:
                    stack[-1].append(" ")
            if stack and element.tail and element is not body:
                stack[-1].append(element.tail)


def _has_word(text: str) -> bool:
    return any(c.isalnum() for c in text)


def _keep(text: str, patterns: Iterable[re.Pattern[str]]) -> bool:
    return bool(text) and not any(p.search(text) for p in patterns)


# --------------------------------------------------------------------------- decoding and parsing


def detect_encoding(data: bytes) -> str | None:
    """The encoding of unlabelled bytes: UTF-8 when valid, else statistical detection."""
    # Same order as Scrapy's TextResponse: valid UTF-8 first, then statistical detection.
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        match = from_bytes(data).best()
        return match.encoding if match else None
    return "utf-8"


def _decode(html: str | bytes, encoding: str | None) -> str:
    if isinstance(html, str):
        return html
    # BOM, then the caller's (HTTP) encoding, then <meta charset>, then detection.
    header = f"text/html; charset={encoding}" if encoding else None
    try:
        return html_to_unicode(header, html, auto_detect_fun=detect_encoding)[1]
    except LookupError:
        # A detector may name a codec Python lacks; UTF-8 with replacement still gives text.
        return html.decode("utf-8", "replace")


def _parse(text: str) -> tuple[Any, bool]:
    """The lxml tree of the page, and whether libxml2 cut it at its nesting limit (256)."""
    data = text.encode("utf-8", "replace").translate(_SPACE_CONTROLS, _CONTROL_BYTES)
    if not data.strip():
        raise ExtractionError("empty-document")
    parser = _parser()
    try:
        root = etree.fromstring(data, parser)
    except (etree.LxmlError, ValueError) as exc:
        raise ExtractionError("unparseable", str(exc)) from exc
    if root is None or not isinstance(root.tag, str):
        raise ExtractionError("unparseable", "no root element")
    too_deep = any(e.type == etree.ErrorTypes.ERR_RESOURCE_LIMIT for e in parser.error_log)
    return root, too_deep


# --------------------------------------------------------------------------- page metadata

_ARTICLE_TYPES: Final = frozenset(
    {
        "Article",
        "NewsArticle",
        "ReportageNews",
        "AnalysisNewsArticle",
        "OpinionNewsArticle",
        "BackgroundNewsArticle",
        "ReviewNewsArticle",
        "AskPublicNewsArticle",
        "BlogPosting",
        "LiveBlogPosting",
        "SocialMediaPosting",
        "ScholarlyArticle",
        "TechArticle",
        "Report",
    }
)


@dataclass(slots=True)
class _Meta:
    """What the <head> (meta, link, JSON-LD) says, read once from the shared tree."""

    props: dict[str, list[str]]
    links: dict[str, str]
    lang: str | None
    ld_article: dict[str, Any] | None
    ld_by_id: dict[str, dict[str, Any]]
    site_name: str | None

    def get(self, *keys: str) -> str | None:
        for key in keys:
            for value in self.props.get(key, ()):
                if value := _collapse(value):
                    return value
        return None

    def all(self, key: str) -> list[str]:
        return _unique(_collapse(v) for v in self.props.get(key, ()))

    def ld(self, key: str) -> Any:
        return None if self.ld_article is None else self.ld_article.get(key)


def _ld_items(data: Any) -> Iterator[dict[str, Any]]:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            yield item
            if "@graph" in item:
                stack.append(item["@graph"])


def _ld_types(item: dict[str, Any]) -> set[str]:
    types = item.get("@type")
    if isinstance(types, str):
        return {types}
    return {t for t in types if isinstance(t, str)} if isinstance(types, list) else set()


_META_KEY_ATTRS: Final = ("property", "name", "itemprop", "http-equiv")


def _read_meta(root: Any, warnings: list[str]) -> _Meta:
    props: dict[str, list[str]] = {}
    links: dict[str, str] = {}
    ld_blocks: list[str] = []
    # One walk over the tree for all three kinds of element.
    for element in root.iter("meta", "link", "script"):
        tag = element.tag
        if tag == "meta":
            content = element.get("content")
            if content is not None:
                for attr in _META_KEY_ATTRS:
                    if key := element.get(attr):
                        props.setdefault(key.strip().lower(), []).append(content)
        elif tag == "link":
            href = element.get("href")
            for rel in (element.get("rel") or "").lower().split():
                if href and rel not in links:
                    links[rel] = href.strip()
        elif element.get("type") == "application/ld+json" and element.text:
            ld_blocks.append(element.text)
    lang = root.get("lang") or root.get("xml:lang")
    return _build_meta(props, links, ld_blocks, lang.strip() if lang else None, warnings)


def _build_meta(
    props: dict[str, list[str]],
    links: dict[str, str],
    ld_blocks: list[str],
    lang: str | None,
    warnings: list[str],
) -> _Meta:
    """The page's own account of itself, from its meta tags, links and JSON-LD (as read from
    lxml's tree for site rules, or from lexbor's by :mod:`crawler.text.generic`)."""
    ld_article: dict[str, Any] | None = None
    ld_by_id: dict[str, dict[str, Any]] = {}
    site_name = None
    for block in ld_blocks:
        try:
            data = json.loads(block)
        except (ValueError, RecursionError):
            warnings.append("bad JSON-LD block ignored")
            continue
        for item in _ld_items(data):
            if isinstance(item.get("@id"), str):
                ld_by_id.setdefault(item["@id"], item)
            types = _ld_types(item)
            if ld_article is None and types & _ARTICLE_TYPES:
                ld_article = item
            if site_name is None and "WebSite" in types and isinstance(item.get("name"), str):
                site_name = item["name"]
    meta = _Meta(props, links, lang, ld_article, ld_by_id, None)
    meta.site_name = meta.get("og:site_name") or site_name
    return meta


def _ld_names(meta: _Meta, value: Any) -> list[str]:
    names: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):
            name = item.get("name")
            if not isinstance(name, str) and isinstance(item.get("@id"), str):
                name = meta.ld_by_id.get(item["@id"], {}).get("name")
            if isinstance(name, str):
                names.append(name)
    return _unique(_collapse(n) for n in names)


def _ld_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def _strip_site_name(title: str, site_name: str | None) -> str:
    if site_name and title != site_name and title.endswith(site_name):
        head = title[: -len(site_name)].rstrip()
        if head and head[-1] in _TITLE_SEPARATORS:
            return head[:-1].rstrip()
    # Some sites put the name first ("PressTV-Iran says ...").
    if site_name and title != site_name and title.startswith(site_name):
        tail = title[len(site_name) :].lstrip()
        if tail and tail[0] in _TITLE_SEPARATORS and (rest := tail[1:].strip()):
            return rest
    return title


# --------------------------------------------------------------------------- dates

_DATE_FORMATS: Final = (
    "%B %d, %Y %I:%M %p",
    "%b %d, %Y, %I:%M %p",
    "%b %d, %Y %I:%M %p",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y %H:%M",
    "%d %B %Y",
    "%d %b %Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
)


_RFC2822_RE: Final = re.compile(
    r"^(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?"
    r"(?:\s*(?:[+-]\d{4}|[A-Za-z]{1,5}))?$"
)


def parse_datetime(value: str, zone: tzinfo | None = None) -> tuple[datetime | None, bool]:
    """An aware datetime from ISO 8601, RFC 2822 or a few English page formats.

    Naive values get ``zone``; with no zone they are taken as UTC and the second item is True.
    """
    text = _collapse(value)
    if not text:
        return None, False
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
            except ValueError:
                continue
            break
    if parsed is None and _RFC2822_RE.match(text):
        # Only what looks like RFC 2822: the email parser guesses at anything (it reads
        # "7:16 PM" as 07:16).
        with contextlib.suppress(TypeError, ValueError, IndexError):
            parsed = parsedate_to_datetime(text)
    if parsed is None:
        return None, False
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=zone or UTC), zone is None
    return parsed, False


def _date(
    candidates: Iterable[str | None], zone: tzinfo | None, warnings: list[str], label: str
) -> datetime | None:
    return _dated(candidates, zone, warnings, label)[0]


def _dated(
    candidates: Iterable[str | None], zone: tzinfo | None, warnings: list[str], label: str
) -> tuple[datetime | None, str | None]:
    """The first candidate that parses, and its text as the page gave it."""
    for candidate in candidates:
        if not candidate:
            continue
        parsed, assumed = parse_datetime(candidate, zone)
        if parsed is None:
            warnings.append(f"unparsed {label} date {candidate[:40]!r}")
            continue
        if assumed:
            warnings.append(f"{label} date has no zone; assumed UTC")
        return parsed, _collapse(candidate)
    return None, None


# --------------------------------------------------------------------------- fields


@dataclass(slots=True)
class _Fields:
    title: str | None
    published: datetime | None
    published_text: str | None
    modified: datetime | None
    authors: list[str]
    tags: list[str]
    section: str | None
    lead: str | None
    language: str | None
    description: str | None
    canonical_url: str | None


def _fields(
    root: Any,
    meta: _Meta,
    rules: SiteRules | None,
    url: str,
    warnings: list[str],
    head: PageHead | None = None,
) -> _Fields:
    """The article's fields from the page's metadata and, with site rules, its selectors.
    ``root`` is lxml's tree; without rules it may be None, with ``head`` (lexbor's reading)
    giving the first ``<h1>`` and the ``<title>``."""
    zone = _zone(rules.timezone) if rules and rules.timezone else None
    title = _first(root, rules.title, meta=meta) if rules else None
    if title is None:
        headline = meta.ld("headline")
        og_title = meta.get("og:title", "twitter:title")
        if head is not None:
            h1 = [text] if head.h1 and (text := _collapse(head.h1)) else []
            title_tag = _collapse(head.title_tag) if head.title_tag else ""
            page_title = [title_tag] if title_tag else []
        else:
            h1 = _values(root, "h1")
            page_title = _values(root, "title")
        for candidate in (
            _collapse(headline) if isinstance(headline, str) else None,
            _strip_site_name(og_title, meta.site_name) if og_title else None,
            h1[0] if h1 else None,
            _strip_site_name(page_title[0], meta.site_name) if page_title else None,
        ):
            if candidate:
                title = candidate
                break
    published, published_text = _dated(
        _date_candidates(
            root,
            meta,
            rules.published if rules else (),
            (
                "article:published_time",
                "@datePublished",
                "datepublished",
                "og:published_time",
                "pubdate",
                "publishdate",
                "date",
                "dc.date.issued",
                "dc.date",
                "dcterms.created",
            ),
        ),
        zone,
        warnings,
        "published",
    )
    if published is None and rules is not None and rules.url_date is not None:
        published = _url_date(url, rules.url_date, zone, warnings)
        published_text = published.date().isoformat() if published else None
    modified = _date(
        _date_candidates(
            root,
            meta,
            rules.modified if rules else (),
            (
                "article:modified_time",
                "@dateModified",
                "datemodified",
                "og:updated_time",
                "dcterms.modified",
            ),
        ),
        zone,
        warnings,
        "modified",
    )
    authors = _all(root, rules.authors, meta) if rules else []
    if not authors:
        authors = _ld_names(meta, meta.ld("author"))
    if not authors:
        authors = [a for a in meta.all("author") if not a.startswith(("http:", "https:"))]
    tags = _all(root, rules.tags, meta) if rules else []
    if not tags:
        tags = meta.all("article:tag") or _unique(_ld_strings(meta.ld("keywords")))
    # A tag shown as a hashtag ("#Gaza") is the tag "Gaza".
    tags = _unique(t.lstrip("#").strip() if t.startswith("#") else t for t in tags)
    section = _first(root, rules.section, meta=meta) if rules else None
    if section is None:
        sections = _ld_strings(meta.ld("articleSection"))
        section = meta.get("article:section") or (sections[0] if sections else None)
    lead = _first(root, rules.lead, meta=meta) if rules else None
    language = meta.lang or meta.get("content-language", "dc.language")
    if language is None:
        locale = meta.get("og:locale")
        ld_lang = meta.ld("inLanguage")
        language = (
            locale.replace("_", "-") if locale else (ld_lang if isinstance(ld_lang, str) else None)
        )
    canonical = meta.links.get("canonical") or meta.get("og:url")
    return _Fields(
        title=title,
        published=published,
        published_text=published_text,
        modified=modified,
        authors=authors,
        tags=tags,
        section=section,
        lead=lead,
        language=language,
        description=meta.get("description", "og:description", "twitter:description"),
        canonical_url=urljoin(url, canonical) if canonical else None,
    )


def _url_date(url: str, pattern: str, zone: tzinfo | None, warnings: list[str]) -> datetime | None:
    match = _regex(pattern).search(url)
    if match is None:
        return None
    try:
        day = datetime(
            int(match["year"]), int(match["month"]), int(match["day"]), tzinfo=zone or UTC
        )
    except ValueError:
        warnings.append(f"unparsed published date in the URL {match.group(0)[:40]!r}")
        return None
    warnings.append("published date from the URL (day only)")
    return day


def _date_candidates(
    root: Any, meta: _Meta, selectors: tuple[str, ...], keys: tuple[str, ...]
) -> Iterator[str | None]:
    """Date strings in order of trust, produced lazily: the first that parses wins."""
    for selector in selectors:
        yield _first(root, (selector,), datetime_attr=True, meta=meta)
    for key in keys:
        if key.startswith("@"):
            value = meta.ld(key[1:])
            yield value if isinstance(value, str) else None
        else:
            yield meta.get(key)


# --------------------------------------------------------------------------- body extractors


def _rules_body(
    root: Any, rules: SiteRules, url: str
) -> tuple[list[str], list[dict[str, str]]] | None:
    """Paragraphs and images from the first body container; None when no selector matches."""
    body = None
    for selector in rules.body:
        if found := [e for e in _select(root, selector) if not isinstance(e, str)]:
            body = found[0]
            break
    if body is None:
        return None
    # All drop selectors in one XPath union: one walk of the body instead of one per selector.
    skip = {e for e in _select(body, _union(rules.drop)) if e is not body} if rules.drop else set()
    blocks = set(_select(body, rules.blocks))
    patterns = [_regex(p) for p in rules.drop_text]
    paragraphs = [t for t in map(_collapse, _block_texts(body, blocks, skip)) if _keep(t, patterns)]
    return paragraphs, _images(body, skip, url)


def _images(body: Any, skip: set[Any], url: str) -> list[dict[str, str]]:
    images: dict[str, dict[str, str]] = {}
    for img in body.iter("img"):
        if any(a in skip for a in img.iterancestors()) or img in skip:
            continue
        src = img.get("data-src") or img.get("data-lazy-src") or img.get("src") or ""
        if not src or src.startswith("data:"):
            continue
        src = urljoin(url, src.strip())
        caption = ""
        figure = next((a for a in img.iterancestors("figure")), None)
        if figure is not None:
            captions = [_collapse(_inline_text(c)) for c in figure.iter("figcaption")]
            caption = next((c for c in captions if c), "")
        caption = caption or _collapse(img.get("alt") or "")
        images.setdefault(src, {"src": src, "caption": caption})
    return list(images.values())


def _page_paragraphs(text: str) -> list[str]:
    try:
        # resiliparse's defaults (alt texts, comment sections) are what the sample corpus used.
        plain = extract_plain_text(HTMLTree.parse(text), main_content=True)
    except (ValueError, TypeError) as exc:
        # resiliparse's parser and DOM exceptions derive from ValueError: "no text", not a crash.
        logger.debug("resiliparse failed: %r", exc)
        return []
    blocks: list[str] = []
    current: list[str] = []
    for line in plain.split("\n"):
        # A line holding only (non-breaking) spaces is an empty paragraph, i.e. a block break.
        if line.strip():
            current.append(line.rstrip())
        elif current:
            blocks.append("\n".join(current))
            current = []
    if current:
        blocks.append("\n".join(current))
    return blocks


# --------------------------------------------------------------------------- public API


def extract_article(
    html: str | bytes,
    url: str,
    rules: SiteRules | None = None,
    *,
    mode: str = "article",
    encoding: str | None = None,
) -> Article:
    """Headline, body paragraphs and metadata of one article page.

    ``article`` mode gives the archive's clean text (headline, then body paragraphs); ``page`` mode
    gives resiliparse's main-content text, the style of corpora built that way. Site rules are
    used when given and their body selector matches; otherwise the generic extractor
    (:mod:`crawler.text.generic`, one lexbor parse of the page), with a warning.
    Raises ExtractionError (and nothing else) when the input holds no article text.
    """
    if mode not in TEXT_MODES:
        raise ValueError(f"mode must be one of {TEXT_MODES}, got {mode!r}")
    text = _decode(html, encoding)
    if not text.strip():
        raise ExtractionError("empty-document")
    warnings: list[str] = []
    images: list[dict[str, str]] = []
    if mode == "article" and rules is None:
        # No site rules: one lexbor parse gives the metadata and the body (crawler.text.generic).
        if not text.strip(_SPACE_AND_CONTROLS).strip():
            raise ExtractionError("empty-document")
        generic = extract_main(text, url)
        head = generic.head or PageHead({}, {}, [], None, None, None)
        meta = _build_meta(head.props, head.links, head.ld_blocks, head.lang, warnings)
        fields = _fields(None, meta, None, url, warnings, head)
        warnings.append("no site rules; used the generic extractor")
        paragraphs = [p for p in generic.paragraphs if _keep(p, _GENERIC_DROP_TEXT)]
        extractor = "generic"
        _fill_from_generic(fields, generic, None, warnings)
    else:
        paragraphs, images, meta, fields, extractor = _with_lxml(text, url, rules, mode, warnings)
    if (
        mode == "article"
        and fields.title
        and paragraphs
        and paragraphs[0].casefold() == fields.title.casefold()
    ):
        # The headline inside the body container would be written twice.
        del paragraphs[0]
    if not any(map(_has_word, paragraphs)):
        # Stray punctuation from a broken document is not text.
        raise ExtractionError("empty-body", f"no {mode} text in {url}")
    if mode == "article" and fields.lead and fields.lead not in paragraphs[:2]:
        # A standfirst outside the body container is the first paragraph of the article.
        paragraphs.insert(0, fields.lead)
    if not images and (og_image := meta.get("og:image")):
        images = [{"src": urljoin(url, og_image), "caption": ""}]
    if fields.title is None:
        warnings.append("no title")
    if fields.published is None:
        warnings.append("no published date")
    if mode == "article" and fields.title:
        body_text = fields.title + "\n\n" + "\n\n".join(paragraphs) + "\n"
    else:
        body_text = "\n\n".join(paragraphs) + "\n"
    return Article(
        url=url,
        title=fields.title,
        paragraphs=tuple(paragraphs),
        text=body_text,
        published=fields.published,
        modified=fields.modified,
        authors=tuple(fields.authors),
        tags=tuple(fields.tags),
        section=fields.section,
        lead=fields.lead,
        language=fields.language,
        description=fields.description,
        canonical_url=fields.canonical_url,
        images=tuple(images),
        extractor=extractor,
        warnings=tuple(warnings),
        published_text=fields.published_text,
    )


def _with_lxml(
    text: str, url: str, rules: SiteRules | None, mode: str, warnings: list[str]
) -> tuple[list[str], list[dict[str, str]], _Meta, _Fields, str]:
    """Paragraphs, images, metadata, fields and extractor name from lxml's tree: site rules
    (the generic extractor when their body selector misses), or page mode."""
    root, too_deep = _parse(text)
    if too_deep:
        warnings.append("document nested too deeply; read to depth 256")
    meta = _read_meta(root, warnings)
    fields = _fields(root, meta, rules, url, warnings)
    images: list[dict[str, str]] = []
    if mode == "page":
        # resiliparse's main-content test walks up to <body> from every node: quadratic in the
        # nesting depth (seconds for 10,000 levels). Past libxml2's limit it reads lxml's tree.
        paragraphs = _page_paragraphs(
            etree.tostring(root, method="html", encoding="unicode") if too_deep else text
        )
        extractor = "resiliparse"
    else:
        found = _rules_body(root, rules, url) if rules else None
        if found and found[0]:
            paragraphs, images = found
            extractor = "rules"
        else:
            if rules is None:
                warnings.append("no site rules; used the generic extractor")
            elif found is None:
                warnings.append("body selector missed; fell back to the generic extractor")
            else:
                warnings.append("body selector matched no text; fell back to the generic extractor")
            patterns = (
                [*_GENERIC_DROP_TEXT, *(_regex(p) for p in rules.drop_text)]
                if rules
                else list(_GENERIC_DROP_TEXT)
            )
            generic = extract_main(text, url)
            paragraphs = [p for p in generic.paragraphs if _keep(p, patterns)]
            extractor = "generic"
            _fill_from_generic(fields, generic, rules, warnings)
    return paragraphs, images, meta, fields, extractor


def _fill_from_generic(
    fields: _Fields, generic: GenericResult, rules: SiteRules | None, warnings: list[str]
) -> None:
    """What the page's meta tags and JSON-LD left open, from the generic extractor's reading
    (its headline falls back to the first ``<h1>``, its date to ``time[datetime]``)."""
    if fields.title is None and generic.title:
        fields.title = generic.title
    if not fields.authors:
        fields.authors = list(generic.authors)
    if not fields.tags:
        fields.tags = list(generic.tags)
    if fields.published is None and generic.published:
        zone = _zone(rules.timezone) if rules and rules.timezone else None
        fields.published, fields.published_text = _dated(
            [generic.published], zone, warnings, "published"
        )


def extract_text(
    html: str | bytes, url: str, rules: SiteRules | None = None, *, mode: str = "article"
) -> str:
    """The cleaned text of :func:`extract_article`, ending with a newline."""
    return extract_article(html, url, rules, mode=mode).text
