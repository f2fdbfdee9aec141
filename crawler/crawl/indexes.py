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
    Opener,
    catalog_rows,
    crawl_rows,
    index_crawl,
    merged_cdxj,
    pages_jsonl,
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
            tmp = ledger.spool_dir / f".{ledger.crawl_id}.wacz"
            try:
                write_wacz(
                    tmp,
                    warcs,
                    opener,
                    merged_cdxj(index.cdxj.values()),
                    pages_jsonl(rows),
                    f"{ledger.site} crawl {ledger.crawl_id}",
                )
                ledger.put_file(wacz_key(ledger.site, ledger.crawl_id), tmp, move=True)
            finally:
                tmp.unlink(missing_ok=True)
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

    def _catalog(self) -> Catalog | None:
        if self.config.catalog_url is None:
            return None
        ext = self.catalog
        if ext is not None and ext.catalog is not None:
            ext.flush()  # capture rows still waiting for their batch
        assert self.ledger is not None
        return Catalog(
            self.config.catalog_url
            or default_catalog_url(local_root(self.ledger.store), self.ledger.spool_dir)
        )
