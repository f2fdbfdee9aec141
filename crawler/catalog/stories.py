"""The catalog's side of "the same story across sources": each text's story keys (MinHash LSH
bands and proper-name keys), the candidates a new text shares them with, and the links decided
between texts of different sites. Deciding is not done here (access/stories.py does it with
crawler.text.similar): this module only stores and finds, in SQL, so any number of processes
on one catalog find each other's texts without an index in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from crawler.catalog.db import (
    PARAM_MARKS,
    Catalog,
    StoryKeys,
    put_story_keys,
    text_bands,
    text_links,
    text_names,
    texts,
)

# Candidates by shared names, at most this many per text (the most names shared first): a
# name every text of a period has ("Islamic Republic") must not make every text a candidate.
NAME_CANDIDATES = 200


@dataclass(frozen=True, slots=True)
class StoryText:
    """A text as linking needs it."""

    id: int
    site: str
    article_key: str
    version: int
    url: str
    title: str | None
    body: str
    published_at: str | None
    published_date: str | None


@dataclass(frozen=True, slots=True)
class StoryLink:
    """A link from one article to another: the other text, how, and how strongly."""

    other: StoryText
    kind: str
    score: float


_STORY_COLUMNS = (
    texts.c.id,
    texts.c.site,
    texts.c.article_key,
    texts.c.version,
    texts.c.url,
    texts.c.title,
    texts.c.body,
    texts.c.published_at,
    texts.c.published_date,
)


def _story(row: object) -> StoryText:
    return StoryText(*row)  # type: ignore[misc]


def story_text(catalog: Catalog, text_id: int) -> StoryText | None:
    with catalog.engine.connect() as conn:
        row = conn.execute(select(*_STORY_COLUMNS).where(texts.c.id == text_id)).first()
    return None if row is None else _story(row)


_STORY_OF_KEY = select(*_STORY_COLUMNS).where(texts.c.text_key == bindparam("text_key"))


def story_text_of_key(catalog: Catalog, text_key: str) -> StoryText | None:
    """The text version stored under this text key (one query, where ``text_id`` and
    :func:`story_text` take two)."""
    with catalog.engine.connect() as conn:
        row = conn.execute(_STORY_OF_KEY, {"text_key": text_key}).first()
    return None if row is None else _story(row)


def unkeyed(catalog: Catalog, scheme: str) -> list[int]:
    """Texts whose story keys are missing or of another scheme, oldest first."""
    with catalog.engine.connect() as conn:
        found = conn.execute(
            select(texts.c.id)
            .where(or_(texts.c.story_keys.is_(None), texts.c.story_keys != scheme))
            .order_by(texts.c.id)
        )
        return [int(i) for i in found.scalars()]


def latest_scheme(catalog: Catalog, site: str) -> str | None:
    """The story-key scheme of the site's latest text that has keys (None: none has): a
    cheap look, at a crawl's start, for keys older than the code's (one query, no scan of
    every text)."""
    query = (
        select(texts.c.story_keys)
        .where(texts.c.site == site, texts.c.story_keys.is_not(None))
        .order_by(texts.c.id.desc())
        .limit(1)
    )
    with catalog.engine.connect() as conn:
        found = conn.execute(query).scalar()
    return None if found is None else str(found)


def forget_keys(catalog: Catalog, text_key: str) -> None:
    """Mark a text unkeyed (its keys stay until replaced): ``reindex`` links it again."""
    with catalog.engine.begin() as conn:
        conn.execute(update(texts).where(texts.c.text_key == text_key).values(story_keys=None))


def put_keys(
    catalog: Catalog,
    text: StoryText,
    bands: Sequence[tuple[int, int]],
    names: Sequence[int],
    scheme: str,
) -> None:
    """A text's keys, in one transaction, before its candidates are looked for: of two texts
    recorded at once by two processes, the second to look finds the first's keys."""
    with catalog.engine.begin() as conn:
        put_story_keys(conn, text.id, text.site, StoryKeys(bands, names, scheme))
        conn.execute(update(texts).where(texts.c.id == text.id).values(story_keys=scheme))


# The candidate queries, built once: a query built at each text cost more CPU (a bound
# parameter per hash of its IN list, its cache key) than the database took to answer it.
# hash IN (...): one index search per band (SQLite plans a row-value IN as a scan); the band is
# checked in Python.
_BAND_MATCHES = select(text_bands.c.text_id, text_bands.c.band, text_bands.c.hash).where(
    text_bands.c.hash.in_(bindparam("hashes", expanding=True)),
    text_bands.c.site != bindparam("site"),
)
# The same query as the driver's own SQL, made once per count of hashes: SQLAlchemy expanded
# the 64 values of the IN list at each text, a third of linking's CPU.
_BAND_SQL: dict[tuple[str, int], str] = {}


def _band_matches(conn: Connection, hashes: list[int], site: str) -> Iterable[Sequence[Any]]:
    mark = PARAM_MARKS.get(str(conn.dialect.paramstyle))
    if mark is None:  # another driver's parameter style: SQLAlchemy's statement
        return conn.execute(_BAND_MATCHES, {"hashes": hashes, "site": site})
    sql = _BAND_SQL.get((mark, len(hashes)))
    if sql is None:
        sql = (
            "SELECT text_id, band, hash FROM text_bands WHERE hash IN "
            f"({', '.join([mark] * len(hashes))}) AND site != {mark}"
        )
        _BAND_SQL[(mark, len(hashes))] = sql
    return conn.exec_driver_sql(sql, (*hashes, site))


