"""The capture table: one row per capture with its article's metadata and text (Parquet).

Times are typed, so DuckDB and pandas need no casts: ``capture_time``, ``published_at`` and
``modified`` are ``TIMESTAMP WITH TIME ZONE`` (UTC); ``published_date`` is a ``DATE``, the
publisher's calendar day (a date-only value stays that day); ``published_text`` and
``published_precision`` keep what the page wrote. ``story_id`` names the story an article
belongs to across sites (exports fill it; a crawl's own table leaves it empty).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from crawler.access.records import Location
from crawler.catalog.db import Capture, iso, published_fields

_LOCATION = pa.struct(
    [
        ("record_type", pa.string()),
        ("record_id", pa.string()),
        ("warc_key", pa.string()),
        ("offset", pa.int64()),
        ("length", pa.int64()),
    ]
)
SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("site", pa.string()),
        ("article_key", pa.string()),
        ("crawl_id", pa.string()),
        ("capture_time", pa.timestamp("s", tz="UTC")),
        ("warc_date", pa.string()),
        ("record_type", pa.string()),
        ("status", pa.int32()),
        ("payload_digest", pa.string()),
        ("record_id", pa.string()),
        ("warc_key", pa.string()),
        ("warc_offset", pa.int64()),
        ("warc_length", pa.int64()),
        ("records", pa.list_(_LOCATION)),
        ("version", pa.int32()),
        ("text_key", pa.string()),
        ("text_digest", pa.string()),
        ("canonical_url", pa.string()),
        ("title", pa.string()),
        ("published_at", pa.timestamp("s", tz="UTC")),
        ("published_date", pa.date32()),
        ("published_text", pa.string()),
        ("published_precision", pa.string()),
        ("modified", pa.timestamp("s", tz="UTC")),
        ("authors", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),
        ("section", pa.string()),
        ("language", pa.string()),
        ("story_id", pa.string()),
        ("text", pa.string()),
    ]
)
_CAPTURE_FIELDS = tuple(Capture.__dataclass_fields__)


def row(
    capture: Capture,
    links: Sequence[Location] = (),
    sidecar: Mapping[str, Any] | None = None,
    text: str | None = None,
    story_id: str | None = None,
) -> dict[str, Any]:
    """One table row: the capture, where its other records lie, its article and text."""
    car = sidecar or {}
    out = {name: value for name, value in asdict(capture).items() if name in SCHEMA.names}
    out["capture_time"] = _moment(capture.capture_time)
    out["records"] = [asdict(loc) for loc in links]
    for name in ("canonical_url", "title", "section", "language"):
        out[name] = car.get(name)
    published = published_fields(car.get("published"), car.get("published_text"))
    out["published_at"] = _moment(published["published_at"])
    day = published["published_date"]
    out["published_date"] = date.fromisoformat(day) if day else None
    out["published_text"] = published["published_text"]
    out["published_precision"] = published["published_precision"]
    out["modified"] = _moment(car.get("modified"))
    out["authors"] = list(car.get("authors") or [])
    out["tags"] = list(car.get("tags") or [])
    out["story_id"] = story_id
    out["text"] = text
    return out


def _moment(value: Any) -> datetime | None:
    """An ISO time (any offset) as an aware UTC datetime; None for none or nonsense."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def to_parquet(rows: Iterable[Mapping[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(list(rows), schema=SCHEMA), buffer, compression="zstd")
    return buffer.getvalue()


class ParquetSink:
    """Rows written to a Parquet file in batches (an export of any size in bounded memory)."""

    def __init__(self, path: Any, batch: int = 2000) -> None:
        self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self.batch = batch
        self.rows: list[Mapping[str, Any]] = []

    def add(self, item: Mapping[str, Any]) -> None:
        self.rows.append(item)
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=SCHEMA))
            self.rows = []
            # What the row group took goes back to the system, not kept for the next one
            # (a crawl's end writes this table in a process that has more to do).
            pa.default_memory_pool().release_unused()

    def close(self) -> None:
        self.flush()
        self.writer.close()


def read_rows(data: bytes, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The rows of a capture table; ``columns`` that an older table lacks are left out."""
    source = pq.ParquetFile(io.BytesIO(data))
    have = set(source.schema_arrow.names)
    found = source.read(columns=[c for c in columns if c in have] if columns else None)
    rows: list[dict[str, Any]] = found.to_pylist()
    return rows


def capture_of(item: Mapping[str, Any] | Any) -> Capture:
    """The catalog's capture from a table row (a typed or, from older tables, a string time)
    or a catalog row."""
    values: dict[str, Any] = {name: item.get(name) for name in _CAPTURE_FIELDS}
    when = values["capture_time"]
    if isinstance(when, datetime):
        values["capture_time"] = iso(when)
    return Capture(**values)


def published_of(item: Mapping[str, Any]) -> str | None:
    """A row's publication date as the sidecars write it (ISO), from a typed or an older
    table (whose ``published`` column was that string)."""
    if item.get("published"):
        return str(item["published"])
    moment = item.get("published_at")
    if isinstance(moment, datetime):
        return moment.isoformat()
    day = item.get("published_date")
    return day.isoformat() if isinstance(day, date) else None


def links_of(item: Mapping[str, Any]) -> list[Location]:
    return [Location(**loc) for loc in item.get("records") or []]
