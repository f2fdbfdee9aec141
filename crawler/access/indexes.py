"""Indexes written per crawl: a CDXJ per WARC, a Parquet capture index, a WACZ package.

Pure functions of the crawl's WARC files and sidecars; the crawl calls them at its end
(``crawler/crawl/indexes.py``, after the last WARC is stored and before the manifest, which
lists what they write). The same code rebuilds a crawl's rows from its WARCs when ``reindex``
finds no Parquet index (crawls made before indexes were written).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from crawler import __version__
from crawler.access import table
from crawler.access.records import (
    CAPTURE_TYPES,
    Location,
    WarcEntry,
    index_warc,
    linked_records,
)
from crawler.catalog.db import Capture, Catalog, captures

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

Opener = Callable[[str], AbstractContextManager[IO[bytes]]]
WACZ_VERSION = "1.1.1"
_COPY = 1024 * 1024


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


def catalog_rows(catalog: Catalog, crawl_id: str) -> dict[str, Capture]:
    with catalog.engine.connect() as conn:
        found = conn.execute(captures.select().where(captures.c.crawl_id == crawl_id)).mappings()
        return {r["record_id"]: table.capture_of(r) for r in found}
