"""Byline authors and tags as a page shows them in its body, for the generic path when its meta
tags and JSON-LD name none (issue 23): pure functions of one lexbor tree (selectolax).

- Authors: ``rel=author`` links, ``itemprop=author`` elements (their ``itemprop=name``), then
  short elements named for a byline (``byline``, ``author``, ``writer`` … in their class or
  id), then a "By …" line just after the headline. A byline's text is cut into names
  (:func:`author_names`): no "By", no dates or times, no "Staff", desks, e-mail addresses or
  URLs; several authors split on "and", "&" and commas.
- Tags: ``rel=tag`` links (not WordPress's ``rel="category tag"``), then the links of a
  container named for the article's tags (``tags``, ``post-tags``, ``tags-links``,
  ``news-tags``, ``keywords`` …; never a site-wide tag cloud), then ``<meta name=
  news_keywords>`` and ``<meta name=keywords>`` (``article:tag`` and JSON-LD keywords are
  read by ``crawler.text.extract`` before these are asked).

Nothing inside ``nav``, ``aside`` or a form, nor in a comment, counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from selectolax.lexbor import LexborHTMLParser, LexborNode

# A byline is short: a longer element is an author's biography or a whole box.
_BYLINE_CHARS: Final = 160
_NAME_CHARS: Final = 60
_NAME_WORDS: Final = 5
_TAG_CHARS: Final = 60
_TAGS_PER_LIST: Final = 30  # more links than this in one container: a cloud, not the article's
_AFTER_HEADLINE: Final = 6  # elements looked at after the headline (and after its parents)

_SPACE_RE: Final = re.compile(r"\s+")
# A class or id token naming a byline, and the ones that name something else about an author.
_AUTHOR_TOKEN_RE: Final = re.compile(
    r"byline|by-line|author|writer|reporter|contributor|creator|journalist", re.IGNORECASE
)
_NOT_BYLINE_RE: Final = re.compile(
    r"bio|box|desc|about|social|count|avatar|photo|image|img|thumb|follow|comment|form|warning"
    r"|more|other|related|list|page|archive|widget|share",
    re.IGNORECASE,
)
_TAG_TOKEN_RE: Final = re.compile(
    r"^(?:[a-z0-9]+[-_])*(?:tags|tag[-_]?list|tag[-_]?links|tagged|keywords|topics)"
    r"(?:[-_](?:list|links|box|wrap|wrapper|container|area|section|block))?$",
    re.IGNORECASE,
)
_LEFT_OUT: Final = frozenset({"nav", "aside", "form", "menu", "dialog", "template"})

# "By", "Written by", "Author:", at the start of a byline.
_BY_RE: Final = re.compile(
    r"^(?:(?:written|reported|posted|compiled|edited|story|text|words|report|published)\s+)?"
    r"by\b[\s:]*|^(?:authors?|writers?|reporters?|byline|von|par|por)\s*[:\-–—]\s*"
    r"|^(?:par|por|von|door)\s+(?=\S)",
    re.IGNORECASE,
)
_BY_LINE_RE: Final = re.compile(r"^(?:(?:written|reported)\s+)?by\s+\S", re.IGNORECASE)
# Segments of a byline: names on one side, dates, places and roles on the other.
_SEGMENTS_RE: Final = re.compile(r"\s*(?:[|•·/\n()\[\]]|\s[-–—]\s|\s[-–—]$|^[-–—]\s)\s*")
_AUTHORS_SPLIT_RE: Final = re.compile(
    r"\s*(?:,|;|&|\b(?:and|und|et|y|with|avec|mit)\b|،)\s*", re.IGNORECASE
)
# A nickname or initials in brackets inside a name: "Richard (R.J.) Eskow".
_INITIALS_RE: Final = re.compile(r"\s*\([^()\s]{1,6}\)(?=\s)")
# A date or a time after a name ("GILLIAN MOHNEY March 11, 2015 3:46 PM", "Lucas Nolan22 Dec"):
# cut off, with the rest of the part.
_DATE_TAIL_RE: Final = re.compile(
    r"\s*(?:\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d"
    r"|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|\d).*$",
    re.IGNORECASE,
)
# A word that makes a part a role or a title, not a name ("Senior Staff Technologist",
# "Games Editor"); what follows it in its segment is an affiliation ("ACLU Speech, Privacy").
_ROLE_WORDS: Final = frozenset(
    {"staff", "staffer", "writer", "reporter", "correspondent", "editor", "contributor"}
    | {"columnist", "technologist", "analyst", "producer", "desk", "newsroom", "bureau"}
    | {"ma", "md", "phd", "ms", "mba", "rn", "bsc", "msc", "dphil", "jr.", "sr."}
)
_EMAIL_OR_URL_RE: Final = re.compile(r"@|https?:|www\.|\.(?:com|org|net|ir|ye)\b", re.IGNORECASE)
# Words that are no one's name: roles, desks, and what sits beside a byline.
_NOT_NAMES: Final = frozenset(
    {
        "staff",
        "staffer",
        "writer",
        "writers",
        "reporter",
        "reporters",
        "correspondent",
        "correspondents",
        "editor",
        "editors",
        "editorial",
        "contributor",
        "contributors",
        "author",
        "authors",
        "admin",
        "administrator",
        "desk",
        "news",
        "newsroom",
        "web",
        "online",
        "digital",
        "team",
        "bureau",
        "agencies",
        "agency",
        "wire",
        "wires",
        "senior",
        "special",
        "guest",
        "by",
        "the",
        "our",
        "updated",
        "published",
        "posted",
        "modified",
        "comments",
        "comment",
        "share",
        "follow",
        "read",
        "min",
        "ago",
        "today",
        "yesterday",
        "more",
        "view",
        "all",
        "posts",
        "articles",
        "email",
        "twitter",
        "facebook",
    }
)
_PARTICLES: Final = frozenset(
    {"de", "da", "di", "du", "del", "della", "van", "von", "der", "den", "la", "le", "al", "el"}
    | {"bin", "ibn", "ul", "ud", "y", "e", "do", "dos", "das", "ter", "zu", "af", "bint"}
)
_PREFIXES: Final = ("al-", "el-", "ad-", "as-", "an-", "ar-", "at-", "az-")
_TAG_WORDS: Final = frozenset({"tags", "tag", "tagged", "topics", "keywords", "related topics"})


def _text(node: LexborNode) -> str:
    return _SPACE_RE.sub(" ", node.text(deep=True, separator=" ")).strip()


# A long element's text is collapsed from its first this many times the limit characters
# only, to see that it is too long: collapsing all of an article's container took a
# millisecond (a match per space), several times a page.
_HEAD_FACTOR: Final = 4


def _short_text(node: LexborNode, limit: int) -> str:
    """:func:`_text` of ``node`` when it is at most ``limit`` characters, else "". Exact: the
    collapsed text of a prefix of the element's text is never longer than that of the whole,
    so a prefix already past the limit tells."""
    raw = node.text(deep=True, separator=" ")
    cut = _HEAD_FACTOR * limit
    if len(raw) > cut and len(_SPACE_RE.sub(" ", raw[:cut]).strip()) > limit:
        return ""
    text = _SPACE_RE.sub(" ", raw).strip()
    return text if len(text) <= limit else ""


def _left_out(node: LexborNode) -> bool:
    """Inside navigation, a sidebar or a form, or in a comment: not the article's."""
    current: LexborNode | None = node
    while current is not None and current.tag not in ("body", "html"):
        if current.tag in _LEFT_OUT:
            return True
        attrs = current.attributes
        names = f"{attrs.get('class') or ''} {attrs.get('id') or ''}".lower()
        if "comment" in names:
            return True
        current = current.parent
    return False


