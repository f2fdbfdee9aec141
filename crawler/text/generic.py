"""Main text of any news page from one lexbor parse: metadata, body container and cleanup."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from selectolax.lexbor import LexborHTMLParser, LexborNode

# --------------------------------------------------------------------------- result


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


# --------------------------------------------------------------------------- vocabulary

# Never text: removed before the walk (in C, one pass).
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
# Elements inside a paragraph; every other element starts and ends a block.
_INLINE: Final = frozenset(
    {
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "cite",
        "code",
        "data",
        "dfn",
        "em",
        "font",
        "i",
        "img",
        "ins",
        "del",
        "kbd",
        "label",
        "mark",
        "q",
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
        "nobr",
        "big",
        "acronym",
        "ruby",
        "rt",
        "rp",
        "-text",
        "-comment",
    }
)
_HEADINGS: Final = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Page chrome by its element name.
# (``noscript``: an unclosed one can hold the whole page, so it is chrome, not stripped.)
_CHROME_TAGS: Final = frozenset({"nav", "aside", "footer", "header", "form", "menu", "noscript"})
# Page chrome by class or id (the vocabulary of trafilatura's and resiliparse's discard lists).
_CHROME_RE: Final = re.compile(
    r"(?:^|[\s_-])(?:"
    r"nav|navbar|navigation|menu|breadcrumbs?|sidebar|side-bar|widget|footer|masthead"
    r"|comments?|comment-list|commentlist|disqus|respond|reply"
    r"|share|sharing|social|sociable|shariff|addthis|follow"
    r"|related|recommended|more-stories|most-popular|popular|trending|read-?next"
    r"|newsletter|subscribe|signup|promo|sponsored|advert|advertisement|ads?|banner|outbrain"
    r"|taboola|cookie|consent|gdpr|modal|popup|paywall"
    r"|byline|author-?info|author-?bio|tags?|tag-?list|post-?meta|entry-?meta|meta|dateline"
    r"|nextread|read-?more|more-?articles|more-?news|article-?list|news-?list|list-?view"
    r"|teaser-?list|also-?read|see-?also"
    r"|caption|credits?|image-?credit|photo-?credit|author|about-?author|bio|print-only"
    r")(?:$|[\s_-])",
    re.IGNORECASE,
)
# Containers named for the article body.
_BODY_RE: Final = re.compile(
    r"articlebody|article-?body|article__body|article-?content|article__content|article-?text"
    r"|story-?body|story-?content|entry-?content|post-?content|post-?body|post-?entry"
    r"|body-?text|main-?content|content-?body|rich-?text|field-?body|text-?content",
    re.IGNORECASE,
)
_ROLES_CHROME: Final = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "menu", "menubar", "search", "dialog"}
)
# WordPress's post classes name the post's tags and categories ("tag-gaza", "category-news").
_TAXONOMY_RE: Final = re.compile(
    r"(?:^|\s)(?:tag|category|post|format|status|type|author|postid|page-id|term)-\S*"
)
_HIDDEN_CLASS_RE: Final = re.compile(
    r"(?:^|\s)(?:hidden|is-hidden|visually-hidden|d-none|display-none|invisible|sr-only"
    r"|screen-reader-text)(?:$|\s)"
)
_HIDDEN_STYLE_RE: Final = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_SENTENCE_END_RE: Final = re.compile(r"[.!?;:。！？؟۔…\"'”’»)]\s*$")

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
_CHROME_PENALTY: Final = 0.25
_WRAPPER_SHARE: Final = 0.85
_CHROME_AGAINST: Final = 0.25
_GROW_MARGIN: Final = 150.0
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
    # Per element: itself or its nearest ancestor that is page chrome, else -1.
    nearest_chrome: list[int] = field(default_factory=list)


def _collapse(text: str) -> str:
    return " ".join(text.split())


@lru_cache(maxsize=4096)
def _name_flags(name: str) -> tuple[bool, bool]:
    """Whether a class-and-id string names the article body, and whether it names chrome
    (hidden, or a navigation, sharing, comment, related or advertising part).

    Cached: a page repeats its class names, and a site its pages'."""
    return bool(_BODY_RE.search(name)), bool(
        _HIDDEN_CLASS_RE.search(name) or _CHROME_RE.search(_words(name))
    )


def _words(name: str) -> str:
    """Class and id with WordPress's taxonomy classes left out and camelCase split, lower-cased:
    ``js-NewsletterBox tag-gaza`` reads ``js-newsletter-box``."""
    if "-" in name:
        name = _TAXONOMY_RE.sub(" ", name)
    return _CAMEL_RE.sub(r"\1-\2", name).lower()


