"""What researchers ask of the archive: the captures of an article, listings of a site, a URL
prefix, a day or a crawl, and one capture's text, page, sidecar and WARC records (through its
redirects, as a replay follows them). The catalog says where things are; the store is read by
key and range.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from sqlalchemy import and_, func, or_, select

from crawler.access.records import (
    Location,
    RecordError,
    ensure_tables,
    extract_warcinfo,
    linked_for,
    payload_of,
    read_verified,
)
from crawler.catalog.db import Capture, Catalog, captures, iso, texts
from crawler.constants import CHALLENGE_RECORD
from crawler.layout import sidecar_key
from crawler.store.base import Store

# url -> (site, article key) pairs: the spiders' own URL rules, given by the command line.
Resolver = Callable[[str], list[tuple[str, str]]]
_DATE = re.compile(
    r"^(\d{4})(?:-?(\d{2})(?:-?(\d{2})(?:[T ]?(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.\d+)?)?)?)?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_DAY = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_CHARSET = re.compile(r"charset=[\"']?([A-Za-z0-9._:-]+)", re.I)
_TIME = "%Y-%m-%dT%H:%M:%SZ"
# Redirects followed from one capture at most (browsers stop at 20; a news page needs 1 or 2).
MAX_REDIRECTS = 10
# Farther than this from the time asked, `get` says that no capture is nearer.
FAR = timedelta(days=1)


class AccessError(Exception):
    """A researcher's request that cannot be answered: one line, said as it is."""


class BadInput(AccessError):
    """A value on the command line or in a query that cannot be meant: a usage error (exit 2,
    a 400), where an AccessError proper is data the archive lacks (exit 1, a 404)."""


class UnknownSite(BadInput):
    """A site name the catalog does not hold (a typo, most often)."""


def parse_time(value: str, *, end: bool = False) -> str:
    """ "2025", "2025-06", "2025-06-30", "2025-06-30T12:00Z", "20250630120000" as catalog time.

    ``end``: the end of the period named (exclusive), so ``--to 2025-06`` takes all of June.
    Times without an offset are UTC.
    """
    match = _DATE.match(value.strip())
    if not match:
        raise BadInput(f"unparseable date {value!r} (use e.g. 2025-06, 2025-06-30T12:00Z)")
    parts = [int(p) if p else None for p in match.groups()[:6]]
    given = sum(p is not None for p in parts)
    fields = [p if p is not None else d for p, d in zip(parts, (0, 1, 1, 0, 0, 0), strict=True)]
    try:
        moment = datetime(*fields, tzinfo=UTC)  # type: ignore[arg-type,misc]
    except ValueError as exc:
        raise BadInput(f"unparseable date {value!r}: {exc}") from exc
    try:
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
    except (ValueError, OverflowError):  # --to 9999: its end is past the last day there is
        raise BadInput(f"date {value!r} is out of range (years 1 to 9998)") from None
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


def is_redirect(capture: Capture) -> bool:
    """A capture a replay would follow (3xx; 304 is no redirect but a validator's answer)."""
    return 300 <= capture.status < 400 and capture.status != 304


def _moment(value: str) -> datetime:
    return datetime.strptime(value, _TIME).replace(tzinfo=UTC)


def _seconds_apart(a: str, b: str) -> float:
    return abs((_moment(a) - _moment(b)).total_seconds())