def _role(part: str) -> bool:
    return any(w.lower().strip(".,") in _ROLE_WORDS for w in part.split())


def _name(part: str) -> str | None:
    """``part`` as a person's (or an agency's) name, or None when it is not one."""
    part = _DATE_TAIL_RE.sub("", part).strip(" \t.,;:!?'\"()[]{}<>«»“”‘’*#–—-")
    if not part or len(part) > _NAME_CHARS or any(c.isdigit() for c in part):
        return None
    if _EMAIL_OR_URL_RE.search(part):
        return None
    words = part.split()
    if len(words) > _NAME_WORDS:
        return None
    if all(w.lower().strip(".") in _NOT_NAMES for w in words):
        return None  # "Staff", "News Desk", "Staff Writer", "Updated"
    if words[0].lower() in _NOT_NAMES and words[0].lower() in ("by", "the", "our", "updated"):
        return None
    if not any(c.isalpha() for c in part):
        return None
    # A Latin name is capitalised, its particles aside ("Ursula von der Leyen", "al-Houthi").
    for word in words:
        first = word[0]
        lower_latin = first.isalpha() and first.isascii() and first.islower()
        if lower_latin and word.lower() not in _PARTICLES and not word.startswith(_PREFIXES):
            return None
    return part


def author_names(byline: str) -> list[str]:
    """The names in a byline's text: "By Jane Doe and John Roe | June 2, 2025" -> ["Jane
    Doe", "John Roe"]; "By Staff Writer" -> []."""
    names: list[str] = []
    seen: set[str] = set()
    byline = _INITIALS_RE.sub("", _SPACE_RE.sub(" ", byline).strip())
    for segment in _SEGMENTS_RE.split(byline):
        segment = _BY_RE.sub("", segment.strip())
        for part in _AUTHORS_SPLIT_RE.split(segment):
            if _role(part):
                break  # a role, then its affiliation: no more names in this segment
            name = _name(_BY_RE.sub("", part.strip()))
            if name is not None and name.casefold() not in seen:
                seen.add(name.casefold())
                names.append(name)
    return names


