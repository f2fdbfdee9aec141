"""Crawl-end indexes: CDXJ beside every WARC, the Parquet capture index, the WACZ package."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from crawler.access import table
from crawler.access.indexes import (
    CrawlIndex,
    Opener,
    catalog_rows,
    crawl_rows,
    index_crawl,
    merged_cdxj,
    original_locations,
    page_mimes,
    pages_jsonl,
    write_originals,
    write_wacz,
)
from crawler.access.records import add_linked, ensure_tables, open_object
from crawler.catalog.db import Capture, Catalog
from crawler.crawl.catalog import ArchiveCatalog
from crawler.crawl.config import IndexConfig
from crawler.crawl.ledger import CrawlLedger
from crawler.layout import (
    cdxj_key,
    default_catalog_url,
    is_sidecar,
    is_text,
    is_warc,
    parquet_key,
    sidecar_key,
    wacz_key,
)
from crawler.store.base import local_root
from crawler.store.spool import Backlog

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


class ArchiveIndexes:
    """At crawl end: CDXJ beside every WARC, Parquet capture index, WACZ, catalog locations."""

    def __repr__(self) -> str:  # Scrapy logs a failing signal handler by its repr: no address
        return "<ArchiveIndexes>"

    def __init__(
        self, config: IndexConfig, ledger: CrawlLedger, catalog: ArchiveCatalog | None = None
    ) -> None:
        self.config = config
        self.ledger: CrawlLedger | None = ledger
        self.catalog = catalog

    # -- reading what this crawl wrote ------------------------------------------------------------
    def _opener(self) -> Opener:
        ledger = self.ledger
        assert ledger is not None
        pending = set(ledger.pending)
        sizes = {o.key: o.size for o in ledger.objects}
        backlog = Backlog(ledger.spool_dir, ledger.crawl_id, ledger.store.uri)

        @contextmanager
        def opener(key: str) -> Iterator[IO[bytes]]:
            if key in pending:
                with backlog.path_of(key).open("rb") as fh:
                    yield fh
            else:
                with open_object(ledger.store, key, sizes.get(key)) as fh:
                    yield fh

        return opener

    def close(self) -> None:
        ledger = self.ledger
        if ledger is None:
            return
        # Texts and sidecars may still be on their way to a remote store: wait for them.
        ledger.flush_uploads()
        keys = [o.key for o in ledger.objects]
        warcs = sorted(k for k in keys if is_warc(k))
        if not warcs:
            return
        opener = self._opener()

        def fetch(key: str) -> bytes | None:
            try:
                with opener(key) as fh:
                    return fh.read()
            except FileNotFoundError:
                return None

        # This crawl's texts and sidecars, read at once: one at a time, a remote store's
        # round trips (two per article) would dominate the crawl's close.
        wanted = [k for k in keys if is_sidecar(k) or is_text(k)]
        with ThreadPoolExecutor(8, thread_name_prefix="index-read") as pool:
            fetched = dict(zip(wanted, pool.map(fetch, wanted), strict=True))

        def read(key: str) -> bytes | None:
            return fetched[key] if key in fetched else fetch(key)

        def read_text(key: str) -> str | None:
            data = read(key)
            return None if data is None else data.decode("utf-8")

        def read_sidecar(text_key: str) -> dict[str, Any] | None:
            data = read(sidecar_key(text_key))
            return None if data is None else dict(json.loads(data))

        sidecars = []
        for key in sorted(k for k in keys if is_sidecar(k)):
            data = read(key)
            if data is not None:
                sidecars.append(json.loads(data))
        index = index_crawl(warcs, opener)
        catalog = self._catalog()
        known: dict[str, Capture] = {}
        if catalog is not None:
            known = catalog_rows(catalog, ledger.crawl_id)
        rows = crawl_rows(
            index, ledger.site, ledger.crawl_id, sidecars, read_text, read_sidecar, known
        )
        for warc, cdxj in index.cdxj.items():
            ledger.put_bytes(cdxj_key(warc), cdxj.encode())
        ledger.put_bytes(parquet_key(ledger.site, ledger.crawl_id), table.to_parquet(rows))
        if self.config.wacz:
            self._write_wacz(warcs, opener, index, rows, catalog)
        if catalog is not None:
            ensure_tables(catalog.engine)
            add_linked(catalog.engine, index.links)
            catalog.close()
        logger.info(
            "indexes of %s: %d WARC files, %d captures, %d CDXJ lines",
            ledger.crawl_id,
            len(warcs),
            len(rows),
            sum(c.count("\n") for c in index.cdxj.values()),
        )

    def _write_wacz(
        self,
        warcs: list[str],
        opener: Opener,
        index: CrawlIndex,
        rows: list[dict[str, Any]],
        catalog: Catalog | None,
    ) -> None:
        """The crawl's package, with the originals of its revisits (see write_originals)."""
        ledger = self.ledger
        assert ledger is not None
        tmp = ledger.spool_dir / f".{ledger.crawl_id}.wacz"
        originals_tmp = ledger.spool_dir / f".{ledger.crawl_id}-originals.warc.gz"
        # Only a name in the package (archive/<crawl-id>-originals.warc.gz), never stored.
        originals_key = f"originals/{ledger.crawl_id}-originals.warc.gz"
        store = ledger.store
        try:
            originals = write_originals(
                originals_tmp,
                originals_key,
                index.captures,
                (lambda ids: original_locations(catalog, ids))
                if catalog is not None
                else (lambda ids: {}),
                store.get_range,
            )
            keys = list(warcs)
            cdxj = [*index.cdxj.values()]
            sizes = {o.key: o.size for o in ledger.objects}
            if originals.copied:
                keys.append(originals_key)
                cdxj.append(originals.cdxj)
                sizes[originals_key] = originals_tmp.stat().st_size

            @contextmanager
            def package_opener(key: str) -> Iterator[IO[bytes]]:
                if key == originals_key:
                    with originals_tmp.open("rb") as fh:
                        yield fh
                else:
                    with opener(key) as fh:
                        yield fh

            write_wacz(
                tmp,
                keys,
                package_opener,
                merged_cdxj(cdxj),
                pages_jsonl(rows, page_mimes([*index.captures, *originals.entries])),
                f"{ledger.site} crawl {ledger.crawl_id}",
                sizes,
            )
            ledger.put_file(wacz_key(ledger.site, ledger.crawl_id), tmp, move=True)
            revisits = sum(1 for e in index.captures if e.record_type == "revisit")
            logger.info(
                "WACZ of %s: %d revisits, %d originals copied from earlier crawls, %d not found",
                ledger.crawl_id,
                revisits,
                originals.copied,
                len(originals.missing),
            )
        finally:
            tmp.unlink(missing_ok=True)
            originals_tmp.unlink(missing_ok=True)

    def _catalog(self) -> Catalog | None:
        if self.config.catalog_url is None:
            return None
        ext = self.catalog
        if ext is not None and ext.catalog is not None:
            ext.flush()  # capture rows still waiting for their batch
        assert self.ledger is not None
        return Catalog(
            self.config.catalog_url
            or default_catalog_url(
                local_root(self.ledger.store), self.ledger.spool_dir, self.ledger.store.uri
            )
        )