def how_far(seconds: float) -> str:
    """A distance in time as a person says it: "40 seconds", "3 days", "18 months"."""
    units = (
        (2 * 365.25 * 86400, 365.25 * 86400, "year"),
        (60 * 86400, 30.44 * 86400, "month"),
        (2 * 86400, 86400, "day"),
        (2 * 3600, 3600, "hour"),
        (120, 60, "minute"),
    )
    for above, size, name in units:
        if seconds >= above:
            count = round(seconds / size)
            return f"{count} {name}s"
    count = round(seconds)
    return f"{count} second{'' if count == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class Landing:
    """The capture `get` gives: the one nearest the time asked, then through its redirects.

    ``redirects`` are the redirect captures followed, in order (empty when none was).
    """

    capture: Capture
    redirects: tuple[Capture, ...] = ()
    at: str | None = None  # the time asked (catalog time); None: the latest
    note: str = ""  # why a nearer capture was passed over

    @property
    def chosen(self) -> Capture:
        """The capture nearest the time asked, before any redirect."""
        return self.redirects[0] if self.redirects else self.capture

    def describe(self, asked: str | None = None) -> str:
        """One line for the terminal: which capture, how far from the time asked, and how.

        ``asked``: the time as the user wrote it (default: the catalog time).
        """
        line = f"using the capture of {self.capture.url} at {self.capture.capture_time}"
        if self.at is None:
            line += ", the latest"
        else:
            apart = (_moment(self.capture.capture_time) - _moment(self.at)).total_seconds()
            when = asked or self.at
            if apart == 0:
                line += f", captured at {when} exactly"
            else:
                line += f", {how_far(abs(apart))} {'after' if apart > 0 else 'before'} {when}"
            if self.note:
                line += f" ({self.note})"
            elif abs(apart) > FAR.total_seconds():
                if self.redirects:
                    line += " (its redirect's target, as captured nearest the redirect)"
                else:
                    line += " (no capture is nearer)"
        if self.redirects:
            line += ", via the redirect" + ("s" if len(self.redirects) > 1 else "") + " from "
            line += " -> ".join(
                r.url
                if r.capture_time == self.capture.capture_time
                else f"{r.url} (captured {r.capture_time})"
                for r in self.redirects
            )
        return line


@dataclass(frozen=True, slots=True)
class Listing:
    """Which captures a listing takes: every filter given, together (none: every capture)."""

    sites: tuple[str, ...] = ()
    url_prefix: str | None = None  # with a scheme, or without: http:// and https:// both
    crawl_id: str | None = None
    since: str | None = None
    until: str | None = None  # exclusive
    limit: int | None = None
    published: Published = (None, None)  # publication days, from (inclusive) to (exclusive)

    def conditions(self) -> list[Any]:
        c = captures.c
        found: list[Any] = []
        if self.sites:
            found.append(c.site.in_(self.sites))
        if self.url_prefix:
            prefixes = (
                [self.url_prefix]
                if "://" in self.url_prefix
                else [f"http://{self.url_prefix}", f"https://{self.url_prefix}"]
            )
            # substr, not LIKE: exact and case-sensitive in every database, no escaping.
            found.append(or_(*(func.substr(c.url, 1, len(p)) == p for p in prefixes)))
        if self.crawl_id:
            found.append(c.crawl_id == self.crawl_id)
        if self.since:
            found.append(c.capture_time >= self.since)
        if self.until:
            found.append(c.capture_time < self.until)
        found += published_conditions(self.published)
        return found

    def describe(self) -> str:
        parts = []
        if self.sites:
            parts.append("site " + ", ".join(self.sites))
        if self.url_prefix:
            parts.append(f"URLs starting {self.url_prefix}")
        if self.crawl_id:
            parts.append(f"crawl {self.crawl_id}")
        if self.since or self.until:
            parts.append(f"captured {self.since or 'any time'} .. {self.until or 'now'}")
        if any(self.published):
            parts.append(describe_published(self.published))
        return "; ".join(parts) or "every capture"


# Publication days (YYYY-MM-DD): from (inclusive), until (exclusive); None: no bound.
Published = tuple[str | None, str | None]


def published_conditions(published: Published) -> list[Any]:
    """Captures whose text was published in those days (by the publisher's calendar: a
    date-only value is its own day, never shifted by a zone). A text without a known date is
    never in a bounded range."""
    since, until = published
    if not since and not until:
        return []
    t = texts.c
    where: list[Any] = []
    if since:
        where.append(t.published_date >= since)
    if until:
        where.append(t.published_date < until)
    return [captures.c.text_key.in_(select(t.text_key).where(*where))]


def publication_day(value: str | None, *, end: bool = False) -> str | None:
    """``--published-from/--published-to`` as a calendar day (YYYY-MM-DD): publication dates
    are days as publishers write them, so a bound is a year, a month or a day, not a time.
    ``end``: the day after the period named (an exclusive bound)."""
    if value is None:
        return None
    if not _DAY.match(value.strip()):
        raise BadInput(
            f"publication dates are days: give a year, month or day (2025, 2025-06, "
            f"2025-06-11), not {value!r}"
        )
    return parse_time(value, end=end)[:10]


