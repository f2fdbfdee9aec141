"""Main text of any news page from one lexbor parse: metadata, body container and cleanup."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np
from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawler.text.byline import byline

# --------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class PageHead:
    """What a page says of itself, as written, from the same parse: every meta tag's content
    by its property, name, itemprop or http-equiv (lower-cased), the first target of each
    ``<link rel>``, the JSON-LD blocks unparsed, the root's language, and the text of the first
    non-empty ``<h1>`` and of the ``<title>``. The caller makes the fields of it (crawler.text.
    extract reads an lxml tree into the same shape for site rules)."""

    props: dict[str, list[str]]
    links: dict[str, str]
    ld_blocks: list[str]
    lang: str | None
    h1: str | None
    title_tag: str | None


@dataclass(frozen=True, slots=True)
class GenericResult:
    """What :func:`extract_main` found: the body as paragraphs in page order, and the page's
    headline, published date (as the page wrote it) and language, from the same parse."""

    title: str | None
    paragraphs: list[str]
    published: str | None
    language: str | None
    description: str | None = None
    # How the body was found, for the bench and for debugging: the container's tag, id and class.
    container: str | None = None
    warnings: list[str] = field(default_factory=list)
    head: PageHead | None = None
    # The authors and tags the page shows in its body (crawler.text.byline), for what its
    # meta tags and JSON-LD leave open.
    authors: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- vocabulary

# Never text: skipped whole by the walk, as if removed.
_STRIP: Final = [
    "script",
    "style",
    "template",
    "svg",
    "math",
    "iframe",
    "object",
    "embed",
    "video",
    "audio",
    "canvas",
    "button",
    "select",
    "textarea",
    "input",
    "map",
    "dialog",
    "figcaption",
]
_STRIPPED: Final = frozenset(_STRIP)
# Elements inside a paragraph; every other element starts and ends a block (and, in a site
# rule's text, is a word boundary). One list for both extraction paths (crawler.text.extract).
INLINE_TAGS: Final = frozenset(
    {
        "a",
        "abbr",
        "acronym",
        "b",
        "bdi",
        "bdo",
        "big",
        "cite",
        "code",
        "data",
        "del",
        "dfn",
        "em",
        "font",
        "i",
        "img",
        "ins",
        "kbd",
        "label",
        "mark",
        "nobr",
        "q",
        "rp",
        "rt",
        "ruby",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "time",
        "tt",
        "u",
        "var",
        "wbr",
    }
)
_HEADINGS: Final = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Page chrome by its element name.
# (``noscript``: an unclosed one can hold the whole page, so it is chrome, not stripped.)
_CHROME_TAGS: Final = frozenset({"nav", "aside", "footer", "header", "form", "menu", "noscript"})
# Page chrome by class or id (the vocabulary of trafilatura's and resiliparse's discard lists).
_CHROME_RE: Final = re.compile(
    r"(?:^|[\s_-])(?:"
    r"nav|navbar|navigation|menu|breadcrumbs?|sidebar|side-bar|footer|masthead"
    r"|comments?|comment-list|commentlist|disqus|respond|reply"
    r"|share|sharing|social|sociable|shariff|addthis|follow"
    r"|related|recommended|more-stories|most-popular|popular|trending|read-?next"
    r"|newsletter|subscribe|signup|promo|sponsored|advert|advertisement|ads?|banner|outbrain"
    r"|taboola|cookie|consent|gdpr|modal|popup"
    r"|byline|author-?info|author-?bio|tags?|tag-?list|post-?meta|entry-?meta|meta|dateline"
    r"|nextread|read-?more|more-?articles|more-?news|article-?list|news-?list|list-?view"
    r"|teaser-?list|also-?read|see-?also|lee-?tambien|leia-?tambem|cta|pop-?up|no-?print"
    r"|metadata|post-?metadata|embed|embedded|imagewrap|imginline|img-?wrap|image-?wrap"
    # Readability's unlikely candidates
    r"|pagination|pager|contact|skyscraper|shoutbox|sponsors?|infinite-?scroll|agegate"
    r"|caption|credits?|image-?credit|photo-?credit|author|about-?author|bio|print-only"
    r")(?:$|[\s_-])",
    re.IGNORECASE,
)
# Containers named for the article body.
_BODY_RE: Final = re.compile(
    r"article[-_]{0,2}body|article[-_]{0,2}content|article[-_]{0,2}text"
    r"|story[-_]{0,2}body|story[-_]{0,2}content|entry[-_]{0,2}content|post[-_]{0,2}content"
    r"|post[-_]{0,2}body|post[-_]{0,2}entry|body[-_]{0,2}text"
    r"|rich[-_]?text|field[-_]{0,2}body|text[-_]{0,2}content",
    re.IGNORECASE,
)
# Containers named for the page's main content: the article and what surrounds it (trafilatura
# looks for these after the article's own names).
_MAIN_RE: Final = re.compile(r"main[-_]{0,2}content|content[-_]{0,2}(?:body|main)", re.IGNORECASE)
_ROLES_CHROME: Final = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "menu", "menubar", "search", "dialog"}
)
# WordPress's post classes name the post's tags and categories ("tag-gaza", "category-news").
_TAXONOMY_RE: Final = re.compile(
    r"(?:^|\s)(?:tag|category|post|format|status|type|postid|page-id|term)-\S*"
)
_HIDDEN_CLASS_RE: Final = re.compile(
    r"(?:^|\s)(?:hidden|is-hidden|visually-hidden|d-none|display-none|invisible|sr-only"
    r"|screen-reader-text)(?:$|\s)"
)
_HIDDEN_CLASSES: Final = frozenset(
    {
        "hidden",
        "is-hidden",
        "visually-hidden",
        "d-none",
        "display-none",
        "invisible",
        "sr-only",
        "screen-reader-text",
    }
)
_CHROME_ASCII_RE: Final = re.compile(_CHROME_RE.pattern)
_HIDDEN_STYLE_RE: Final = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_SENTENCE_END_RE: Final = re.compile(r"[.!?;:。！？؟۔…।॥։።။\"'“”‘’»«›」』)]\s*$")

_ARTICLE_TYPES: Final = frozenset(
    {
        "Article",
        "NewsArticle",
        "ReportageNews",
        "AnalysisNewsArticle",
        "OpinionNewsArticle",
        "BackgroundNewsArticle",
        "ReviewNewsArticle",
        "BlogPosting",
        "LiveBlogPosting",
        "Report",
        "TechArticle",
        "ScholarlyArticle",
    }
)
_DATE_KEYS: Final = (
    "article:published_time",
    "og:published_time",
    "datepublished",
    "pubdate",
    "publishdate",
    "publish-date",
    "dc.date.issued",
    "dc.date",
    "dcterms.created",
    "date",
    "sailthru.date",
    "parsely-pub-date",
)

# Container choice (tuned on the dev halves of the two public sets, bench/extract.py): an
# element named for the body (or an <article>, <main>) is preferred by this factor, one inside
# page chrome is discounted by this one; chrome holding this share of the page's text is a
# wrapper, not chrome; a chrome child counts this share of its text against its parent; the
# container grows to its parent while that adds this much score.
_BODY_BONUS: Final = 2.0
# (One named for the page's main content, or <main>, less: it holds the article and its
# neighbours, as a blog's "main-content" holds the post and the next posts' excerpts.)
_MAIN_BONUS: Final = 1.75
_CHROME_PENALTY: Final = 0.25
_WRAPPER_SHARE: Final = 0.85
_CHROME_AGAINST: Final = 0.25
_GROW_MARGIN: Final = 150.0
# Readability's sibling merge: a sibling scoring this share of the container's value (at
# least _SIBLING_MIN; the share again as a bonus for a sibling of the container's kind) joins.
_SIBLING_SHARE: Final = 0.2
_SIBLING_MIN: Final = 10.0
# A sibling paragraph (a standfirst beside the body's container) scoring this much is body;
# so is the nearest part before the container that does, looked for this many levels up.
_SIBLING_PARAGRAPH: Final = 80.0
_LEAD_LEVELS: Final = 3
_PARAGRAPH_TAGS: Final = frozenset({"p", "blockquote", "pre"})
# Blocks that hold text, not other blocks: never the container.
_LEAF_BLOCKS: Final = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "li",
        "dt",
        "dd",
        "pre",
        "figcaption",
        "caption",
        "th",
        "tr",
        "address",
        "summary",
        "legend",
    }
)

# Block classes
_GOOD: Final = 2
_SHORT: Final = 1
_BAD: Final = 0


# --------------------------------------------------------------------------- walk


@dataclass(slots=True)
class _Block:
    text: str
    chars: int
    link_chars: int
    owner: int  # index of the innermost block-level element holding it
    tag: str
    kind: int = _SHORT
    score: float = 0.0
    furniture: bool = False  # "Related articles", "About the author": a box's heading


@dataclass(slots=True)
class _Page:
    """The body as block-level elements (pre-order) and the text blocks between them."""

    parent: list[int]
    tags: list[str]
    names: list[str]  # "class id" as written
    first_block: list[int]
    end_block: list[int]
    chrome: list[bool]
    bodyish: list[bool]
    blocks: list[_Block]
    # Per element: named for the article itself (not only the page's main content).
    article_body: list[bool]
    # Per element: itself or an ancestor is an article, main or a body-named container.
    inside: list[bool] = field(default_factory=list)
    # Per element: how many elements deep below the body.
    depth: list[int] = field(default_factory=list)
    # Per element: itself or its nearest ancestor that is page chrome, else -1.
    nearest_chrome: list[int] = field(default_factory=list)
    # Per element: its blocks' scores, chrome below it counted against it (see _choose).
    value: list[float] = field(default_factory=list)


_INVISIBLE_RE: Final = re.compile("[\xad\u200b\u200e\u200f\u2060\ufeff]")


def _collapse(text: str) -> str:
    # (Both kinds below are unprintable: most texts, printable, are not searched for either.)
    if not text.isprintable():
        if _CONTROL_RE.search(text):
            # No text in C0 controls; vertical tab and form feed are HTML whitespace.
            text = _CONTROL_RE.sub(_control, text)
        if not text.isprintable() and _INVISIBLE_RE.search(text):
            # Soft hyphens ("Wei\xadne"), zero-width spaces, direction marks and byte-order
            # marks are invisible hints, not text (ZWJ and ZWNJ stay: they spell Persian and
            # Indic words).
            text = _INVISIBLE_RE.sub("", text)
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        # One spelling of each character (Bengali's য় is written both ways), as trafilatura.
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def _name_flags(name: str) -> tuple[int, bool]:
    """Whether a class-and-id string names the article body (2), the page's main content (1)
    or neither (0), and whether it names chrome (hidden, or a navigation, sharing, comment,
    related or advertising part): whether any of its words does."""
    flags = _NAMES.get(name)
    if flags is None:
        body, chrome = 0, False
        for token in name.split():
            token_body, token_chrome = _token_flags(token)
            if token_body > body:
                body = token_body
            if token_chrome:
                chrome = True
        if len(_NAMES) >= _NAMES_KEPT:
            _NAMES.clear()
        flags = _NAMES[name] = _FLAGS[body][chrome]
    return flags


# The flags of whole class-and-id strings: most repeat within a page (a menu's items, a list's
# rows) and from page to page of a site. Emptied when full (a dict's get is half the cost of
# an lru_cache's lookup, and a site's names fill it again within a page or two); 1.15 MB
# when full of the dev sets' names (30 characters on average), the six tuples shared.
_NAMES: Final[dict[str, tuple[int, bool]]] = {}
_NAMES_KEPT: Final = 8192
_FLAGS: Final = tuple(((body, False), (body, True)) for body in range(3))


@lru_cache(maxsize=16384)
def _token_flags(token: str) -> tuple[int, bool]:
    """:func:`_name_flags` of one class or id. Cached by the word, not the whole string: the
    words repeat from page to page of a site, their combinations (with ids) much less."""
    if not token.isascii():
        body = 2 if _BODY_RE.search(token) else 1 if _MAIN_RE.search(token) else 0
        return body, bool(_HIDDEN_CLASS_RE.search(token) or _CHROME_RE.search(_words(token)))
    # The same answers, faster, for the common ASCII word: each name the body's pattern and
    # the main content's know holds one of these words; the hidden classes' pattern, on a word
    # without spaces, is equality; and on ASCII lower-cased, ignoring case changes nothing.
    low = token.lower()
    body = 0
    if "body" in low or "content" in low or "text" in low or "entry" in low:
        body = 2 if _BODY_RE.search(token) else 1 if _MAIN_RE.search(token) else 0
    return body, token in _HIDDEN_CLASSES or bool(_CHROME_ASCII_RE.search(_words(token)))


def _words(name: str) -> str:
    """Class and id with WordPress's taxonomy classes left out and camelCase split, lower-cased:
    ``js-NewsletterBox tag-gaza`` reads ``js-newsletter-box``."""
    if "-" in name:
        name = _TAXONOMY_RE.sub(" ", name)
        if "has-" in name or "with-" in name:
            # A modifier saying what an element holds ("o-section--has-ads", "has-sharing")
            # names what is beside the chrome, not the chrome.
            name = _HOLDS_RE.sub(" ", name)
    if name.islower():
        return name  # (no capital to split at, nothing to lower)
    return _CAMEL_RE.sub(r"\1-\2", name).lower()


_CAMEL_RE: Final = re.compile(r"([a-z0-9])([A-Z])")
_HOLDS_RE: Final = re.compile(r"(?:^|(?<=[\s_-]))(?:has|with)-\S*")


# Frames of the walk's stack: the children of an inline element, of a link, of a block.
_INLINE_FRAME: Final = 0
_LINK_FRAME: Final = 1
_BLOCK_FRAME: Final = 2


def _walk(body: LexborNode) -> _Page:
    parent: list[int] = []
    tags: list[str] = []
    names: list[str] = []
    first_block: list[int] = []
    end_block: list[int] = []
    chrome: list[bool] = []
    bodyish: list[bool] = []
    article_body: list[bool] = []
    in_article: list[bool] = []
    depth: list[int] = []
    blocks: list[_Block] = []
    parts: list[str] = []
    link_chars = 0
    in_link = 0

    def flush() -> None:
        # (Called only with parts: without any, link_chars is 0 already.)
        nonlocal link_chars
        text = "".join(parts)
        parts.clear()
        links, link_chars = link_chars, 0
        # (Whitespace alone, the most common run between two blocks, collapses to nothing.)
        if not text.isspace() and (text := _collapse(text)):
            owner = open_elements[-1]
            blocks.append(_Block(text, len(text), min(links, len(text)), owner, tags[owner]))

    def open_element(node: LexborNode, tag: str) -> None:
        attrs = node.attributes
        index = len(tags)
        up = open_elements[-1] if open_elements else -1
        start = len(blocks)
        parent.append(up)
        tags.append(tag)
        first_block.append(start)
        end_block.append(start)
        open_elements.append(index)
        depth.append(depth[up] + 1 if up >= 0 else 0)
        if not attrs:
            # (Most elements have no attributes: no name, role, style to read.)
            names.append("")
            strong = tag == "article"
            is_body = strong or tag == "main"
            bodyish.append(is_body)
            article_body.append(strong)
            inside = is_body or (up >= 0 and in_article[up])
            in_article.append(inside)
            chrome.append(index > 0 and tag in _CHROME_TAGS and not (tag == "header" and inside))
            return
        classes, ident = attrs.get("class"), attrs.get("id")
        name = f"{classes} {ident}" if classes and ident else classes or ident or ""
        names.append(name)
        role = attrs.get("role") or ""
        body_name, chrome_name = _NAMES.get(name) or _name_flags(name) if name else (0, False)
        strong = body_name == 2 or tag == "article" or attrs.get("itemprop") == "articleBody"
        is_body = strong or body_name == 1 or tag == "main" or role == "main"
        bodyish.append(is_body)
        article_body.append(strong)
        inside = is_body or (up >= 0 and in_article[up])
        in_article.append(inside)
        style = attrs.get("style")
        chrome.append(
            index > 0
            and (
                (chrome_name and not is_body)
                or (tag in _CHROME_TAGS and not (tag == "header" and inside))
                or role in _ROLES_CHROME
                or "hidden" in attrs
                or attrs.get("aria-hidden") == "true"
                or bool(
                    style
                    and ("none" in style or "hidden" in style)
                    and _HIDDEN_STYLE_RE.search(style)
                )
            )
        )

    open_elements: list[int] = []
    open_element(body, "body")
    # An explicit stack: hostile pages nest thousands of levels deep. Per level, the next
    # sibling to read and what the level is the children of.
    nodes: list[LexborNode | None] = [body.first_child]
    frames: list[int] = [_BLOCK_FRAME]
    while nodes:
        node = nodes[-1]
        if node is None:
            nodes.pop()
            frame = frames.pop()
            if frame == _BLOCK_FRAME:
                if parts:
                    flush()
                end_block[open_elements.pop()] = len(blocks)
            elif frame == _LINK_FRAME:
                in_link -= 1
            continue
        nodes[-1] = node.next
        tag = node.tag or ""
        if tag == "-text":
            if text := node.text_content:
                parts.append(text)
                if in_link:
                    link_chars += len(text.strip())
            continue
        if tag == "-comment":
            continue
        if tag == "br":
            parts.append("\n")
            continue
        if tag in INLINE_TAGS:
            if tag == "img":
                continue
            # (A "javascript:" link goes nowhere: Readability reads it as text.)
            if tag == "a" and not (
                (href := node.attributes.get("href"))
                and href.lstrip()[:11].lower().startswith("javascript:")
            ):
                in_link += 1
                nodes.append(node.first_child)
                frames.append(_LINK_FRAME)
            else:
                nodes.append(node.first_child)
                frames.append(_INLINE_FRAME)
            continue
        if tag in _STRIPPED:
            # Never text: skipped whole, as if removed (none of these is inline).
            continue
        if parts:
            flush()
        open_element(node, tag)
        nodes.append(node.first_child)
        frames.append(_BLOCK_FRAME)
    return _Page(
        parent,
        tags,
        names,
        first_block,
        end_block,
        chrome,
        bodyish,
        blocks,
        article_body,
        in_article,
        depth,
    )


# --------------------------------------------------------------------------- classification


# Lines that introduce page furniture, not the article: related links, author boxes, sharing,
# comments, print buttons (the phrases of news sites in the languages of the dev sets), as the
# whole line or before a colon.
_BOILERPLATE_RE: Final = re.compile(
    r"(?:"
    # English
    r"related(?: articles?| stories| posts| news| content| topics| coverage)?"
    r"|read (?:more|next|also)"
    r"|see also|also read|more (?:on|about|from|stories|news|like this)(?: [\w' -]{1,30})?"
    r"|recommended(?: for you)?|you (?:may|might) also like|about the authors?|share(?: this)?"
    r"(?: (?:article|story|post|page))?|share (?:on|via) \w+|comments?|leave a (?:comment|reply)"
    r"|explore further|further reading|tags|topics|advertisement|follow us(?: on \w+)?"
    r"|print(?: this)?(?: recipe| article| page)?|most (?:read|popular|viewed)|trending(?: now)?"
    r"|editor'?s picks|latest (?:news|articles|stories)|newsletter|subscribe(?: now)?"
    r"|missed the main event\?"
    # German
    r"|mehr (?:zum thema|zu [\w -]{1,30}|artikel|dazu|aus [\w -]{1,30})|(?:zum )?weiterlesen"
    r"|lesen sie (?:auch|mehr|hier)|auch interessant|das könnte sie (?:auch )?interessieren"
    r"|weitere (?:artikel|informationen|beiträge|themen|nachrichten|links)|über den autor(?:in)?"
    r"|neueste artikel|ähnliche (?:artikel|beiträge)|empfehlungen(?: aus [\w -]{1,30})?"
    r"|(?:artikel )?teilen|kommentare?|rezept drucken|themen|schlagworte|anzeige"
    r"|war (?:der|dieser) artikel (?:nützlich|hilfreich)\?|möchten sie den artikel teilen\?"
    # French, Spanish, Portuguese, Italian, Dutch, Polish
    r"|(?:à )?lire aussi|voir aussi|sur le même sujet|articles? similaires|partager|commentaires"
    r"|lee también|lea también|leer más|ver también|vea también|veja também|leia também"
    r"|relacionad[oa]s|compartir"
    r"|comentarios|leggi anche|articoli correlati|lees ook|gerelateerde artikelen"
    r"|zobacz (?:także|też|również)|czytaj (?:także|też|również)|przeczytaj (?:także|też|również)"
    r"|podobne artykuły|komentarze|udostępnij"
    r")\s*(?:[:：]|\(\d+\)|[.!»›>→]*$)",
    re.IGNORECASE,
)
_BOILERPLATE_LOWER_RE: Final = re.compile(_BOILERPLATE_RE.pattern)
_BOILERPLATE_CHARS: Final = 60
# A furniture phrase before a colon introduces a line up to this long ("Read also: ...").
_BOILERPLATE_LINE: Final = 200
# Past this share of symbols (neither letter, digit nor space) a line is binary read as text,
# not prose: prose and even code stay well below it.
_MAX_SYMBOLS: Final = 0.4
_SYMBOL_RE: Final = re.compile(r"[^\w\s]")
# The ASCII characters _SYMBOL_RE does not count, to delete from an ASCII text (in C).
_NOT_SYMBOLS: Final = bytes(c for c in range(128) if not _SYMBOL_RE.match(chr(c)))


def _symbols(text: str) -> int:
    """How many characters of the text are symbols (neither letter, digit nor space)."""
    if text.isascii():
        return len(text.encode("ascii").translate(None, _NOT_SYMBOLS))
    return len(_SYMBOL_RE.findall(text))


def _found(pattern: re.Pattern[str], lower: re.Pattern[str], text: str) -> bool:
    """``pattern.search(text)``, faster on an ASCII text: a pattern ignoring case (written in
    lower case) finds in it what its twin heeding case finds in the text lower-cased, and
    Python's re is several times slower ignoring case (55 us for a long paragraph)."""
    if text.isascii():
        return lower.search(text.lower()) is not None
    return pattern.search(text) is not None


