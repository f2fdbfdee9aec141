"""What researchers ask of the archive: the captures of an article, one capture's text, page,
sidecar and WARC records. The catalog says where things are; the store is read by key and range.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select

from crawler.access.records import (
    Location,
    ensure_tables,
    extract_warcinfo,
    linked_for,
    payload_of,
    read_records,
)
from crawler.catalog.db import Capture, Catalog, captures, iso
from crawler.constants import CHALLENGE_RECORD
from crawler.layout import sidecar_key
from crawler.store.base import Store

# url -> (site, article key) pairs: the spiders' own URL rules, given by the command line.
Resolver = Callable[[str], list[tuple[str, str]]]
_DATE = re.compile(
    r"^(\d{4})(?:-?(\d{2})(?:-?(\d{2})(?:[T ]?(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.\d+)?)?)?)?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_CHARSET = re.compile(r"charset=[\"']?([A-Za-z0-9._:-]+)", re.I)


class AccessError(Exception):
    """A researcher's request that cannot be answered: one line, said as it is."""


def parse_time(value: str, *, end: bool = False) -> str:
    """ "2025", "2025-06", "2025-06-30", "2025-06-30T12:00Z", "20250630120000" as catalog time.

    ``end``: the end of the period named (exclusive), so ``--to 2025-06`` takes all of June.
    Times without an offset are UTC.
    """
    match = _DATE.match(value.strip())
    if not match:
        raise AccessError(f"unparseable date {value!r} (use e.g. 2025-06, 2025-06-30T12:00Z)")
    parts = [int(p) if p else None for p in match.groups()[:6]]
    given = sum(p is not None for p in parts)
    fields = [p if p is not None else d for p, d in zip(parts, (0, 1, 1, 0, 0, 0), strict=True)]
    try:
        moment = datetime(*fields, tzinfo=UTC)  # type: ignore[arg-type,misc]
    except ValueError as exc:
        raise AccessError(f"unparseable date {value!r}: {exc}") from exc
    offset = match.group(7)
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    if end:
        if given == 1:
            moment = moment.replace(year=moment.year + 1)
        elif given == 2:
            moment = (moment.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            step = (timedelta(days=1), timedelta(hours=1), timedelta(minutes=1))
            moment += step[given - 3] if given < 6 else timedelta(seconds=1)
    return iso(moment)


@dataclass(frozen=True, slots=True)
class Target:
    """What a reference names: an article (site and key) or, for other pages, one URL."""

    site: str | None
    article_key: str | None
    url: str | None

    def describe(self) -> str:
        if self.article_key is not None:
            return f"{self.site}:{self.article_key}"
        return str(self.url)


def text_conditions(site: str, since: str | None, until: str | None) -> list[Any]:
    """Which captures an export takes: the site's captures with text, in the time range."""
    c = captures.c
    conditions: list[Any] = [c.site == site, c.text_key.is_not(None)]
    if since:
        conditions.append(c.capture_time >= since)
    if until:
        conditions.append(c.capture_time < until)
    return conditions


class Archive:
    """The catalog and the store together, read-only."""

    def __init__(self, store: Store, catalog: Catalog, resolver: Resolver | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.resolver = resolver
        ensure_tables(catalog.engine)

    # -- finding -----------------------------------------------------------------------------
    def check_not_empty(self) -> None:
        with self.catalog.engine.connect() as conn:
            if conn.execute(select(captures.c.id).limit(1)).first() is None:
                raise AccessError(
                    f"the catalog {self.catalog.url} holds no capture: run `newsarchive reindex "
                    f"--store {self.store.uri}` to build it from the store"
                )

    def _exists(self, *conditions: Any) -> bool:
        with self.catalog.engine.connect() as conn:
            return (
                conn.execute(select(captures.c.id).where(and_(*conditions)).limit(1)).first()
                is not None
            )

    def target(self, ref: str) -> Target:
        """An article or URL from a URL (any host alias or slug), ``site:key`` or a bare key."""
        ref = ref.strip()
        c = captures.c
        if "://" not in ref:
            site, sep, key = ref.partition(":")
            if sep and self._exists(c.site == site, c.article_key == key):
                return Target(site, key, None)
            with self.catalog.engine.connect() as conn:
                sites = (
                    conn.execute(select(c.site).where(c.article_key == ref).distinct())
                    .scalars()
                    .all()
                )
            if len(sites) == 1:
                return Target(sites[0], ref, None)
            if len(sites) > 1:
                raise AccessError(
                    f"{ref!r} is an article key of several sites ({', '.join(sorted(sites))}): "
                    f"say which, e.g. {sites[0]}:{ref}"
                )
            if "/" in ref and "." in ref.split("/", 1)[0]:
                ref = "https://" + ref
        if "://" in ref:
            with self.catalog.engine.connect() as conn:
                row = conn.execute(
                    select(c.site, c.article_key)
                    .where(c.url == ref)
                    .order_by(c.article_key.is_(None))
                    .limit(1)
                ).first()
            # An article captured at this very URL needs no site rule (nor the spiders).
            if row is not None and row.article_key is not None:
                return Target(row.site, row.article_key, None)
            for site, key in self.resolver(ref) if self.resolver else []:
                if self._exists(c.site == site, c.article_key == key):
                    return Target(site, key, None)
            if row is not None:
                return Target(row.site, None, ref)
        raise AccessError(f"no capture of {ref!r} in the catalog {self.catalog.url}")

    def snapshots(
        self, ref: str, since: str | None = None, until: str | None = None
    ) -> tuple[Target, list[Capture]]:
        target = self.target(ref)
        found = list(
            self.catalog.captures(
                site=target.site,
                article_key=target.article_key,
                url=target.url,
                since=since,
                until=until,
            )
        )
        if target.url is not None:
            found = [f for f in found if f.article_key is None]
        return target, found

    def closest(self, ref: str, at: str | None, *, need_text: bool = False) -> Capture:
        """The capture nearest ``at`` (the latest without it); with text when asked.

        A challenge page is never the page's capture: ``snapshots`` lists it, marked.
        """
        target, found = self.snapshots(ref)
        found = [f for f in found if f.record_type != CHALLENGE_RECORD]
        if need_text:
            found = [f for f in found if f.text_key]
            if not found:
                raise AccessError(f"{target.describe()} was captured, but no text was archived")
        if not found:
            raise AccessError(f"no capture of {target.describe()}")
        if at is None:
            return found[-1]
        moment = datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ")

        def distance(item: Capture) -> float:
            when = datetime.strptime(item.capture_time, "%Y-%m-%dT%H:%M:%SZ")
            return abs((when - moment).total_seconds())

        return min(found, key=distance)

    def by_record_id(self, record_id: str) -> Capture | None:
        for item in self._select(captures.c.record_id == record_id):
            return item
        return None

    def _select(self, *conditions: Any) -> Iterator[Capture]:
        from crawler.access.table import capture_of

        with self.catalog.engine.connect() as conn:
            for r in conn.execute(select(captures).where(and_(*conditions))).mappings():
                yield capture_of(r)

    # -- reading -------------------------------------------------------------------------------
    def text(self, capture: Capture) -> bytes:
        if not capture.text_key:
            raise AccessError(f"no text was archived for the capture {capture.record_id}")
        return self._get(capture.text_key)

    def sidecar(self, capture: Capture) -> dict[str, Any]:
        if not capture.text_key:
            raise AccessError(f"no sidecar was archived for the capture {capture.record_id}")
        data: dict[str, Any] = json.loads(self._get(sidecar_key(capture.text_key)))
        return data

    def _get(self, key: str) -> bytes:
        try:
            return self.store.get_bytes(key)
        except FileNotFoundError as exc:
            raise AccessError(
                f"{key} is in the catalog but not in the store {self.store.uri}"
            ) from exc

    def locations(self, capture: Capture, linked: list[Location] | None = None) -> list[Location]:
        """The capture's response (or revisit) first, then its other records in file order."""
        own = Location(
            capture.record_type,
            capture.record_id,
            capture.warc_key,
            capture.warc_offset,
            capture.warc_length,
        )
        if linked is None:
            linked = linked_for(self.catalog.engine, capture.record_id)
        return [own, *linked]

    def warc(self, capture: Capture, *, query: str | None = None) -> bytes:
        """The capture's records as a WARC: a warcinfo naming the store, the crawl and the
        query first (``query``, else the record id), then the records' bytes as stored."""
        if query is None:
            query = f"record {capture.record_id}"
        info = extract_warcinfo(
            "capture.warc.gz",
            store_uri=self.store.uri,
            crawl_ids=[capture.crawl_id],
            query=query,
            description=f"the capture of {capture.url} at {capture.capture_time} (site "
            f"{capture.site}): its {capture.record_type} record, then its request, metadata "
            "and conversion records, copied unchanged from the store",
        )
        return info + read_records(self.store, self.locations(capture))

    def html(self, capture: Capture) -> tuple[str, str]:
        """The archived payload, content coding removed and decoded: (text, content type)."""
        source = capture
        if capture.record_type == "revisit" and capture.payload_digest:
            earlier = self.catalog.payload_capture(capture.url, capture.payload_digest)
            if earlier is None:
                raise AccessError(f"the revisit {capture.record_id} refers to no known response")
            source = earlier
        data = self.store.get_range(source.warc_key, source.warc_offset, source.warc_length)
        record, payload = payload_of(data)
        content_type = record.http_headers.get_header("Content-Type") or "text/html"
        match = _CHARSET.search(content_type)
        charset = match.group(1) if match else "utf-8"
        try:
            return payload.decode(charset, errors="replace"), content_type
        except LookupError:
            return payload.decode("utf-8", errors="replace"), content_type

    # -- browsing ------------------------------------------------------------------------------
    def sites(self) -> list[tuple[str, int]]:
        c = captures.c
        query = (
            select(c.site, func.count(func.distinct(c.article_key)))
            .where(c.text_key.is_not(None))
            .group_by(c.site)
            .order_by(c.site)
        )
        with self.catalog.engine.connect() as conn:
            return [(r[0], int(r[1])) for r in conn.execute(query)]

    def days(self, site: str) -> list[tuple[str, int]]:
        c = captures.c
        day = func.substr(c.capture_time, 1, 10)
        query = (
            select(day, func.count())
            .where(and_(c.site == site, c.text_key.is_not(None)))
            .group_by(day)
            .order_by(day.desc())
        )
        with self.catalog.engine.connect() as conn:
            return [(r[0], int(r[1])) for r in conn.execute(query)]

    def articles_on(self, site: str, day: str) -> list[Capture]:
        c = captures.c
        return list(
            self._select(
                c.site == site,
                c.text_key.is_not(None),
                c.capture_time >= day,
                c.capture_time < day + "T99",
            )
        )

    def article_rows(
        self, site: str, since: str | None, until: str | None, *, versions_only: bool = True
    ) -> Iterator[Capture]:
        """Captures of one site with text, in time order; each text version once."""
        c = captures.c
        conditions = text_conditions(site, since, until)
        seen: set[str] = set()
        from crawler.access.table import capture_of

        with self.catalog.engine.connect() as conn:
            result = conn.execution_options(yield_per=2000).execute(
                select(captures).where(and_(*conditions)).order_by(c.capture_time, c.id)
            )
            for r in result.mappings():
                item = capture_of(r)
                if versions_only:
                    if item.text_key in seen:
                        continue
                    seen.add(str(item.text_key))
                yield item
