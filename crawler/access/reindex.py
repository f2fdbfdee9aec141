"""Rebuild the catalog from the store alone: manifests, Parquet capture indexes, sidecars.

A crawl whose manifest lists a Parquet capture index is read from it; an older crawl without
one is indexed from its WARC files (read front to back) and sidecars. Running it again adds
nothing: captures already there are skipped, articles are written once more with the same
values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import IO, Any

from sqlalchemy import and_, delete, insert, or_, update

from crawler.access import table
from crawler.access.indexes import crawl_rows, index_crawl
from crawler.access.query import AccessError
from crawler.access.records import add_linked, ensure_tables, open_object
from crawler.access.stories import link_all
from crawler.catalog.db import Catalog, TextFacts, TextRow, articles, captures
from crawler.layout import MANIFEST_PREFIX, is_sidecar, is_warc, parquet_key, sidecar_key
from crawler.store.base import Store, store_identity

# What the catalog needs of a Parquet capture index (not the texts).
_COLUMNS = [n for n in table.SCHEMA.names if n not in ("text",)] + ["published"]


@dataclass
class ReindexSummary:
    crawls: int = 0
    from_parquet: int = 0
    from_warcs: int = 0
    captures: int = 0
    added: int = 0
    articles: int = 0
    texts: int = 0  # text versions added to the search index
    links: int = 0  # links made between articles of different sites (the same story)
    missing: list[str] = field(default_factory=list)  # objects a manifest lists, not stored


def manifests(store: Store) -> list[str]:
    return sorted(k for k in store.list(MANIFEST_PREFIX) if k.endswith(".json"))


def reindex(
    store: Store, catalog: Catalog, progress: Callable[[str], None] | None = None
) -> ReindexSummary:
    keys = manifests(store)
    if not keys:
        raise AccessError(
            f"the store {store.uri} has no manifests/: nothing to reindex "
            "(not a newsarchive store, or no crawl finished yet)"
        )
    ensure_tables(catalog.engine)
    summary = ReindexSummary()
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    stored = set(store.list())  # one listing: what each manifest names must be there
    for key in keys:
        try:
            manifest = json.loads(store.get_bytes(key))
            site, crawl_id = str(manifest["site"]), str(manifest["crawl_id"])
            objects = {str(o["key"]): int(o["size"]) for o in manifest["objects"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise AccessError(f"unreadable manifest {key}: {exc}") from exc
        for name in sorted(set(objects) - stored):
            # Named, not fatal: the rest of the crawl is still worth its rows (`verify`
            # checks sizes and digests too).
            summary.missing.append(f"{name} (listed by {key})")
        objects = {name: size for name, size in objects.items() if name in stored}
        rows = _crawl_rows(store, site, crawl_id, objects, summary)
        summary.crawls += 1
        summary.captures += len(rows)
        summary.added += catalog.add_captures(table.capture_of(r) for r in rows)
        if manifest.get("kind") == "reextract":
            # Texts remade from captures other crawls made: those captures take them.
            _newer_texts(catalog, rows)
        add_linked(catalog.engine, {str(r["record_id"]): table.links_of(r) for r in rows})
        for row in rows:
            if row.get("text_key") and row.get("article_key"):
                _merge_article(latest, row)
        summary.texts += _add_texts(store, catalog, rows)
        if progress is not None:
            progress(f"{key}: {len(rows)} captures")
    with catalog.engine.begin() as conn:
        for (site, article_key), values in sorted(latest.items()):
            conn.execute(
                delete(articles).where(
                    and_(articles.c.site == site, articles.c.article_key == article_key)
                )
            )
            conn.execute(insert(articles).values(**article_values(values)))
    summary.articles = len(latest)
    # The same story across sites: every text not linked yet (or by an older scheme).
    summary.links = link_all(catalog)
    # The rebuilt catalog describes this store (and refuses to serve another).
    if (store_id := store_identity(store, create=False)) is not None:
        catalog.bind_store(store_id, store.uri)
    return summary


def _crawl_rows(
    store: Store, site: str, crawl_id: str, objects: dict[str, int], summary: ReindexSummary
) -> list[dict[str, Any]]:
    pq_key = parquet_key(site, crawl_id)
    if pq_key in objects:
        summary.from_parquet += 1
        return table.read_rows(store.get_bytes(pq_key), _COLUMNS)

    @contextmanager
    def opener(key: str) -> Iterator[IO[bytes]]:
        with open_object(store, key, objects.get(key)) as fh:
            yield fh

    def read_sidecar(text_key: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(store.get_bytes(sidecar_key(text_key))))
        except FileNotFoundError:
            return None

    summary.from_warcs += 1
    warcs = sorted(k for k in objects if is_warc(k))
    sidecars = [json.loads(store.get_bytes(k)) for k in sorted(objects) if is_sidecar(k)]
    return crawl_rows(
        index_crawl(warcs, opener), site, crawl_id, sidecars, lambda _: None, read_sidecar
    )


def _add_texts(store: Store, catalog: Catalog, rows: list[dict[str, Any]]) -> int:
    """Each text version of these rows the catalog's ``texts`` lacks, read from the store
    (text and sidecar): the search index and the related-stories links are built on them."""
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row.get("text_key")
        if key and row.get("article_key"):
            when = table.capture_of(row).capture_time
            if key not in first or when < table.capture_of(first[key]).capture_time:
                first[key] = row
    added = 0
    for key, row in sorted(first.items()):
        if catalog.text_id(key) is not None:
            continue
        try:
            body = store.get_bytes(key).decode("utf-8", "replace")
        except FileNotFoundError:
            continue  # listed but gone: `newsarchive status` and the reports name such losses
        try:
            car: dict[str, Any] = dict(json.loads(store.get_bytes(sidecar_key(key))))
        except (FileNotFoundError, ValueError):
            car = {}
        text_row = TextRow.of(
            str(row["site"]),
            str(row["article_key"]),
            int(row.get("version") or 1),
            str(row["url"]),
            key,
            str(row.get("text_digest") or car.get("text_digest") or ""),
            table.capture_of(row).capture_time,
            car.get("title", row.get("title")),
            body,
            car.get("published") or table.published_of(row),
            replace(
                TextFacts.of_sidecar(car),
                language=car.get("language", row.get("language")),
                crawl_id=car.get("crawl_id", row.get("crawl_id")),
            ),
        )
        added += catalog.add_text(text_row)
    return added


def _newer_texts(catalog: Catalog, rows: list[dict[str, Any]]) -> None:
    """Each capture re-extracted (a ``reextract`` run's rows) gets its newer text version,
    whichever manifest is read first: a capture's text is its latest extraction."""
    c = captures.c
    with catalog.engine.begin() as conn:
        for row in rows:
            if not row.get("text_key") or row.get("version") is None:
                continue
            version = int(row["version"])
            conn.execute(
                update(captures)
                .where(
                    c.record_id == row["record_id"],
                    or_(c.version.is_(None), c.version < version),
                )
                .values(text_key=row["text_key"], text_digest=row["text_digest"], version=version)
            )


def _merge_article(latest: dict[tuple[str, str], dict[str, Any]], row: dict[str, Any]) -> None:
    """The articles row as the crawl keeps it: latest version's text, first and last capture."""
    key = (str(row["site"]), str(row["article_key"]))
    when = table.capture_of(row).capture_time
    version = int(row.get("version") or 1)
    current = latest.get(key)
    if current is None:
        current = latest[key] = {
            "site": key[0],
            "article_key": key[1],
            "first_captured": when,
            "last_checked": when,
            "version": 0,
        }
    current["first_captured"] = min(current["first_captured"], when)
    current["last_checked"] = max(current["last_checked"], when)
    if version > current["version"] or (
        version == current["version"] and when < current.get("_version_time", when + "~")
    ):
        current.update(
            version=version,
            url=row["url"],
            text_digest=row["text_digest"],
            text_key=row["text_key"],
            title=row.get("title"),
            published=table.published_of(row),
        )
        current["_version_time"] = when
    latest[key] = current


def article_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not k.startswith("_")}
