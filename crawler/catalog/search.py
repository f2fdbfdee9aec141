"""Full-text search over every archived text version, in the catalog's own database.

SQLite: an FTS5 index (``texts_fts``, external content over ``texts``, kept by triggers) ranked
by BM25 with the headline weighted; PostgreSQL: a GIN index over ``to_tsvector('simple', …)``
ranked by ``ts_rank_cd``. Both read words as written (case and diacritics folded, no stemming),
so a query finds the same texts on either.

One query language for both: words (all must occur), ``"a phrase"``, ``-word`` or ``-"a
phrase"`` (must not occur), ``OR`` between two terms. Results are one per article (its
best-ranked version) unless every version is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from crawler.catalog.db import SEARCH_VECTOR, Catalog

# Where a snippet's match starts and ends: the caller renders them (ANSI, <mark>, brackets).
MARK_START = "\x02"
MARK_END = "\x03"
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+", re.UNICODE)


class SearchError(ValueError):
    """A query that cannot be run: said in one line."""


@dataclass(frozen=True, slots=True)
class Term:
    words: tuple[str, ...]  # one word, or a phrase
    negated: bool = False
    or_next: bool = False  # joined to the next term by OR


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str
    sites: tuple[str, ...] = ()
    published_from: str | None = None  # YYYY-MM-DD, inclusive
    published_until: str | None = None  # YYYY-MM-DD, exclusive
    captured_from: str | None = None  # catalog times, inclusive
    captured_until: str | None = None  # exclusive
    language: str | None = None  # a prefix: "en" takes "en-GB"
    limit: int = 20
    offset: int = 0
    all_versions: bool = False


@dataclass(frozen=True, slots=True)
class Hit:
    site: str
    article_key: str
    version: int
    url: str
    title: str | None
    text_key: str
    captured: str
    published_date: str | None
    published_at: str | None
    language: str | None
    score: float  # higher is better, comparable only within one answer
    snippet: str  # with MARK_START/MARK_END around matched words


def parse_query(query: str) -> list[Term]:
    """The terms of a query, or a SearchError that says what is wrong with it."""
    terms: list[Term] = []
    pending_or = False
    for match in _TOKEN.finditer(query):
        negated, phrase, bare = match.group(1), match.group(2), match.group(3)
        if bare == "OR":
            if not terms or terms[-1].negated:
                raise SearchError(f"OR needs a term on each side: {query!r}")
            pending_or = True
            continue
        if phrase is not None:
            words = tuple(_WORD.findall(phrase))
            is_negated = bool(negated)
        else:
            assert bare is not None
            is_negated = bare.startswith("-") and len(bare) > 1
            words = tuple(_WORD.findall(bare[1:] if is_negated else bare))
        if not words:
            continue
        if pending_or:
            if is_negated:
                raise SearchError(f"OR cannot join an excluded term: {query!r}")
            terms[-1] = Term(terms[-1].words, False, True)
            pending_or = False
        terms.append(Term(words, is_negated))
    if pending_or:
        raise SearchError(f"OR needs a term on each side: {query!r}")
    if not any(not t.negated for t in terms):
        raise SearchError(
            f"nothing to search for in {query!r}: give at least one word that must occur"
        )
    return terms


def _fts5(terms: Sequence[Term]) -> str:
    """FTS5's query syntax: quoted strings (no operator can hide in a word), NOT after the
    positive terms (FTS5's NOT is binary)."""

    def quoted(term: Term) -> str:
        return '"' + " ".join(w.replace('"', '""') for w in term.words) + '"'

    positive: list[str] = []
    group: list[str] = []
    for term in terms:
        if term.negated:
            continue
        group.append(quoted(term))
        if not term.or_next:
            positive.append(group[0] if len(group) == 1 else "(" + " OR ".join(group) + ")")
            group = []
    if group:
        positive.append("(" + " OR ".join(group) + ")")
    expression = " AND ".join(positive)
    for term in terms:
        if term.negated:
            expression = f"({expression}) NOT {quoted(term)}"
    return expression


def _tsquery(terms: Sequence[Term]) -> tuple[str, dict[str, str]]:
    """PostgreSQL: a tsquery built from bound words (phraseto_tsquery per term), never from
    the user's text as syntax."""
    params: dict[str, str] = {}
    positive: list[str] = []
    group: list[str] = []
    negative: list[str] = []
    for index, term in enumerate(terms):
        name = f"w{index}"
        params[name] = " ".join(term.words)
        part = f"phraseto_tsquery('simple', :{name})"
        if term.negated:
            negative.append(f"!!{part}")
            continue
        group.append(part)
        if not term.or_next:
            positive.append(group[0] if len(group) == 1 else "(" + " || ".join(group) + ")")
            group = []
    if group:
        positive.append("(" + " || ".join(group) + ")")
    return "(" + " && ".join(positive + negative) + ")", params


def _filters(query: SearchQuery, params: dict[str, Any]) -> str:
    where: list[str] = []
    if query.sites:
        names = []
        for index, site in enumerate(query.sites):
            params[f"site{index}"] = site
            names.append(f":site{index}")
        where.append(f"t.site IN ({', '.join(names)})")
    for column, value, op in (
        ("published_date", query.published_from, ">="),
        ("published_date", query.published_until, "<"),
        ("captured", query.captured_from, ">="),
        ("captured", query.captured_until, "<"),
    ):
        if value:
            name = f"p{len(params)}"
            params[name] = value
            where.append(f"t.{column} {op} :{name}")
    if query.language:
        params["lang"] = query.language.lower()
        params["lang_prefix"] = query.language.lower() + "-%"
        where.append("(lower(t.language) = :lang OR lower(t.language) LIKE :lang_prefix)")
    return "".join(f" AND {w}" for w in where)


_COLUMNS = (
    "t.id, t.site, t.article_key, t.version, t.url, t.title, t.text_key, t.captured, "
    "t.published_date, t.published_at, t.language"
)


def search(catalog: Catalog, query: SearchQuery) -> list[Hit]:
    """The best ``limit`` hits after ``offset``, best first."""
    terms = parse_query(query.text)
    if query.limit < 1:
        raise SearchError(f"limit must be at least 1, not {query.limit}")
    with catalog.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            return _search_sqlite(conn, terms, query)
        if conn.dialect.name == "postgresql":
            return _search_postgres(conn, terms, query)
    raise SearchError(f"full-text search needs SQLite or PostgreSQL, not {catalog.url}")


def _search_sqlite(conn: Connection, terms: list[Term], query: SearchQuery) -> list[Hit]:
    params: dict[str, Any] = {"q": _fts5(terms)}
    where = _filters(query, params)
    # bm25 is lower-is-better; the headline weighs three times a body word. CROSS JOIN keeps
    # the index outermost: filters are checked on its matches, not the other way round.
    # Only what ranking and collapsing need, for every match; the rest for the chosen few.
    ranked = (
        "SELECT t.id, t.site, t.article_key, bm25(texts_fts, 3.0, 1.0) AS rank FROM texts_fts "
        f"CROSS JOIN texts t ON t.id = texts_fts.rowid WHERE texts_fts MATCH :q{where} "
        "ORDER BY rank, t.id LIMIT :fetch"
    )
    wanted = query.offset + query.limit
    fetch = wanted if query.all_versions else wanted * 2 + 8
    while True:
        rows = conn.execute(text(ranked), {**params, "fetch": fetch}).mappings().all()
        chosen = _best_per_article(rows, query.all_versions)
        # Enough articles, or every match seen: versions of one article share the pages.
        if len(chosen) >= wanted or len(rows) < fetch:
            break
        fetch *= 4
    chosen = chosen[query.offset : wanted]
    if not chosen:
        return []
    ids = [int(r["id"]) for r in chosen]
    full = {
        int(r["id"]): r
        for r in conn.execute(
            text(f"SELECT {_COLUMNS} FROM texts t WHERE t.id IN ({', '.join(map(str, ids))})")
        ).mappings()
    }
    snippets = {
        int(r[0]): str(r[1])
        for r in conn.execute(
            text(
                "SELECT rowid, snippet(texts_fts, 1, :start, :end, '…', 24) FROM texts_fts "
                f"WHERE texts_fts MATCH :q AND rowid IN ({', '.join(map(str, ids))})"
            ),
            {"q": params["q"], "start": MARK_START, "end": MARK_END},
        )
    }
    return [
        _hit(full[int(r["id"])], -float(r["rank"]), snippets.get(int(r["id"]), "")) for r in chosen
    ]


def _best_per_article(rows: Sequence[Any], all_versions: bool) -> list[Any]:
    """Rows in rank order; one per article (its best-ranked version) unless ``all_versions``."""
    if all_versions:
        return list(rows)
    seen: set[tuple[str, str]] = set()
    chosen = []
    for row in rows:
        key = (row["site"], row["article_key"])
        if key not in seen:
            seen.add(key)
            chosen.append(row)
    return chosen


def _search_postgres(conn: Connection, terms: list[Term], query: SearchQuery) -> list[Hit]:
    tsquery, words = _tsquery(terms)
    params: dict[str, Any] = {**words, "limit": query.limit, "offset": query.offset}
    where = _filters(query, params)
    ranked = (
        f"SELECT {_COLUMNS}, ts_rank_cd(setweight(to_tsvector('simple', coalesce(t.title, '')), "
        f"'A') || to_tsvector('simple', t.body), qq.q) AS rank, qq.q FROM texts t "
        f"CROSS JOIN (SELECT {tsquery} AS q) qq "
        f"WHERE {SEARCH_VECTOR.replace('title', 't.title').replace(' body', ' t.body')} @@ qq.q"
        f"{where}"
    )
    if query.all_versions:
        chosen = ranked
    else:
        chosen = f"SELECT DISTINCT ON (site, article_key) * FROM ({ranked}) r " + (
            "ORDER BY site, article_key, rank DESC, id"
        )
    sql = (
        f"SELECT c.*, ts_headline('simple', b.body, c.q, :options) AS snippet FROM "
        f"(SELECT * FROM ({chosen}) s ORDER BY rank DESC, id LIMIT :limit OFFSET :offset) c "
        "JOIN texts b ON b.id = c.id ORDER BY c.rank DESC, c.id"
    )
    params["options"] = (
        f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=24, MinWords=8, "
        'MaxFragments=2, FragmentDelimiter=" … "'
    )
    rows = conn.execute(text(sql), params).mappings().all()
    return [_hit(r, float(r["rank"]), str(r["snippet"] or "")) for r in rows]


def _hit(row: Any, score: float, snippet: str) -> Hit:
    return Hit(
        site=row["site"],
        article_key=row["article_key"],
        version=int(row["version"]),
        url=row["url"],
        title=row["title"],
        text_key=row["text_key"],
        captured=row["captured"],
        published_date=row["published_date"],
        published_at=row["published_at"],
        language=row["language"],
        score=score,
        snippet=" ".join(snippet.split()),
    )
