"""Crawl-end indexes: CDXJ beside every WARC, the Parquet capture index, the WACZ package."""

from __future__ import annotations

import ctypes
import json
import logging
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from crawler.access.records import add_linked, ensure_tables, open_object
from crawler.access.scratch import RecordTable, SortedLines, merge_files
from crawler.catalog.db import Catalog
from crawler.crawl.catalog import ArchiveCatalog
from crawler.crawl.config import IndexConfig
from crawler.crawl.ledger import CrawlLedger
from crawler.layout import (
    cdxj_key,
    default_catalog_url,
    is_sidecar,
    is_warc,
    parquet_key,
    sidecar_key,
    wacz_key,
)
from crawler.store.base import local_root
from crawler.store.spool import Backlog

if TYPE_CHECKING:
    from crawler.access.indexes import CopiedOriginals, Opener
    from crawler.access.records import WarcEntry

Reader = Callable[
    [Callable[[str | None], bytes | None], Iterable[str | None]], Iterator[bytes | None]
]
# The capture table and the package (pyarrow, ~50 MB with numpy) are imported when the crawl
# ends, inside the methods below: a crawl's memory while it crawls does not carry them.

logger = logging.getLogger(__name__)
# The originals' WARC: its name in the package's CDXJ (archive/<crawl-id>-originals.warc.gz),
# never a key of the store.
_ORIGINALS_NAME = "originals/{crawl_id}-originals.warc.gz"