_WIDE_RE: Final = re.compile(
    "[\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)


def _furniture(text: str, chars: int) -> bool:
    """Whether the line introduces page furniture: a furniture phrase alone, or (in a longer
    line, "Read also: <another story's headline>") before a colon."""
    if chars >= _BOILERPLATE_CHARS and ":" not in text and "：" not in text:
        return False  # (a longer line without a colon: whatever the phrase, not furniture)
    if text.isascii():
        match = _BOILERPLATE_LOWER_RE.match(text.lower())  # (see _found)
    else:
        match = _BOILERPLATE_RE.match(text)
    if match is None:
        return False
    return chars < _BOILERPLATE_CHARS or match[0].rstrip()[-1:] in ":："


def _classify(block: _Block) -> None:
    """Good (body-like), short (decided by its neighbours) or bad (a link list's line).

    Only a short block can be a link line (trafilatura's rule: a paragraph past 60 characters
    or another block past 100 stays, whatever its links); the score that chooses the container
    counts linked text against it all the same.
    """
    chars = block.chars
    density = block.link_chars / chars
    # A Han, kana or Hangul character carries about a word: it counts as three, or a Chinese
    # paragraph of forty characters would read as a label.
    size = chars
    if not block.text.isascii() and (wide := len(_WIDE_RE.findall(block.text))):
        size += 2 * wide
    block.score = size * (1 - 2 * density) if density else float(size)
    limit = 60 if block.tag == "p" else 100
    block.furniture = chars < _BOILERPLATE_LINE and _furniture(block.text, chars)
    if (
        (density > 0.8 and chars < limit)
        or (density > 0.5 and chars < 25)
        or (chars >= 40 and _symbols(block.text) > _MAX_SYMBOLS * chars)
        or block.furniture
    ):
        block.kind = _BAD
        block.score = -float(chars)
    elif size >= 100 or (size >= 40 and _SENTENCE_END_RE.search(block.text)):
        block.kind = _GOOD if density < 0.5 else _SHORT
    else:
        block.kind = _SHORT
        # Short lines say nothing about their container: a list of ingredients or a table is
        # as much the body as a menu is chrome (their neighbours decide them in _select).
        block.score = 0.0


def _choose(page: _Page) -> int:
    """The block-level element whose text scores highest, chrome inside it counted against it.

    An element's value is its own blocks' scores, plus each child's value, except that a child
    that is chrome counts its whole text against the parent. An element inside chrome is a poor
    candidate; but chrome that holds nearly all the page's text is a wrapper (a page inside a
    ``<form>`` or a ``div.l-outer--nav``), not chrome.
    """
    tags, parent, names = page.tags, page.parent, page.names
    count = len(tags)
    value = [0.0] * count
    against = [0.0] * count
    mass = [0.0] * count
    for block in page.blocks:
        owner, score = block.owner, block.score
        value[owner] += score
        against[owner] -= abs(score)
        if score > 0:
            mass[owner] += score
    # <article>s at or below each element.
    articles = [1 if tag == "article" else 0 for tag in tags]
    for i in range(count - 1, 0, -1):
        up = parent[i]
        mass[up] += mass[i]
        articles[up] += articles[i]
    chrome = page.chrome
    wrapper = _WRAPPER_SHARE * mass[0]
    for i in range(1, count):
        # (A comment section is never the page's wrapper, however long the discussion.)
        if chrome[i] and mass[i] > wrapper and "comment" not in names[i].lower():
            chrome[i] = False
    for i in range(count - 1, 0, -1):
        up = parent[i]
        value[up] += _CHROME_AGAINST * against[i] if chrome[i] else value[i]
        against[up] += against[i]
    page.value = value
    nearest = page.nearest_chrome = [-1] * count
    bodyish, article_body = page.bodyish, page.article_body
    best, best_score = 0, float("-inf")
    for i in range(count):
        if chrome[i]:
            nearest[i] = i
        elif (up := parent[i]) >= 0:
            nearest[i] = nearest[up]
        if tags[i] in _LEAF_BLOCKS:
            continue
        score = value[i]
        if bodyish[i]:
            score *= _BODY_BONUS if article_body[i] else _MAIN_BONUS
        if nearest[i] >= 0:
            score *= _CHROME_PENALTY
        if score > best_score or (score == best_score and value[i] > 0):
            best, best_score = i, score
    # Grow the container while its parent adds more than it costs: a standfirst or a second
    # part of the body in a sibling of the element named for the body.
    # Never from an article into what holds another one, though.
    while (
        (up := page.parent[best]) > 0
        and nearest[up] < 0
        and value[up] >= value[best] + _GROW_MARGIN
        and not (articles[best] and articles[up] > articles[best])
    ):
        best = up
    # A container inside an element named for the article body, holding little of its prose
    # (a list item of a post whose shownotes, link lists, sank the post's value): the body.
    up = page.parent[best]
    while up > 0 and nearest[up] < 0:
        if page.article_body[up] and mass[best] < _BODY_SHARE * mass[up] and articles[up] <= 1:
            best = up
        up = page.parent[up]
    return best


_BODY_SHARE: Final = 0.5


def _with_siblings(page: _Page, container: int) -> list[int]:
    """The container and those of its siblings that read as more of the body (Readability's
    sibling merge): a sibling scoring past a share of the container's value, or one more good
    paragraph. In page order."""
    first, end = page.first_block, page.end_block
    # An element whose only text is the container's is the container, larger.
    while (
        (up := page.parent[container]) > 0
        and first[up] == first[container]
        and end[up] == end[container]
        and page.nearest_chrome[up] < 0
    ):
        container = up
    if up < 0:
        return [container]
    value, chrome = page.value, page.chrome
    top = value[container]
    threshold = max(_SIBLING_MIN, _SIBLING_SHARE * top)
    # Siblings of one kind (the CMS's "csc-default c2616" beside "csc-default c2617").
    kind = (page.tags[container], page.names[container].split(" ", 1)[0])
    out = []
    lead = -1
    preceded = False
    for i in range(up + 1, len(page.tags)):
        if page.first_block[i] >= page.end_block[up] and i > container:
            break
        if page.parent[i] != up:
            continue
        if i == container:
            out.append(i)
            continue
        if chrome[i] or (page.tags[i] == "article" and kind[0] == "article"):
            # (Two <article>s are two articles: a blog's front page, the next story.)
            continue
        bonus = (
            _SIBLING_SHARE * top
            if kind[1] and (page.tags[i], page.names[i].split(" ", 1)[0]) == kind
            else 0.0
        )
        if value[i] + bonus >= threshold or (
            page.tags[i] in _PARAGRAPH_TAGS and value[i] >= _SIBLING_PARAGRAPH
        ):
            out.append(i)
        elif i < container and value[i] >= _SIBLING_PARAGRAPH:
            lead = i  # the nearest part before the container with some prose: a standfirst
        elif i < container and page.first_block[i] < page.end_block[i]:
            lead = -1
        if i < container and page.first_block[i] < page.end_block[i]:
            preceded = True
    if not preceded:
        # Nothing before the container here: the standfirst may sit higher up (the article's
        # header beside the wrapper of the body).
        lead = _lead_above(page, up)
    if lead > 0 and lead not in out:
        out.append(lead)
        out.sort()
    return out


def _lead_above(page: _Page, element: int) -> int:
    """The nearest element with prose before ``element`` or its ancestors (up to
    _LEAD_LEVELS), if the first one with any text before it has prose; else -1."""
    for _ in range(_LEAD_LEVELS):
        up = page.parent[element]
        if up <= 0 or page.nearest_chrome[up] >= 0:
            return -1
        before = -1
        for i in range(up + 1, element):
            if page.parent[i] == up and not page.chrome[i] and _has_text(page, i):
                before = i
        if before >= 0:
            return before if page.value[before] >= _SIBLING_PARAGRAPH else -1
        element = up
    return -1


def _has_text(page: _Page, element: int) -> bool:
    """Whether any text block lies inside the element."""
    return page.first_block[element] < page.end_block[element]


def _linky(blocks: list[_Block], among: int) -> bool:
    """Whether these blocks are mostly links (a box of related stories) and a small part of
    the ``among`` blocks around them (not the page's whole second half: Wikipedia's "See also"
    heading is followed by its references)."""
    chars = sum(b.chars for b in blocks)
    return (
        len(blocks) <= _BOX_SHARE * among
        and sum(b.link_chars for b in blocks) >= _LINKY_BOX * chars
    )


_LINKY_BOX: Final = 0.3
_BOX_SHARE: Final = 0.25


def _select(page: _Page, containers: list[int], title: str | None) -> list[_Block]:
    """The hand rules' choice of the body's blocks inside the containers, in page order
    (before :func:`_trim`)."""
    kept: list[_Block] = []
    for container in containers:
        lo, hi = page.first_block[container], page.end_block[container]
        skip_to = lo
        for k in range(lo, hi):
            if k < skip_to:
                continue
            block = page.blocks[k]
            marked = page.nearest_chrome[block.owner]
            if marked > container:
                continue
            if block.furniture:
                # The heading of a box inside the body ("More on this", "About the author"):
                # the box goes with it.
                box = page.parent[block.owner] if block.tag != "div" else block.owner
                if box > container and _linky(page.blocks[k + 1 : page.end_block[box]], hi - lo):
                    skip_to = page.end_block[box]
                continue
            if block.kind == _BAD and not (block.tag == "p" and not block.furniture):
                continue
            kept.append(block)
    out: list[_Block] = []
    title_key = _key(title)
    good = [i for i, block in enumerate(kept) if block.kind == _GOOD]
    if not good:
        # A short article's paragraphs, without headings: list items and short lines alone
        # are a menu or a form, not an article.
        return [
            block
            for block in kept
            if block.kind != _BAD
            and block.tag in _SHORT_BODY_TAGS
            and _has_word(block.text)
            and not (title_key and block.text.casefold() == title_key)
        ]
    first, last = good[0], good[-1]
    for i, block in enumerate(kept):
        if block.kind == _BAD and not first < i < last:
            # A paragraph that is one link is the article's between its paragraphs ("the
            # report is here"), a link list's line anywhere else.
            continue
        if (
            block.kind == _SHORT
            and not first < i < last
            and not (i < first and block.tag in _HEADINGS)
            # (A list item, a quote or code without links is the body's: ingredients, steps,
            # points, a closing quotation, the command the article explained.)
            and not (block.tag in _EDGE_BODY_TAGS and not block.link_chars)
            and not _sentence(block.text)
        ):
            # Before the body's first good paragraph or after its last: a dateline, byline,
            # "Share this" or "Related:" line, unless it reads as a sentence.
            continue
        out.append(block)
    return out


def _trim(blocks: list[_Block], title_key: str | None) -> list[_Block]:
    """The chosen blocks without the headline, pictures' credits, the article's trailer and a
    disclosure before it."""
    out: list[_Block] = []
    for block in blocks:
        if title_key and block.text.casefold() == title_key:
            continue
        if block.chars < _CREDIT_CHARS and _found(_CREDIT_RE, _CREDIT_LOWER_RE, block.text):
            continue  # a picture's credit ("© Getty Images", "Image copyright Reuters")
        out.append(block)
    # The article's trailer: a copyright notice, an invitation to subscribe, to follow, to
    # download the app, after the body's last paragraph.
    for _ in range(_TRAILER_LINES):
        if len(out) > 1 and (
            _found(_RIGHTS_RE, _RIGHTS_LOWER_RE, out[-1].text)
            or _found(_INVITATION_RE, _INVITATION_LOWER_RE, out[-1].text)
        ):
            out.pop()
    # A disclosure before the article: "This post contains references to our advertisers".
    while (
        len(out) > 1
        and out[0].chars < _DISCLOSURE_CHARS
        and _found(_DISCLOSURE_RE, _DISCLOSURE_LOWER_RE, out[0].text)
    ):
        del out[0]
    return out


_DISCLOSURE_CHARS: Final = 300
_DISCLOSURE_RE: Final = re.compile(
    r"\badvertisers\b|\baffiliate links?\b|\bsponsored (?:post|content|by)\b|^\W*werbung\b"
    r"|enthält (?:\w+ )?(?:werbung|affiliate)|contenido patrocinado|contenu sponsorisé",
    re.IGNORECASE,
)
_DISCLOSURE_LOWER_RE: Final = re.compile(_DISCLOSURE_RE.pattern)


_CREDIT_CHARS: Final = 120
_TRAILER_LINES: Final = 2
_RIGHTS_RE: Final = re.compile(
    r"©|\(c\) ?\d{4}|copyright \d{4}|all rights reserved|alle rechte vorbehalten"
    r"|derechos reservados|tous droits réservés|prawa zastrzeżone|riproduzione riservata",
    re.IGNORECASE,
)
_CREDIT_RE: Final = re.compile(
    f"{_RIGHTS_RE.pattern}|copyright"
    r"|^(?:title|titel)?(?:fotos?|photos?|bild|image|picture|credits?|crédito|fotografía)\s*:",
    re.IGNORECASE,
)
_INVITATION_RE: Final = re.compile(
    r"\b(?:download|get) (?:the|our) [\w .-]{0,40}apps?\b|subscribe (?:now|to)|sign up for"
    r"|follow us|s[ií]guenos|folge uns|folgen sie uns|abonnieren sie|suivez-nous|abonnez-vous"
    # appeals for support, newsletters, the text's licence
    r"|support (?:our|us|independent)|supporting our|unterstützen sie|unterstütze (?:uns|unsere?)"
    r"|ap[óo]yanos|soutenez|newsletter|creative commons|cc-by|unter der lizenz",
    re.IGNORECASE,
)

# (Their twins heeding case, for lower-cased ASCII text: see _found.)
_RIGHTS_LOWER_RE: Final = re.compile(_RIGHTS_RE.pattern)
_CREDIT_LOWER_RE: Final = re.compile(_CREDIT_RE.pattern)
_INVITATION_LOWER_RE: Final = re.compile(_INVITATION_RE.pattern)


_EDGE_BODY_TAGS: Final = frozenset({"li", "pre", "blockquote"})
_SHORT_BODY_TAGS: Final = frozenset({"p", "blockquote"})
# A page with less text than this outside its chrome is all content (trafilatura's baseline).
_TINY_PAGE: Final = 300


def _baseline(page: _Page, title: str | None) -> list[str]:
    """The text of a page too small to have chrome around an article, when nothing was found."""
    texts = [
        block.text
        for block in page.blocks
        if page.nearest_chrome[block.owner] < 0
        and block.link_chars <= block.chars // 2
        and _has_word(block.text)
        and _symbols(block.text) <= _MAX_SYMBOLS * block.chars
    ]
    if sum(map(len, texts)) > _TINY_PAGE:
        return []
    title_key = _key(title)
    return [text for text in texts if text.casefold() != title_key]


def _wild(page: _Page, title: str | None) -> list[str]:
    """The good paragraphs of the whole page outside chrome, in page order."""
    title_key = _key(title)
    return [
        block.text
        for block in page.blocks
        if block.kind == _GOOD
        and page.nearest_chrome[block.owner] < 0
        and block.text.casefold() != title_key
    ]


# Less text than this from the container is a short extraction (trafilatura's
# MIN_EXTRACTED_SIZE); the page's wild text replaces it when this many times as long.
_SHORT_OUTPUT: Final = 250
_LONGER: Final = 2.0


def body_paragraphs(
    page: _Page, chosen: list[_Block], title: str | None, ld: list[dict[str, Any]]
) -> list[str]:
    """The body's paragraphs from the blocks chosen for it (trimmed: :func:`_trim`), or what
    stands in for too short a body."""
    paragraphs = [block.text for block in _trim(chosen, _key(title))]
    if sum(map(len, paragraphs)) < _SHORT_OUTPUT:
        # Little or nothing found in the container: the page's prose outside chrome, wherever
        # it is (trafilatura's recovery of "wild" text when its own extraction is too short).
        wild = _wild(page, title)
        if sum(map(len, wild)) > _LONGER * sum(map(len, paragraphs)):
            paragraphs = wild
        # The article's text as its JSON-LD gives it (trafilatura's baseline looks there first).
        given = _ld_body(ld)
        if sum(map(len, given)) > _LONGER * sum(map(len, paragraphs)):
            paragraphs = given
    return paragraphs or _baseline(page, title)


def _key(title: str | None) -> str | None:
    """The headline as compared with a block's text (casefolded), if any."""
    return title.casefold() if title else None


def _ld_body(ld: list[dict[str, Any]]) -> list[str]:
    """The paragraphs of the first JSON-LD article's ``articleBody`` (its lines), if any."""
    for item in ld:
        text = item.get("articleBody")
        if isinstance(text, str) and text.strip():
            if "<" in text and ">" in text:
                # Some CMSs put the body's HTML there.
                text = LexborHTMLParser(text).text(separator="\n")
            return [line for line in map(_collapse, text.splitlines()) if line]
    return []


def _has_word(text: str) -> bool:
    return any(c.isalnum() for c in text)


_SENTENCE_RE: Final = re.compile(r"[.!?…。！？؟۔।॥։።။][\"'“”‘’»«›」』)]*$")
_MIN_WORDS: Final = 6


def _sentence(text: str) -> bool:
    return bool(_SENTENCE_RE.search(text)) and text.count(" ") + 1 >= _MIN_WORDS


# --------------------------------------------------------------------------- learned scorer

# What the block scorer reads of each block (bench/train_blocks.py learns the weights on the
# dev halves of the two public sets; block_scorer.json ships them). The hand rules' own
# choice is one of them: the scorer keeps or drops blocks, in or outside the container.
FEATURES: Final = (
    "log_chars",
    "link_density",
    "good",
    "bad",
    "furniture",
    "tag_p",
    "tag_heading",
    "tag_li",
    "tag_cell",
    "tag_div",
    "in_chrome",
    "in_article",
    "owner_bodyish",
    "depth_below_container",
    "in_container",
    "hand_chosen",
    "before_container",
    "after_container",
    "log_distance",
    "position",
    "prev_chosen",
    "next_chosen",
    "prev_good",
    "next_good",
    "window_chosen",
    "window_good",
    "window_links",
    "log_page_share",
    "links_outside",
    "bad_outside",
    "chosen_before",
    "chosen_after",
    "place_in_container",
)
_TAG_CODES: Final = {
    "p": 0,
    **dict.fromkeys(_HEADINGS, 1),
    "li": 2,
    **dict.fromkeys(("td", "th", "tr", "dd", "dt"), 3),
    "div": 4,
}
_TAG_COLUMNS: Final = np.arange(5)  # the one-hot columns of the codes 0-4 (5: another tag)
Rows = np.ndarray[Any, np.dtype[np.float64]]
_INSIDE: Final = FEATURES.index("in_container")
_HAND: Final = FEATURES.index("hand_chosen")
_BAD_LINE: Final = FEATURES.index("bad")
_GOOD_LINE: Final = FEATURES.index("good")
_FURNITURE: Final = FEATURES.index("furniture")
_REACH: Final = 3  # blocks on each side in a window


def _window(values: np.ndarray[Any, np.dtype[Any]]) -> Rows:
    """The mean over each block's window of 2 * _REACH + 1 blocks (zeros past the page)."""
    sums = np.concatenate(([0.0], np.cumsum(values, dtype=np.float64)))
    n = len(values)
    where = np.arange(n)
    hi = np.minimum(where + _REACH + 1, n)
    lo = np.maximum(where - _REACH, 0)
    return (sums[hi] - sums[lo]) / (2 * _REACH + 1)


def features(
    page: _Page, containers: list[int], chosen: list[_Block], span: tuple[int, int] | None = None
) -> Rows:
    """One row per block of the page, one column per name in :data:`FEATURES`; or the same
    rows of the blocks ``span`` holds only (a range that holds the containers)."""
    blocks = page.blocks
    n = len(blocks)
    first, end = span or (0, n)
    # (The rows of the span need the blocks around it, for the windows.)
    lo_raw, hi_raw = max(first - _REACH, 0), min(end + _REACH, n)
    nearest, inside_body, bodyish, depths = (
        page.nearest_chrome,
        page.inside,
        page.bodyish,
        page.depth,
    )
    codes = _TAG_CODES
    picked = {id(b) for b in chosen}
    # What each block says of itself and of its element, in one pass.
    raw = np.array(
        [
            (
                b.chars,
                b.link_chars,
                b.kind,
                b.furniture,
                codes.get(b.tag, 5),
                nearest[b.owner] >= 0,
                inside_body[b.owner],
                bodyish[b.owner],
                depths[b.owner],
                id(b) in picked,
            )
            for b in blocks[lo_raw:hi_raw]
        ],
        np.float64,
    ).reshape(-1, 10)
    chars, links, kinds, hand = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 9]
    good = kinds == _GOOD
    density = links / np.maximum(chars, 1)
    # The span's rows of what was read around it.
    cut = slice(first - lo_raw, end - lo_raw)
    m = end - first
    lo = min(page.first_block[c] for c in containers)
    hi = max(page.end_block[c] for c in containers)
    where = np.arange(first, end, dtype=np.float64)
    inside = np.zeros(m)
    for c in containers:
        inside[max(page.first_block[c] - first, 0) : max(page.end_block[c] - first, 0)] = 1.0
    page_chars = sum(b.chars for b in blocks) if span else chars.sum()
    # How many blocks the hand rules chose before and after each one (all of them lie in the
    # containers, inside the span).
    before_count = np.cumsum(hand) - hand
    after_count = len(chosen) - before_count - hand
    prev_hand, next_hand, prev_good, next_good = np.zeros((4, len(raw)))
    prev_hand[1:], next_hand[:-1], prev_good[1:], next_good[:-1] = (
        hand[:-1],
        hand[1:],
        good[:-1],
        good[1:],
    )
    span_hand, span_good, span_chars, span_density = hand[cut], good[cut], chars[cut], density[cut]
    rows = np.zeros((m, len(FEATURES)))
    rows[:, 0] = np.log1p(span_chars)
    rows[:, 1] = span_density
    rows[:, 2] = span_good
    rows[:, 3] = bad = kinds[cut] == _BAD
    rows[:, 4] = raw[cut, 3]
    rows[:, 5:10] = raw[cut, 4, None] == _TAG_COLUMNS
    rows[:, 10:13] = raw[cut, 5:8]
    rows[:, 13] = np.clip(raw[cut, 8] - depths[containers[0]], -5, 5) / 5
    rows[:, 14] = inside
    rows[:, 15] = span_hand
    rows[:, 16] = where < lo
    rows[:, 17] = where >= hi
    rows[:, 18] = np.log1p(np.maximum(lo - where, 0) + np.maximum(where - hi + 1, 0))
    rows[:, 19] = where / n
    rows[:, 20] = prev_hand[cut]
    rows[:, 21] = next_hand[cut]
    rows[:, 22] = prev_good[cut]
    rows[:, 23] = next_good[cut]
    rows[:, 24] = _window(hand)[cut]
    rows[:, 25] = _window(good)[cut]
    rows[:, 26] = _window(density)[cut]
    rows[:, 27] = np.log(span_chars / max(page_chars, 1) + 1e-4)
    outside = 1.0 - inside
    rows[:, 28] = span_density * outside
    rows[:, 29] = bad * outside
    rows[:, 30] = np.log1p(before_count[cut])
    rows[:, 31] = np.log1p(after_count[cut])
    rows[:, 32] = np.clip((where - lo) / max(hi - lo, 1), 0, 1)
    return rows


