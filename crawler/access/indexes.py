"""Indexes written per crawl: a CDXJ per WARC, a Parquet capture index, a WACZ package.

``ArchiveIndexes`` registers an ArchiveRun closer after the WARC writer's, so the last WARC is
closed and stored before it reads them, and its objects are stored before the manifest, which
lists them. The same code rebuilds a crawl's rows from its WARCs when ``reindex`` finds no
Parquet index (crawls made before indexes were written).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler import __version__
from crawler.access import table
from crawler.access.records import (
    CAPTURE_TYPES,
    Location,
    WarcEntry,
    add_linked,
    ensure_tables,
    index_warc,
    linked_records,
)
from crawler.catalog.db import Capture, Catalog, captures
from crawler.crawl.run import ArchiveRun, Backlog

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

Opener = Callable[[str], AbstractContextManager[IO[bytes]]]
WACZ_VERSION = "1.1.1"
_COPY = 1024 * 1024


def cdxj_key(warc_key: str) -> str:
    """``warc/<site>/Y/M/D/<name>.warc.gz`` -> ``index/<site>/Y/M/D/<name>.cdxj``."""
    rest = warc_key.removeprefix("warc/")
    return "index/" + rest.removesuffix(".gz").removesuffix(".warc") + ".cdxj"


def parquet_key(site: str, crawl_id: str) -> str:
    return f"index/{site}/{crawl_id}.parquet"


def wacz_key(site: str, crawl_id: str) -> str:
    return f"wacz/{site}/{crawl_id}.wacz"


def is_warc(key: str) -> bool:
    return key.startswith("warc/") and key.endswith((".warc.gz", ".warc"))


def is_sidecar(key: str) -> bool:
    return key.startswith("text/") and key.endswith(".json")


def catalog_time(warc_date: str) -> str:
    return warc_date[:19] + "Z"


@dataclass
class CrawlIndex:
    """What the WARC files of one crawl hold: CDXJ per file, captures, their other records."""

    cdxj: dict[str, str] = field(default_factory=dict)
    captures: list[WarcEntry] = field(default_factory=list)
    links: dict[str, list[Location]] = field(default_factory=dict)


def index_crawl(warc_keys: Iterable[str], opener: Opener) -> CrawlIndex:
    result = CrawlIndex()
    entries: list[WarcEntry] = []
    for key in warc_keys:
        with opener(key) as stream:
            found, cdxj = index_warc(stream, key)
        result.cdxj[key] = cdxj
        entries.extend(found)
    result.captures = [
        e for e in entries if e.record_type in CAPTURE_TYPES and e.target_uri.startswith("http")
    ]
    result.links = linked_records(entries)
    return result


def crawl_rows(
    index: CrawlIndex,
    site: str,
    crawl_id: str,
    sidecars: Sequence[Mapping[str, Any]],
    read_text: Callable[[str], str | None],
    read_sidecar: Callable[[str], Mapping[str, Any] | None],
    known: Mapping[str, Capture] | None = None,
) -> list[dict[str, Any]]:
    """One row per capture; article fields from the sidecars, texts read by key.

    ``known`` are the catalog's rows of this crawl: they add the article key of captures
    that produced no new text (unchanged, failed) and the text an unchanged capture matched.
    """
    by_record = {
        str(car["warc"]["record_id"]): car for car in sidecars if isinstance(car.get("warc"), dict)
    }
    rows = []
    for entry in index.captures:
        car: Mapping[str, Any] | None = by_record.get(entry.record_id)
        row_known = (known or {}).get(entry.record_id)
        article_key = car.get("article_id") if car else None
        text_key = car.get("text_key") if car else None
        text_digest = car.get("text_digest") if car else None
        version = car.get("version") if car else None
        if row_known is not None:
            article_key = article_key or row_known.article_key
            if text_key is None and row_known.text_key:
                text_key, text_digest = row_known.text_key, row_known.text_digest
                version = row_known.version
                car = read_sidecar(text_key)
        capture = Capture(
            record_id=entry.record_id,
            crawl_id=crawl_id,
            site=site,
            url=entry.target_uri,
            article_key=article_key,
            capture_time=catalog_time(entry.date),
            warc_date=entry.date,
            status=entry.status or 0,
            record_type=entry.record_type,
            payload_digest=entry.payload_digest,
            warc_key=entry.warc_key,
            warc_offset=entry.offset,
            warc_length=entry.length,
            text_digest=text_digest,
            text_key=text_key,
            version=version,
        )
        text = read_text(text_key) if text_key else None
        rows.append(table.row(capture, index.links.get(entry.record_id, ()), car, text))
    return rows


def pages_jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """WACZ pages: the article captures (what a reader of the package wants to open)."""
    lines = [{"format": "json-pages-1.0", "id": "pages", "title": "Articles"}]
    for item in rows:
        if item.get("text_key") and item.get("record_type") == "response":
            lines.append(
                {
                    "id": hashlib.sha1(str(item["record_id"]).encode()).hexdigest()[:24],
                    "url": item["url"],
                    "ts": item["warc_date"],
                    "title": item.get("title") or item["url"],
                }
            )
    return b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)


def write_wacz(
    path: Path,
    warc_keys: Sequence[str],
    opener: Opener,
    cdxj: str,
    pages: bytes,
    title: str,
) -> None:
    """A WACZ 1.1.1 package: WARCs stored as they are, the merged CDXJ, pages, datapackage."""
    resources = []
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for key in warc_keys:
            name = "archive/" + key.rsplit("/", 1)[-1]
            digest = hashlib.sha256()
            size = 0
            info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
            info.compress_type = zipfile.ZIP_STORED  # the spec: WARCs are stored, not deflated
            with opener(key) as src, zf.open(info, "w", force_zip64=True) as out:
                while chunk := src.read(_COPY):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            resources.append((name, size, digest.hexdigest()))
        for name, data in (
            ("indexes/index.cdx", cdxj.encode()),
            ("pages/pages.jsonl", pages),
        ):
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
            resources.append((name, len(data), hashlib.sha256(data).hexdigest()))
        package = {
            "profile": "data-package",
            "resources": [
                {
                    "name": name.rsplit("/", 1)[-1].lower(),
                    "path": name,
                    "hash": f"sha256:{digest}",
                    "bytes": size,
                }
                for name, size, digest in resources
            ],
            "title": title,
            "created": created,
            "wacz_version": WACZ_VERSION,
            "software": f"newsarchive/{__version__}",
        }
        package_bytes = json.dumps(package, indent=2).encode()
        zf.writestr("datapackage.json", package_bytes, compress_type=zipfile.ZIP_DEFLATED)
        digest_doc = {
            "path": "datapackage.json",
            "hash": "sha256:" + hashlib.sha256(package_bytes).hexdigest(),
        }
        zf.writestr(
            "datapackage-digest.json",
            json.dumps(digest_doc, indent=2).encode(),
            compress_type=zipfile.ZIP_DEFLATED,
        )


def merged_cdxj(parts: Iterable[str]) -> str:
    return "".join(sorted(line for part in parts for line in part.splitlines(keepends=True)))


@dataclass(frozen=True, slots=True)
class IndexConfig:
    wacz: bool
    catalog_url: str | None


class ArchiveIndexes:
    """At crawl end: CDXJ beside every WARC, Parquet capture index, WACZ, catalog locations."""

    def __init__(self, config: IndexConfig, crawler: Crawler) -> None:
        self.config = config
        self.crawler = crawler
        self.run: ArchiveRun | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("ARCHIVE_INDEX_ENABLED", True):
            raise NotConfigured("ARCHIVE_INDEX_ENABLED is off")
        catalog_url = None
        if settings.getbool("ARCHIVE_CATALOG_ENABLED"):
            catalog_url = str(settings.get("ARCHIVE_CATALOG_URL") or "")
        ext = cls(IndexConfig(settings.getbool("ARCHIVE_WACZ_ENABLED", True), catalog_url), crawler)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        run = self.crawler.get_extension(ArchiveRun)
        if run is None:
            raise NotConfigured("ArchiveIndexes needs the ArchiveRun extension (the store)")
        self.run = run
        # Connected after WarcCapture (a higher extension order): its closer runs first.
        run.add_closer("indexes", self.close)

    # -- reading what this crawl wrote ------------------------------------------------------------
    def _opener(self) -> Opener:
        run = self.run
        assert run is not None
        pending = set(run.pending)
        sizes = {o.key: o.size for o in run.objects}
        backlog = Backlog(run.spool_dir, run.crawl_id, run.store.uri)

        from contextlib import contextmanager

        from crawler.access.records import open_object

        @contextmanager
        def opener(key: str) -> Iterator[IO[bytes]]:
            if key in pending:
                with backlog.path_of(key).open("rb") as fh:
                    yield fh
            else:
                with open_object(run.store, key, sizes.get(key)) as fh:
                    yield fh

        return opener

    def close(self) -> None:
        run = self.run
        if run is None:
            return
        # Texts and sidecars may still be on their way to a remote store: wait for them.
        run.flush_uploads()
        keys = [o.key for o in run.objects]
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
        wanted = [k for k in keys if is_sidecar(k) or k.endswith(".txt")]
        with ThreadPoolExecutor(8, thread_name_prefix="index-read") as pool:
            fetched = dict(zip(wanted, pool.map(fetch, wanted), strict=True))

        def read(key: str) -> bytes | None:
            return fetched[key] if key in fetched else fetch(key)

        def read_text(key: str) -> str | None:
            data = read(key)
            return None if data is None else data.decode("utf-8")

        def read_sidecar(text_key: str) -> dict[str, Any] | None:
            data = read(text_key[:-4] + ".json")
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
            known = catalog_rows(catalog, run.crawl_id)
        rows = crawl_rows(index, run.site, run.crawl_id, sidecars, read_text, read_sidecar, known)
        for warc, cdxj in index.cdxj.items():
            run.put_bytes(cdxj_key(warc), cdxj.encode())
        run.put_bytes(parquet_key(run.site, run.crawl_id), table.to_parquet(rows))
        if self.config.wacz:
            tmp = run.spool_dir / f".{run.crawl_id}.wacz"
            try:
                write_wacz(
                    tmp,
                    warcs,
                    opener,
                    merged_cdxj(index.cdxj.values()),
                    pages_jsonl(rows),
                    f"{run.site} crawl {run.crawl_id}",
                )
                run.put_file(wacz_key(run.site, run.crawl_id), tmp, move=True)
            finally:
                tmp.unlink(missing_ok=True)
        if catalog is not None:
            ensure_tables(catalog.engine)
            add_linked(catalog.engine, index.links)
            catalog.close()
        logger.info(
            "indexes of %s: %d WARC files, %d captures, %d CDXJ lines",
            run.crawl_id,
            len(warcs),
            len(rows),
            sum(c.count("\n") for c in index.cdxj.values()),
        )

    def _catalog(self) -> Catalog | None:
        if self.config.catalog_url is None:
            return None
        from crawler.crawl.catalog import ArchiveCatalog, default_catalog_url

        ext = self.crawler.get_extension(ArchiveCatalog)
        if ext is not None and ext.catalog is not None:
            ext.flush()  # capture rows still waiting for their batch
        assert self.run is not None
        return Catalog(self.config.catalog_url or default_catalog_url(self.run))


def catalog_rows(catalog: Catalog, crawl_id: str) -> dict[str, Capture]:
    with catalog.engine.connect() as conn:
        found = conn.execute(captures.select().where(captures.c.crawl_id == crawl_id)).mappings()
        return {r["record_id"]: table.capture_of(r) for r in found}