class ArchiveIndexes:
    """At crawl end: CDXJ beside every WARC, Parquet capture index, WACZ, catalog locations.

    Built in bounded memory whatever the crawl's size: the crawl's objects are read back from
    its object list on disk, the records of its WARCs go into a scratch SQLite file in the
    crawl's scratch folder (``RecordTable``), each WARC's CDXJ is sorted in runs on disk, and
    the capture table, the package's pages and the catalog's record locations are made
    ``config.batch`` captures at a time (a Parquet row group each). A crawl killed meanwhile
    leaves the folder to the next crawl on the spool, which removes it.
    """

    def __repr__(self) -> str:  # Scrapy logs a failing signal handler by its repr: no address
        return "<ArchiveIndexes>"

    def __init__(
        self, config: IndexConfig, ledger: CrawlLedger, catalog: ArchiveCatalog | None = None
    ) -> None:
        self.config = config
        self.ledger: CrawlLedger | None = ledger
        self.catalog = catalog

    # -- reading what this crawl wrote ------------------------------------------------------------
    def _opener(self, records: RecordTable) -> Opener:
        ledger = self.ledger
        assert ledger is not None
        backlog = Backlog(ledger.spool_dir, ledger.crawl_id, ledger.store.uri)

        @contextmanager
        def opener(key: str) -> Iterator[IO[bytes]]:
            size, pending = records.object_size(key)
            if pending:
                with backlog.path_of(key).open("rb") as fh:
                    yield fh
            else:
                with open_object(ledger.store, key, size) as fh:
                    yield fh

        return opener

    def close(self) -> None:
        ledger = self.ledger
        if ledger is None:
            return
        _release_freed_memory()
        # Texts and sidecars may still be on their way to a remote store: wait for them.
        ledger.flush_uploads()
        warcs = sorted(o.key for o in ledger.objects if is_warc(o.key))
        if not warcs:
            return
        scratch = ledger.scratch_dir() / "index"
        scratch.mkdir(parents=True, exist_ok=True)
        records = RecordTable(scratch / "records.sqlite")
        try:
            self._build(warcs, records, scratch)
        finally:
            records.close()
            shutil.rmtree(scratch, ignore_errors=True)

    def _build(self, warcs: list[str], records: RecordTable, scratch: Path) -> None:
        ledger = self.ledger
        assert ledger is not None
        objects = ledger.objects.entries()
        while part := list(islice(objects, 5000)):
            records.add_objects((o.key, o.size, pending) for o, pending in part)
        opener = self._opener(records)

        def fetch(key: str | None) -> bytes | None:
            if not key:
                return None
            try:
                with opener(key) as fh:
                    return fh.read()
            except FileNotFoundError:
                return None

        catalog = self._catalog()
        try:
            self._write(warcs, records, scratch, opener, fetch, catalog)
        finally:
            if catalog is not None:
                catalog.close()

    def _write(
        self,
        warcs: list[str],
        records: RecordTable,
        scratch: Path,
        opener: Opener,
        fetch: Callable[[str | None], bytes | None],
        catalog: Catalog | None,
    ) -> None:
        from crawler.access import table
        from crawler.access.indexes import CopiedOriginals, PageLines, index_crawl_into

        ledger = self.ledger
        assert ledger is not None
        batch = self.config.batch
        # A remote store's texts and sidecars are read many at once: one at a time, its round
        # trips (two per article) would dominate the crawl's close. A local store's are read
        # in this thread: reader threads would each keep a heap of their own (+20 MB).
        with ExitStack() as stack:
            pool: Reader = map
            if ledger.remote:
                pool = stack.enter_context(
                    ThreadPoolExecutor(8, thread_name_prefix="index-read")
                ).map
            sidecars = (o.key for o in ledger.objects if is_sidecar(o.key))
            while part := list(islice(sidecars, batch)):
                records.add_sidecars(
                    (key, json.loads(data))
                    for key, data in zip(part, pool(fetch, part), strict=True)
                    if data is not None
                )
            cdxj: list[Path] = []

            def store_cdxj(warc: str, path: Path) -> None:
                ledger.put_file(cdxj_key(warc), path, move=False)
                cdxj.append(path)

            lines = index_crawl_into(warcs, opener, records, scratch, batch, store_cdxj)
            records.link()
            originals = CopiedOriginals()
            originals_tmp = scratch / f"{ledger.crawl_id}-originals.warc.gz"
            if self.config.wacz:
                originals = self._originals(records, originals_tmp, catalog, scratch)
                if originals.cdxj is not None:
                    cdxj.append(originals.cdxj)
            parquet = scratch / "captures.parquet"
            sink = table.ParquetSink(parquet, batch)
            pages = PageLines(scratch)
            try:
                rows = revisits = 0
                for entries in records.captures(batch):
                    revisits += sum(1 for e in entries if e.record_type == "revisit")
                    found = self._rows(entries, records, catalog, pool, fetch)
                    for item in found:
                        sink.add(item)
                    sink.flush()  # a row group per batch
                    pages.add(found, records.mimes_for)
                    rows += len(found)
                sink.close()
                ledger.put_file(parquet_key(ledger.site, ledger.crawl_id), parquet, move=True)
                if self.config.wacz:
                    self._write_wacz(
                        warcs,
                        opener,
                        cdxj,
                        pages.finish(),
                        originals,
                        originals_tmp,
                        records,
                        revisits,
                    )
            finally:
                pages.close()
        if catalog is not None:
            ensure_tables(catalog.engine)
            for links in records.all_links(batch):
                add_linked(catalog.engine, links)
        logger.info(
            "indexes of %s: %d WARC files, %d captures, %d CDXJ lines",
            ledger.crawl_id,
            len(warcs),
            rows,
            lines,
        )

    def _rows(
        self,
        entries: list[WarcEntry],
        records: RecordTable,
        catalog: Catalog | None,
        pool: Reader,
        fetch: Callable[[str | None], bytes | None],
    ) -> list[dict[str, Any]]:
        """The capture table's rows of a batch of captures, with their texts."""
        from crawler.access import table
        from crawler.access.indexes import capture_fields, known_rows

        ledger = self.ledger
        assert ledger is not None
        ids = [e.record_id for e in entries]
        cars = records.sidecars_for(ids)
        known = known_rows(catalog, ledger.crawl_id, ids) if catalog is not None else {}
        links = records.links_for(ids)
        # The sidecars of the texts that unchanged captures matched, read many at once.
        matched = sorted(
            {
                str(row.text_key)
                for i, row in known.items()
                if row.text_key and not (cars.get(i) or {}).get("text_key")
            }
        )
        other = dict(zip(matched, pool(fetch, map(sidecar_key, matched)), strict=True))

        def read_sidecar(text_key: str) -> dict[str, Any] | None:
            data = other.get(text_key)
            return None if data is None else dict(json.loads(data))

        parts = [
            capture_fields(
                e,
                ledger.site,
                ledger.crawl_id,
                cars.get(e.record_id),
                known.get(e.record_id),
                read_sidecar,
            )
            for e in entries
        ]
        keys = [capture.text_key for capture, _car in parts]
        texts = pool(fetch, keys)
        return [
            table.row(
                capture,
                links.get(capture.record_id, ()),
                car,
                None if text is None else text.decode("utf-8"),
            )
            for (capture, car), text in zip(parts, texts, strict=True)
        ]

    def _originals(
        self, records: RecordTable, path: Path, catalog: Catalog | None, scratch: Path
    ) -> CopiedOriginals:
        """The originals of the crawl's revisits, copied from earlier crawls' WARCs."""
        from crawler.access.indexes import copy_originals, original_locations

        ledger = self.ledger
        assert ledger is not None
        lines = SortedLines(scratch, self.config.batch)
        try:
            originals = copy_originals(
                path,
                _ORIGINALS_NAME.format(crawl_id=ledger.crawl_id),
                records,
                (lambda ids: original_locations(catalog, ids))
                if catalog is not None
                else (lambda ids: {}),
                ledger.store.get_range,
                lines,
                self.config.batch,
            )
            if originals.copied:
                originals.cdxj = scratch / "originals.cdxj"
                with originals.cdxj.open("w", encoding="utf-8", newline="") as out:
                    lines.write_to(out)
        finally:
            lines.close()
        return originals

    def _write_wacz(
        self,
        warcs: list[str],
        opener: Opener,
        cdxj: list[Path],
        pages: Path,
        originals: CopiedOriginals,
        originals_tmp: Path,
        records: RecordTable,
        revisits: int,
    ) -> None:
        """The crawl's package, with the originals of its revisits (see write_originals)."""
        from crawler.access.indexes import write_wacz

        ledger = self.ledger
        assert ledger is not None
        scratch = originals_tmp.parent
        tmp = scratch / f"{ledger.crawl_id}.wacz"
        # Only a name in the package (archive/<crawl-id>-originals.warc.gz), never stored.
        originals_key = _ORIGINALS_NAME.format(crawl_id=ledger.crawl_id)
        keys = list(warcs)
        sizes = {key: size for key in warcs if (size := records.object_size(key)[0]) is not None}
        if originals.copied:
            keys.append(originals_key)
            sizes[originals_key] = originals_tmp.stat().st_size

        @contextmanager
        def package_opener(key: str) -> Iterator[IO[bytes]]:
            if key == originals_key:
                with originals_tmp.open("rb") as fh:
                    yield fh
            else:
                with opener(key) as fh:
                    yield fh

        index = scratch / "index.cdx"
        with index.open("w", encoding="utf-8", newline="") as out:
            merge_files(cdxj, out)
        write_wacz(
            tmp,
            keys,
            package_opener,
            index,
            pages,
            f"{ledger.site} crawl {ledger.crawl_id}",
            sizes,
        )
        ledger.put_file(wacz_key(ledger.site, ledger.crawl_id), tmp, move=True)
        logger.info(
            "WACZ of %s: %d revisits, %d originals copied from earlier crawls, %d not found",
            ledger.crawl_id,
            revisits,
            originals.copied,
            originals.missing,
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
            or default_catalog_url(
                local_root(self.ledger.store), self.ledger.spool_dir, self.ledger.store.uri
            )
        )


def _release_freed_memory() -> None:
    """Give the heap the crawl freed (bodies, parse trees) back to the system before the
    indexes are built: glibc keeps it for reuse, and the crawl end's peak then sits on top of
    it (20-25 MiB lower after a 2,000-page page-mode crawl). Only where glibc's
    ``malloc_trim`` exists."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to give back this way
        return
    trim(0)