@dataclass(frozen=True, slots=True)
class BlockScorer:
    """A logistic regression over :data:`FEATURES` that keeps or drops the blocks of the
    body's containers (the hand rules' choice of where the body is): a block the hand rules
    chose stays when ``features @ weights + bias`` is above 0 (the threshold is in the bias),
    another block of the containers joins when it is above ``add``. Outside the containers
    it decides nothing: free to take any block of the page, it scored no better on the dev
    halves, and it took a menu beside a short article's body."""

    weights: Rows
    bias: float
    add: float

    def choose(self, page: _Page, rows: Rows, first: int = 0) -> list[_Block]:
        """The blocks to keep, of those whose rows these are (from block ``first`` on)."""
        score = rows @ self.weights + self.bias
        hand = rows[:, _HAND] > 0
        # Never furniture; a short line, a link list's line or binary only between the blocks
        # the hand rules chose (before or after them, one is a dateline, a byline, a "Share
        # this", a menu), and none of them when the hand rules chose nothing.
        between = np.zeros(len(hand), bool)
        if hand.any():
            chosen = np.flatnonzero(hand)
            where = np.arange(len(hand))
            between = (where > chosen[0]) & (where < chosen[-1])
        open_ = (rows[:, _INSIDE] > 0) & (rows[:, _FURNITURE] == 0)
        open_ &= ((rows[:, _GOOD_LINE] > 0) & (rows[:, _BAD_LINE] == 0)) | between
        keep = (hand & (score > 0)) | (~hand & open_ & (score > self.add))
        blocks = page.blocks
        return [
            blocks[k] for k in (np.flatnonzero(keep) + first).tolist() if _has_word(blocks[k].text)
        ]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockScorer:
        if tuple(data["features"]) != FEATURES:
            raise ValueError("block scorer: its features are not this extractor's")
        weights = np.asarray(data["weights"], np.float64)
        return cls(weights, float(data["bias"]), float(data["add"]))