# Every element any of the readings below may want, found in one walk of the tree.
_QUERY: Final = ", ".join(
    (
        "a[rel]",
        "span[rel]",
        "[itemprop~=author]",
        "[class*=byline]",
        "[class*=by-line]",
        "[class*=Byline]",
        "[class*=Author]",
        "[class*=author]",
        "[class*=writer]",
        "[class*=reporter]",
        "[class*=contributor]",
        "[id*=byline]",
        "[id*=author]",
        "[class*=tag]",
        "[id*=tag]",
        "[class*=keyword]",
        "[class*=topic]",
        "meta[name][content]",
        "h1",
    )
)
_AUTHOR_WORDS: Final = ("byline", "by-line", "author", "writer", "reporter", "contributor")
_TAG_LIST_WORDS: Final = ("tag", "keyword", "topic")
_NEVER_BYLINE: Final = frozenset({"meta", "link", "body", "html", "article", "main", "section"})
_NEVER_TAG_LIST: Final = frozenset({"body", "html", "article", "a", "meta", "link"})


@dataclass(slots=True)
class _Marked:
    """The elements of one walk, by what they may be."""

    rel_author: list[LexborNode] = field(default_factory=list)
    rel_tag: list[LexborNode] = field(default_factory=list)
    itemprop_author: list[LexborNode] = field(default_factory=list)
    named_byline: list[LexborNode] = field(default_factory=list)
    tag_list: list[LexborNode] = field(default_factory=list)
    h1: list[LexborNode] = field(default_factory=list)
    keywords: dict[str, str] = field(default_factory=dict)


def _mark(tree: LexborHTMLParser) -> _Marked:
    marked = _Marked()
    for node in tree.css(_QUERY):
        tag = node.tag
        attrs = node.attributes
        if tag == "meta":
            name = (attrs.get("name") or "").strip().lower()
            if name in ("news_keywords", "keywords") and name not in marked.keywords:
                marked.keywords[name] = attrs.get("content") or ""
            continue
        if tag == "h1":
            marked.h1.append(node)
        if rel := (attrs.get("rel") or "").lower().split():
            if "author" in rel:
                marked.rel_author.append(node)
            if "tag" in rel and "category" not in rel and tag == "a":
                marked.rel_tag.append(node)
        if "author" in (attrs.get("itemprop") or "").lower().split() and tag != "link":
            marked.itemprop_author.append(node)
        names = f"{attrs.get('class') or ''} {attrs.get('id') or ''}".lower()
        if tag not in _NEVER_BYLINE and any(w in names for w in _AUTHOR_WORDS):
            marked.named_byline.append(node)
        if tag not in _NEVER_TAG_LIST and any(w in names for w in _TAG_LIST_WORDS):
            marked.tag_list.append(node)
    return marked