_CAMEL_RE: Final = re.compile(r"([a-z0-9])([A-Z])")


def _walk(body: LexborNode) -> _Page:
    parent: list[int] = []
    tags: list[str] = []
    names: list[str] = []
    first_block: list[int] = []
    end_block: list[int] = []
    chrome: list[bool] = []
    bodyish: list[bool] = []
    in_article: list[bool] = []
    blocks: list[_Block] = []
    parts: list[str] = []
    link_chars = 0
    in_link = 0

    def flush() -> None:
        nonlocal link_chars
        if parts:
            text = _collapse("".join(parts))
            parts.clear()
            if text:
                owner = open_elements[-1]
                blocks.append(
                    _Block(text, len(text), min(link_chars, len(text)), owner, tags[owner])
                )
        link_chars = 0

    def open_element(node: LexborNode, tag: str) -> None:
        attrs = node.attributes
        classes, ident = attrs.get("class"), attrs.get("id")
        name = f"{classes} {ident}" if classes and ident else classes or ident or ""
        index = len(tags)
        up = open_elements[-1] if open_elements else -1
        parent.append(up)
        tags.append(tag)
        names.append(name)
        first_block.append(len(blocks))
        end_block.append(len(blocks))
        role = attrs.get("role") or ""
        body_name, chrome_name = _name_flags(name) if name else (False, False)
        is_body = (
            body_name
            or tag in ("article", "main")
            or role == "main"
            or attrs.get("itemprop") == "articleBody"
        )
        bodyish.append(is_body)
        in_article.append(is_body or (up >= 0 and in_article[up]))
        style = attrs.get("style")
        chrome.append(
            index > 0
            and (
                (chrome_name and not is_body)
                or (tag in _CHROME_TAGS and not (tag == "header" and in_article[index]))
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
        open_elements.append(index)

    open_elements: list[int] = []
    open_element(body, "body")
    # An explicit stack: hostile pages nest thousands of levels deep.
    stack: list[tuple[LexborNode | None, bool, bool]] = [(body.first_child, True, False)]
    while stack:
        node, is_block, is_link = stack[-1]
        if node is None:
            stack.pop()
            if is_block:
                flush()
                closed = open_elements.pop()
                end_block[closed] = len(blocks)
            elif is_link:
                in_link -= 1
            continue
        stack[-1] = (node.next, is_block, is_link)
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
        child = node.first_child
        if tag in _INLINE:
            if tag == "img":
                continue
            if tag == "a":
                in_link += 1
                stack.append((child, False, True))
            else:
                stack.append((child, False, False))
            continue
        flush()
        open_element(node, tag)
        stack.append((child, True, False))
    return _Page(parent, tags, names, first_block, end_block, chrome, bodyish, blocks)


# --------------------------------------------------------------------------- classification


def _classify(block: _Block) -> None:
    """Good (body-like), short (decided by its neighbours) or bad (a link list's line).

    Only a short block can be a link line (trafilatura's rule: a paragraph past 60 characters
    or another block past 100 stays, whatever its links); the score that chooses the container
    counts linked text against it all the same.
    """
    chars = block.chars
    density = block.link_chars / chars
    block.score = chars * (1 - 2 * density) if density else float(chars)
    limit = 60 if block.tag == "p" else 100
    if (density > 0.8 and chars < limit) or (density > 0.5 and chars < 25):
        block.kind = _BAD
        block.score = -float(chars)
    elif chars >= 100 or (chars >= 40 and _SENTENCE_END_RE.search(block.text)):
        block.kind = _GOOD if density < 0.5 else _SHORT
    else:
        block.kind = _SHORT
        block.score = -min(float(chars), 10.0) * (1 + density)


def _choose(page: _Page) -> int:
    """The block-level element whose text scores highest, chrome inside it counted against it.

    An element's value is its own blocks' scores, plus each child's value, except that a child
    that is chrome counts its whole text against the parent. An element inside chrome is a poor
    candidate; but chrome that holds nearly all the page's text is a wrapper (a page inside a
    ``<form>`` or a ``div.l-outer--nav``), not chrome.
    """
    count = len(page.tags)
    value = [0.0] * count
    against = [0.0] * count
    mass = [0.0] * count
    for block in page.blocks:
        value[block.owner] += block.score
        against[block.owner] -= abs(block.score)
        if block.score > 0:
            mass[block.owner] += block.score
    for i in range(count - 1, 0, -1):
        mass[page.parent[i]] += mass[i]
    chrome = page.chrome
    wrapper = _WRAPPER_SHARE * mass[0]
    for i in range(1, count):
        if chrome[i] and mass[i] > wrapper:
            chrome[i] = False
    for i in range(count - 1, 0, -1):
        up = page.parent[i]
        value[up] += _CHROME_AGAINST * against[i] if chrome[i] else value[i]
        against[up] += against[i]
    nearest = page.nearest_chrome = [-1] * count
    best, best_score = 0, float("-inf")
    for i in range(count):
        if chrome[i]:
            nearest[i] = i
        elif (up := page.parent[i]) >= 0:
            nearest[i] = nearest[up]
        if page.tags[i] in _LEAF_BLOCKS:
            continue
        score = value[i]
        if page.bodyish[i]:
            score *= _BODY_BONUS
        if nearest[i] >= 0:
            score *= _CHROME_PENALTY
        if score > best_score or (score == best_score and value[i] > 0):
            best, best_score = i, score
    # Grow the container while its parent adds more than it costs: a standfirst or a second
    # part of the body in a sibling of the element named for the body.
    while (
        (up := page.parent[best]) > 0
        and nearest[up] < 0
        and value[up] >= value[best] + _GROW_MARGIN
    ):
        best = up
    return best


def _select(page: _Page, container: int, title: str | None) -> list[str]:
    lo, hi = page.first_block[container], page.end_block[container]
    kept: list[_Block] = []
    for block in page.blocks[lo:hi]:
        marked = page.nearest_chrome[block.owner]
        if marked > container:
            continue
        if block.kind == _BAD:
            continue
        kept.append(block)
    out: list[str] = []
    title_key = title.casefold() if title else None
    good = [i for i, block in enumerate(kept) if block.kind == _GOOD]
    if not good:
        # Headings and short lines alone are a list or a form, not an article.
        return []
    first, last = good[0], good[-1]
    for i, block in enumerate(kept):
        if (
            block.kind == _SHORT
            and not first < i < last
            and not (i < first and block.tag in _HEADINGS)
            and not _sentence(block.text)
        ):
            # Before the body's first good paragraph or after its last: a dateline, byline,
            # "Share this" or "Related:" line, unless it reads as a sentence.
            continue
        if title_key and block.text.casefold() == title_key:
            continue
        out.append(block.text)
    return out


_SENTENCE_RE: Final = re.compile(r"[.!?…。！？؟][\"'”’»)]*$")
_MIN_WORDS: Final = 6


def _sentence(text: str) -> bool:
    return bool(_SENTENCE_RE.search(text)) and text.count(" ") + 1 >= _MIN_WORDS


# --------------------------------------------------------------------------- metadata


def _metadata(tree: LexborHTMLParser) -> tuple[dict[str, str], list[dict[str, Any]]]:
    meta: dict[str, str] = {}
    for node in tree.css("meta"):
        attrs = node.attributes
        content = attrs.get("content")
        if not content:
            continue
        for key in ("property", "name", "itemprop", "http-equiv"):
            if name := attrs.get(key):
                meta.setdefault(name.strip().lower(), content.strip())
    articles: list[dict[str, Any]] = []
    for node in tree.css('script[type="application/ld+json"]'):
        try:
            data = json.loads(node.text(deep=True))
        except ValueError:
            continue
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                types = item.get("@type")
                names = {types} if isinstance(types, str) else set(types or ())
                if names & _ARTICLE_TYPES:
                    articles.append(item)
                if "@graph" in item:
                    stack.append(item["@graph"])
    return meta, articles


def _title(tree: LexborHTMLParser, meta: dict[str, str], ld: list[dict[str, Any]]) -> str | None:
    for item in ld:
        if isinstance(headline := item.get("headline"), str) and headline.strip():
            return _collapse(headline)
    if title := meta.get("og:title") or meta.get("twitter:title"):
        return _collapse(title)
    for selector in ("h1", "title"):
        node = tree.css_first(selector)
        if node is not None and (text := _collapse(node.text(deep=True))):
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


def extract_main(html: str, url: str) -> GenericResult:
    """The headline, body paragraphs, published date and language of one page, parsed once."""
    tree = LexborHTMLParser(html)
    meta, ld = _metadata(tree)
    title = _title(tree, meta, ld)
    published = _published(tree, meta, ld)
    language = _language(tree, meta)
    description = meta.get("description") or meta.get("og:description")
    body = tree.body
    if body is None:
        return GenericResult(title, [], published, language, description)
    tree.strip_tags(_STRIP)
    page = _walk(body)
    for block in page.blocks:
        _classify(block)
    container = _choose(page)
    paragraphs = _select(page, container, title)
    label = " ".join(filter(None, (page.tags[container], page.names[container])))
    return GenericResult(title, paragraphs, published, language, description, label)
