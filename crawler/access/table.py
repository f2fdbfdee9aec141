"""The capture table: one row per capture with its article's metadata and text (Parquet)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from crawler.access.records import Location
from crawler.catalog.db import Capture

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
        ("capture_time", pa.string()),
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
        ("published", pa.string()),
        ("modified", pa.string()),
        ("authors", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),
        ("section", pa.string()),
        ("language", pa.string()),
        ("text", pa.string()),
    ]
)
_CAPTURE_FIELDS = tuple(Capture.__dataclass_fields__)


def row(
    capture: Capture,
    links: Sequence[Location] = (),
    sidecar: Mapping[str, Any] | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    """One table row: the capture, where its other records lie, its article and text."""
    car = sidecar or {}
    out = {name: value for name, value in asdict(capture).items() if name in SCHEMA.names}
    out["records"] = [asdict(loc) for loc in links]
    for name in ("canonical_url", "title", "published", "modified", "section", "language"):
        out[name] = car.get(name)
    out["authors"] = list(car.get("authors") or [])
    out["tags"] = list(car.get("tags") or [])
    out["text"] = text
    return out


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

    def close(self) -> None:
        self.flush()
        self.writer.close()


def read_rows(data: bytes, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    found = pq.read_table(io.BytesIO(data), columns=list(columns) if columns else None)
    rows: list[dict[str, Any]] = found.to_pylist()
    return rows


def capture_of(item: Mapping[str, Any] | Any) -> Capture:
    values: dict[str, Any] = {name: item.get(name) for name in _CAPTURE_FIELDS}
    return Capture(**values)


def links_of(item: Mapping[str, Any]) -> list[Location]:
    return [Location(**loc) for loc in item.get("records") or []]