def _rel_authors(marked: _Marked) -> list[str]:
    names: list[str] = []
    for node in marked.rel_author:
        if not _left_out(node) and (text := _short_text(node, _BYLINE_CHARS)):
            names += author_names(text)
    return names


def _itemprop_names(marked: _Marked) -> list[str]:
    names: list[str] = []
    for node in marked.itemprop_author:
        if _left_out(node):
            continue
        named = node.css_first("[itemprop~=name]")
        if named is not None:
            text = named.attributes.get("content") or _short_text(named, _BYLINE_CHARS)
        else:
            text = node.attributes.get("content") or _short_text(node, _BYLINE_CHARS)
        if text and len(text) <= _BYLINE_CHARS:
            names += author_names(text)
    return names


def _named_bylines(marked: _Marked) -> list[str]:
    """Short elements whose class or id names a byline or an author, first in page order."""
    for node in marked.named_byline:
        attrs = node.attributes
        tokens = f"{attrs.get('class') or ''} {attrs.get('id') or ''}".split()
        named = [t for t in tokens if _AUTHOR_TOKEN_RE.search(t)]
        if not named or all(_NOT_BYLINE_RE.search(t) for t in named):
            continue
        text = _short_text(node, _BYLINE_CHARS)
        if not text or _left_out(node):
            continue
        if names := author_names(text):
            return names
    return []


def _after_headline(marked: _Marked) -> list[str]:
    """A "By …" line among the elements just after the headline (or after its parents)."""
    anchor = next((node for node in marked.h1 if _text(node)), None)
    for _level in range(3):
        if anchor is None:
            break
        sibling = anchor.next
        seen = 0
        while sibling is not None and seen < _AFTER_HEADLINE:
            if sibling.tag != "-text":
                seen += 1
                text = _short_text(sibling, _BYLINE_CHARS)
                by_line = text and _BY_LINE_RE.match(text)
                if by_line and (names := author_names(text)):
                    return names
            sibling = sibling.next
        anchor = anchor.parent
    return []


def _tag(text: str) -> str | None:
    text = _SPACE_RE.sub(" ", text).strip().lstrip("#").strip(" ,;:|")
    if not text or len(text) > _TAG_CHARS or text.lower().rstrip(":") in _TAG_WORDS:
        return None
    return text


def _rel_tags(marked: _Marked) -> list[str]:
    return [tag for node in marked.rel_tag if not _left_out(node) if (tag := _tag(_text(node)))]


def _tag_lists(marked: _Marked) -> list[str]:
    tags: list[str] = []
    for node in marked.tag_list:
        attrs = node.attributes
        tokens = f"{attrs.get('class') or ''} {attrs.get('id') or ''}".split()
        if not any(_TAG_TOKEN_RE.match(t) for t in tokens) or _left_out(node):
            continue
        links = node.css("a")
        if len(links) > _TAGS_PER_LIST:
            continue
        tags += filter(None, (_tag(_text(link)) for link in links))
    return tags


def _keywords(marked: _Marked) -> list[str]:
    for name in ("news_keywords", "keywords"):
        values = marked.keywords.get(name, "").split(",")
        if tags := [tag for value in values if (tag := _tag(value))]:
            return tags
    return []


def _first_of(marked: _Marked, *finders: Callable[[_Marked], list[str]]) -> list[str]:
    for finder in finders:
        if found := finder(marked):
            return _unique(found)
    return []


def byline(tree: LexborHTMLParser) -> tuple[list[str], list[str]]:
    """The article's authors and tags as its page shows them (see the module's docstring),
    from one walk of ``tree``: ``([], [])`` when it shows none."""
    marked = _mark(tree)
    authors = _first_of(marked, _rel_authors, _itemprop_names, _named_bylines, _after_headline)
    return authors, _first_of(marked, _rel_tags, _tag_lists, _keywords)


def byline_authors(tree: LexborHTMLParser) -> list[str]:
    """The authors of :func:`byline`."""
    return _first_of(_mark(tree), _rel_authors, _itemprop_names, _named_bylines, _after_headline)


def page_tags(tree: LexborHTMLParser) -> list[str]:
    """The tags of :func:`byline`."""
    return _first_of(_mark(tree), _rel_tags, _tag_lists, _keywords)


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        if value.casefold() not in seen:
            seen.add(value.casefold())
            out.append(value)
    return out