SCORER_PATH: Final = Path(__file__).with_name("block_scorer.json")


@lru_cache(maxsize=1)
def block_scorer() -> BlockScorer:
    """The shipped block scorer, read once.

    A missing or unreadable file is a ``ValueError`` naming it, never the hand rules alone in
    silence: their texts would be recorded under this extractor's version, which promises the
    scorer's. Text crawls check it at start (``TextConfig``), so a broken install stops there.
    """
    try:
        return BlockScorer.from_json(json.loads(SCORER_PATH.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"the generic extractor's block scorer {SCORER_PATH} cannot be read "
            f"({type(exc).__name__}: {exc}); this installation of newsarchive is incomplete: "
            "install it again"
        ) from exc


# --------------------------------------------------------------------------- metadata


_META_KEYS: Final = ("property", "name", "itemprop", "http-equiv")
# Not text inside a heading or a title.
_NOT_TEXT: Final = frozenset({"script", "style", "template", "noscript", "svg", "math"})


def _inline_text(node: LexborNode) -> str:
    """An element's text with a space where an element that is not inline begins or ends."""
    parts: list[str] = []
    # (next sibling to read, whether the element whose children these are ends with a space)
    stack: list[tuple[LexborNode | None, bool]] = [(node.first_child, False)]
    while stack:
        child, space_after = stack[-1]
        if child is None:
            stack.pop()
            if space_after:
                parts.append(" ")
            continue
        stack[-1] = (child.next, space_after)
        tag = child.tag or ""
        if tag == "-text":
            parts.append(child.text_content or "")
        elif tag == "br":
            parts.append(" ")
        elif not tag.startswith("-") and tag not in _NOT_TEXT:
            block = tag not in INLINE_TAGS
            if block:
                parts.append(" ")
            stack.append((child.first_child, block))
    return "".join(parts)


def _read_head(tree: LexborHTMLParser) -> PageHead:
    props: dict[str, list[str]] = {}
    links: dict[str, str] = {}
    ld_blocks: list[str] = []
    # One query for the three kinds of element, in page order.
    for node in tree.css("meta, link, script"):
        attrs = node.attributes
        if node.tag == "meta":
            content = attrs.get("content")
            if content is not None:
                for key in _META_KEYS:
                    if name := attrs.get(key):
                        props.setdefault(name.strip().lower(), []).append(content)
        elif node.tag == "link":
            href = attrs.get("href")
            for rel in (attrs.get("rel") or "").lower().split():
                if href and rel not in links:
                    links[rel] = href.strip()
        elif attrs.get("type") == "application/ld+json" and (text := node.text(deep=True)):
            ld_blocks.append(text)
    h1 = next((text for node in tree.css("h1") if (text := _inline_text(node)).strip()), None)
    title_node = tree.css_first("title")
    root = tree.root
    lang = None
    if root is not None:
        lang = root.attributes.get("lang") or root.attributes.get("xml:lang")
    return PageHead(
        props,
        links,
        ld_blocks,
        lang.strip() if lang else None,
        h1,
        _inline_text(title_node) if title_node is not None else None,
    )


def _metadata(head: PageHead) -> tuple[dict[str, str], list[dict[str, Any]]]:
    meta: dict[str, str] = {}
    for key, values in head.props.items():
        for value in values:
            if value := value.strip():
                meta[key] = value
                break
    articles: list[dict[str, Any]] = []
    for block in head.ld_blocks:
        try:
            data = json.loads(block)
        except (ValueError, RecursionError):
            continue
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                types = item.get("@type")
                names = {types} if isinstance(types, str) else set()
                if isinstance(types, list):
                    names = {t for t in types if isinstance(t, str)}
                if names & _ARTICLE_TYPES:
                    articles.append(item)
                if "@graph" in item:
                    stack.append(item["@graph"])
    return meta, articles


def _title(head: PageHead, meta: dict[str, str], ld: list[dict[str, Any]]) -> str | None:
    for item in ld:
        if isinstance(headline := item.get("headline"), str) and headline.strip():
            return _collapse(headline)
    if title := meta.get("og:title") or meta.get("twitter:title"):
        return _collapse(title)
    for text in (head.h1, head.title_tag):
        if text and (text := _collapse(text)):
            return text
    return None


def _published(
    tree: LexborHTMLParser, meta: dict[str, str], ld: list[dict[str, Any]]
) -> str | None:
    for key in _DATE_KEYS[:2]:
        if value := meta.get(key):
            return value
    for item in ld:
        if isinstance(value := item.get("datePublished"), str) and value.strip():
            return value.strip()
    for key in _DATE_KEYS[2:]:
        if value := meta.get(key):
            return value
    for node in tree.css("[itemprop=datePublished], time[datetime]"):
        attrs = node.attributes
        if value := attrs.get("datetime") or attrs.get("content"):
            return value.strip()
    return None


def _language(tree: LexborHTMLParser, meta: dict[str, str]) -> str | None:
    root = tree.root
    if root is not None and (lang := root.attributes.get("lang")):
        return lang.strip() or None
    if lang := meta.get("content-language") or meta.get("dc.language"):
        return lang.split(",")[0].strip()
    if locale := meta.get("og:locale"):
        return locale.replace("_", "-")
    return None


# --------------------------------------------------------------------------- public API

_CONTROL_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+")


def _control(match: re.Match[str]) -> str:
    return " " if "\x0b" in match[0] or "\x0c" in match[0] else ""


def blocks_of(body: LexborNode, title: str | None) -> tuple[_Page, int, list[int], list[_Block]]:
    """The page's blocks, the element chosen for its body, the containers the body is taken
    from (it and its siblings) and the hand rules' choice of blocks."""
    page = _walk(body)
    for block in page.blocks:
        _classify(block)
    container = _choose(page)
    containers = _with_siblings(page, container)
    return page, container, containers, _select(page, containers, title)


def parse(
    html: str,
) -> tuple[LexborHTMLParser, PageHead, dict[str, str], list[dict[str, Any]], str | None]:
    """The page parsed once: its tree, head, meta tags, JSON-LD items and headline."""
    if "\x00" in html:
        # lexbor would make NUL a U+FFFD; no text in it (nor in the other C0 controls, which
        # _collapse drops from each block's text: far less to search than the whole page).
        html = _CONTROL_RE.sub(_control, html)
    tree = LexborHTMLParser(html)
    head = _read_head(tree)
    meta, ld = _metadata(head)
    return tree, head, meta, ld, _title(head, meta, ld)


def extract_main(html: str, url: str) -> GenericResult:
    """The headline, body paragraphs, published date and language of one page, parsed once."""
    tree, head, meta, ld, title = parse(html)
    published = _published(tree, meta, ld)
    language = _language(tree, meta)
    description = meta.get("description") or meta.get("og:description")
    body = tree.body
    if body is None:
        return GenericResult(title, [], published, language, description, head=head)
    # The body's byline and tags (crawler.text.byline), unless the head names both already.
    named = bool(meta.get("author")) or any(item.get("author") for item in ld)
    tagged = bool(meta.get("article:tag")) or any(item.get("keywords") for item in ld)
    authors, tags = ([], []) if named and tagged else byline(tree)
    page, container, containers, chosen = blocks_of(body, title)
    if page.blocks:
        # (Rows for the blocks from the first container's to the last's: it decides no other.)
        first = min(page.first_block[c] for c in containers)
        span = first, max(page.end_block[c] for c in containers)
        chosen = block_scorer().choose(page, features(page, containers, chosen, span), first)
    paragraphs = body_paragraphs(page, chosen, title, ld)
    label = " ".join(filter(None, (page.tags[container], page.names[container])))
    return GenericResult(
        title,
        paragraphs,
        published,
        language,
        description,
        label,
        head=head,
        authors=authors,
        tags=tags,
    )