_shared = func.count().label("shared")
_NAME_MATCHES = (
    select(text_names.c.text_id, _shared)
    .join(texts, texts.c.id == text_names.c.text_id)
    .where(
        text_names.c.key.in_(bindparam("keys", expanding=True)),
        text_names.c.site != bindparam("site"),
    )
)
_NAME_MATCHES_DATED = _NAME_MATCHES.where(
    or_(
        texts.c.published_date.is_(None),
        texts.c.published_date.between(bindparam("low"), bindparam("high")),
    )
)
_NAME_MATCHES, _NAME_MATCHES_DATED = (
    query.group_by(text_names.c.text_id)
    .having(_shared >= bindparam("min_names"))
    .order_by(_shared.desc(), text_names.c.text_id)
    .limit(NAME_CANDIDATES)
    for query in (_NAME_MATCHES, _NAME_MATCHES_DATED)
)
_STORIES = select(*_STORY_COLUMNS).where(texts.c.id.in_(bindparam("ids", expanding=True)))


def candidates(
    catalog: Catalog,
    text: StoryText,
    bands: Sequence[tuple[int, int]],
    names: Sequence[int],
    *,
    min_names: int,
    days: float,
) -> list[StoryText]:
    """Texts of other sites that share a band with ``text`` (copies), or at least
    ``min_names`` names and a publication day within ``days`` (rewrites of one event; texts
    without a date are taken too)."""
    ids: set[int] = set()
    with catalog.engine.connect() as conn:
        if bands:
            wanted = set(bands)
            found = _band_matches(conn, sorted({h for _b, h in bands}), text.site)
            ids.update(int(r[0]) for r in found if (r[1], r[2]) in wanted)
        if len(set(names)) >= min_names:
            params: dict[str, object] = {
                "keys": sorted(set(names)),
                "site": text.site,
                "min_names": min_names,
            }
            query = _NAME_MATCHES
            if text.published_date:
                day = date.fromisoformat(text.published_date)
                params["low"] = (day - timedelta(days=days + 1)).isoformat()
                params["high"] = (day + timedelta(days=days + 1)).isoformat()
                query = _NAME_MATCHES_DATED
            ids.update(int(r[0]) for r in conn.execute(query, params))
        ids.discard(text.id)
        if not ids:
            return []
        rows = conn.execute(_STORIES, {"ids": sorted(ids)})
        return [_story(r) for r in rows]


def put_link(catalog: Catalog, a: int, b: int, kind: str, score: float) -> bool:
    """Record a link once (two processes may decide the same pair): False if it was there."""
    first, second = min(a, b), max(a, b)
    try:
        with catalog.engine.begin() as conn:
            conn.execute(insert(text_links).values(a_id=first, b_id=second, kind=kind, score=score))
    except IntegrityError:
        return False
    return True


def article_links(catalog: Catalog, site: str, article_key: str) -> list[StoryLink]:
    """The links of every text version of an article to other articles, strongest first, one
    per other article (its strongest link)."""
    with catalog.engine.connect() as conn:
        own = [
            int(i)
            for i in conn.execute(
                select(texts.c.id).where(texts.c.site == site, texts.c.article_key == article_key)
            ).scalars()
        ]
        if not own:
            return []
        found = conn.execute(
            select(text_links).where(or_(text_links.c.a_id.in_(own), text_links.c.b_id.in_(own)))
        ).all()
        others = {(r.b_id if r.a_id in own else r.a_id): r for r in found}
        rows = conn.execute(select(*_STORY_COLUMNS).where(texts.c.id.in_(sorted(others))))
        stories = {s.id: s for s in map(_story, rows)}
    best: dict[tuple[str, str], StoryLink] = {}
    for other_id, link in others.items():
        other = stories[other_id]
        item = StoryLink(other, str(link.kind), float(link.score))
        key = (other.site, other.article_key)
        if key not in best or _stronger(item, best[key]):
            best[key] = item
    return sorted(best.values(), key=lambda x: (_RANK[x.kind], -x.score, x.other.site))


_RANK = {"republication": 0, "near-duplicate": 1, "same-event": 2}


def _stronger(a: StoryLink, b: StoryLink) -> bool:
    return (_RANK.get(a.kind, 9), -a.score) < (_RANK.get(b.kind, 9), -b.score)


def story_ids(catalog: Catalog) -> dict[tuple[str, str], str]:
    """Each linked article's story: the articles joined by links, transitively, named by the
    smallest ``site:key`` among them (stable while the story gains no member before it).
    Articles linked to none are in no story."""
    with catalog.engine.connect() as conn:
        owners = {
            int(r.id): (str(r.site), str(r.article_key))
            for r in conn.execute(select(texts.c.id, texts.c.site, texts.c.article_key))
        }
        links = conn.execute(select(text_links.c.a_id, text_links.c.b_id)).all()
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(item: tuple[str, str]) -> tuple[str, str]:
        while parent.get(item, item) != item:
            parent[item] = parent.get(parent[item], parent[item])
            item = parent[item]
        return item

    for a, b in links:
        if a not in owners or b not in owners:
            continue
        for item in (owners[a], owners[b]):
            parent.setdefault(item, item)
        ra, rb = root(owners[a]), root(owners[b])
        if ra != rb:  # the smaller root stays: each story's root is its smallest member
            parent[max(ra, rb)] = min(ra, rb)
    return {item: ":".join(root(item)) for item in parent}


def forget_links(catalog: Catalog, ids: Iterable[int]) -> None:
    """Drop the links of these texts (before they are decided again)."""
    chosen = sorted(set(ids))
    if not chosen:
        return
    with catalog.engine.begin() as conn:
        conn.execute(
            text_links.delete().where(
                or_(text_links.c.a_id.in_(chosen), text_links.c.b_id.in_(chosen))
            )
        )