def describe_published(published: Published) -> str:
    since, until = published
    last = None
    if until:
        last = (date.fromisoformat(until) - timedelta(days=1)).isoformat()
    return f"published {since or 'any day'} .. {last or 'now'}"


def text_conditions(
    site: str, since: str | None, until: str | None, published: Published = (None, None)
) -> list[Any]:
    """Which captures an export takes: the site's captures with text, in the capture time
    range and the publication days."""
    c = captures.c
    conditions: list[Any] = [c.site == site, c.text_key.is_not(None)]
    if since:
        conditions.append(c.capture_time >= since)
    if until:
        conditions.append(c.capture_time < until)
    return conditions + published_conditions(published)


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

    def known_sites(self) -> list[str]:
        """Every site the catalog holds a capture of."""
        with self.catalog.engine.connect() as conn:
            return sorted(conn.execute(select(captures.c.site).distinct()).scalars())

    def unknown_sites(self, names: Sequence[str]) -> list[str]:
        known = set(self.known_sites())
        return [name for name in names if name not in known]

    def check_sites(self, names: Sequence[str]) -> None:
        """UnknownSite naming the sites the catalog holds (and the nearest, if any)."""
        import difflib

        unknown = self.unknown_sites(names)
        if not unknown:
            return
        known = self.known_sites()
        hints = [m for name in unknown for m in difflib.get_close_matches(name, known, n=1)]
        said = ", ".join(repr(name) for name in unknown)
        raise UnknownSite(
            f"unknown site{'s' if len(unknown) > 1 else ''} {said}"
            + (f" (did you mean {', '.join(hints)}?)" if hints else "")
            + f"; the catalog holds: {', '.join(known) or 'none'}"
        )

    def crawl_known(self, crawl_id: str) -> bool:
        return self._exists(captures.c.crawl_id == crawl_id)

    def latest_crawls(self, count: int = 5) -> list[str]:
        c = captures.c
        query = (
            select(c.crawl_id, func.max(c.capture_time).label("last"))
            .group_by(c.crawl_id)
            .order_by(func.max(c.capture_time).desc())
            .limit(count)
        )
        with self.catalog.engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def list_captures(self, listing: Listing) -> Iterator[Capture]:
        """The captures a listing takes, oldest first, streamed from the catalog's cursor."""
        from crawler.access.table import capture_of

        c = captures.c
        query = select(captures).where(and_(*listing.conditions())).order_by(c.capture_time, c.id)
        if listing.limit is not None:
            query = query.limit(listing.limit)
        with self.catalog.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(query)
            for r in result.mappings():
                yield capture_of(r)

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
        """The capture nearest ``at`` (the latest without it), through its redirects."""
        return self.land(ref, at, need_text=need_text).capture

    def land(
        self, ref: str, at: str | None, *, need_text: bool = False, follow: bool = True
    ) -> Landing:
        """The capture nearest ``at`` (the latest without it) and, when that one is a redirect,
        the capture its Location leads to, as a replay would (``follow``); with text when asked.

        A challenge page is never the page's capture: ``snapshots`` lists it, marked. Of two
        captures as near, the one that is no redirect is taken.
        """
        target, found = self.snapshots(ref)
        found = [f for f in found if f.record_type != CHALLENGE_RECORD]
        if need_text:
            # A redirect may lead to a capture with text: it stays a candidate.
            found = [f for f in found if f.text_key or (follow and is_redirect(f))]
        if not found:
            if need_text:
                raise AccessError(f"{target.describe()} was captured, but no text was archived")
            raise AccessError(f"no capture of {target.describe()}")
        if at is None:
            # The latest first; of captures in the same second, one that is no redirect, and
            # of those the last the catalog lists.
            latest = sorted(
                enumerate(found), key=lambda p: (p[1].capture_time, not is_redirect(p[1]), p[0])
            )
            order = [f for _, f in reversed(latest)]
        else:
            order = sorted(
                found, key=lambda f: (_seconds_apart(f.capture_time, at), is_redirect(f))
            )
        if not need_text:
            return self.follow(order[0], at) if follow else Landing(order[0], (), at)
        # Text: the nearest capture that has it, itself or at the end of its redirects.
        passed: list[str] = []
        for candidate in order:
            landing = Landing(candidate, (), at)
            if not candidate.text_key:
                try:
                    landing = self.follow(candidate, at)
                except AccessError:
                    landing = Landing(candidate, (), at)  # it leads nowhere archived
            if landing.capture.text_key:
                note = ""
                if passed:
                    some = "nearer redirects lead" if len(passed) > 1 else "a nearer redirect leads"
                    note = f"{some} to no archived text: {', '.join(passed)}"
                return replace(landing, note=note)
            passed.append(f"{candidate.url} at {candidate.capture_time}")
        raise AccessError(f"{target.describe()} was captured, but no text was archived")

    def follow(self, capture: Capture, at: str | None = None) -> Landing:
        """From a redirect capture to the capture of its Location nearest in time, and on.

        Stops at a capture that is no redirect (or one without a Location); a loop, more than
        MAX_REDIRECTS hops, or a Location the archive never captured is an AccessError.
        """
        first = capture
        chain: list[Capture] = []
        seen = {capture.url}
        while is_redirect(capture):
            location = self.redirect_location(capture)
            if location is None:
                break
            if len(chain) >= MAX_REDIRECTS:
                raise AccessError(
                    f"more than {MAX_REDIRECTS} redirects from {first.url} "
                    f"(captured {first.capture_time}): --no-follow gives the first one"
                )
            if location in seen:
                path = " -> ".join([*(c.url for c in chain), capture.url, location])
                raise AccessError(f"a redirect loop: {path} (--no-follow gives the first one)")
            target = self.nearest_of_url(location, capture.capture_time)
            if target is None:
                raise AccessError(
                    f"{capture.url} (captured {capture.capture_time}) redirects to {location}, "
                    "which the archive never captured (--no-follow gives the redirect itself)"
                )
            chain.append(capture)
            seen.add(location)
            capture = target
        return Landing(capture, tuple(chain), at)

    def redirect_location(self, capture: Capture) -> str | None:
        """The absolute Location of a redirect capture, read from its WARC record."""
        try:
            data = self.store.get_range(capture.warc_key, capture.warc_offset, capture.warc_length)
        except FileNotFoundError as exc:
            raise AccessError(
                f"{capture.warc_key} is in the catalog but not in the store {self.store.uri}"
            ) from exc
        record, _payload = payload_of(data)
        headers = record.http_headers
        location = headers.get_header("Location") if headers is not None else None
        return urljoin(capture.url, location.strip()) if location else None

    def nearest_of_url(self, url: str, when: str) -> Capture | None:
        """The capture of exactly this URL nearest ``when`` (no challenge page)."""
        c = captures.c
        base = and_(c.url == url, c.record_type != CHALLENGE_RECORD)
        before = select(captures).where(base, c.capture_time <= when)
        after = select(captures).where(base, c.capture_time > when)
        found: list[Capture] = []
        from crawler.access.table import capture_of

        with self.catalog.engine.connect() as conn:
            for query in (
                before.order_by(c.capture_time.desc(), c.id.desc()),
                after.order_by(c.capture_time, c.id),
            ):
                row = conn.execute(query.limit(1)).mappings().first()
                if row is not None:
                    found.append(capture_of(row))
        if not found:
            return None
        return min(found, key=lambda f: _seconds_apart(f.capture_time, when))

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
        try:
            return info + read_verified(self.store, self.locations(capture))
        except RecordError as exc:
            raise AccessError(f"refused: {exc}") from None
        except FileNotFoundError as exc:
            raise AccessError(
                f"{capture.warc_key} is in the catalog but not in the store {self.store.uri}"
            ) from exc

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
        self,
        site: str,
        since: str | None,
        until: str | None,
        *,
        versions_only: bool = True,
        published: Published = (None, None),
    ) -> Iterator[Capture]:
        """Captures of one site with text, in time order; each text version once."""
        c = captures.c
        conditions = text_conditions(site, since, until, published)
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
