"""A crawl replayed from the archive: which capture answers each URL, and what the texts became.

``newsarchive crawl SITE --from-archive [--crawl-id ID]`` runs the real spider with a download
handler (crawler/fetch/archive.py) that asks ``CatalogReplaySource`` for every response: the
catalog says which capture of the URL answers and where its record lies, the store gives the
record's bytes by range. Each URL is answered by its latest capture, or, for a crawl id, by
its capture in that crawl, else by its last capture before it (the archive as that crawl left
it). A revisit answers with the response it refers to, a redirect as the 3xx it was (Scrapy
follows it), a 304 or a challenge page never answers (the response it stood for does), and a
page rendered in Chromium with its archived DOM.

Nothing is written: the replay pipeline (crawler/crawl/replay_pipeline.py) extracts each
article as a crawl would and ``ArchiveReplay`` lists it beside the archived version's digest;
the crawl's report carries that list (``replay``), and the command prints how many texts
differ. Asked to (``--write``), the command then hands the captures of the articles that
differ to reextract's engine (``crawler.ops.reextract.write_replayed``), the one writer of
remade texts. Read failures (a WARC gone from the store, a record that is unreadable or fails its
digest) fail that one request, named in the report with its URL and cause.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.utils.defer import maybe_deferred_to_future
from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import SQLAlchemyError
from twisted.internet.threads import deferToThread

from crawler.access.records import (
    Location,
    RecordError,
    check_digest,
    linked_for,
    wire_payload_of,
)
from crawler.capture.browser import DOM_URI_PREFIX
from crawler.catalog.db import Capture, Catalog, CatalogMismatch, captures, texts
from crawler.catalog.readonly import ReadOnlyCatalog
from crawler.constants import (
    STATS_ARTICLES_REPLAYED,
    STATS_REPLAY_DIFFER,
    STATS_REPLAY_SAME,
    STATS_REPLAY_UNARCHIVED,
)
from crawler.crawl.config import ReplayConfig
from crawler.crawl.ledger import CrawlLedger
from crawler.fetch.archive import (
    ARCHIVE_CORRUPT,
    ARCHIVE_MISSING,
    NOT_IN_ARCHIVE,
    ArchivedAnswer,
    ArchiveReadError,
    NotInArchive,
    ReplayMiss,
)
from crawler.layout import default_catalog_url
from crawler.store.base import Store, StoreError, local_root, store_identity
from crawler.text.diff import summary as diff_summary
from crawler.text.diff import word_diff
from crawler.util import without_password

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)

# The report lists this many missed URLs (all are counted) ...
MAX_LISTED_MISSES = 1000
# ... and the summary this many articles whose text differs.
SHOWN_DIFFERENT = 5
_TIME = "%Y-%m-%dT%H:%M:%SZ"
# Header lines a rendered page's response does not keep (as crawler/fetch/render.py builds it).
_NOT_RENDERED_HEADERS = ("content-encoding", "content-length", "content-type")


@dataclass(frozen=True, slots=True)
class CrawlSpan:
    """One crawl of a site as the catalog knows it: its first and last capture."""

    crawl_id: str
    site: str
    first: str  # catalog time of its first capture
    last: str

    @property
    def started(self) -> datetime:
        return datetime.strptime(self.first, _TIME).replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Replayed:
    """The capture that answered a URL, and the text the archive made of it."""

    url: str
    asked: str  # the URL requested: another of the article's URLs when they differ
    record_id: str
    record_type: str
    crawl_id: str
    capture_time: str
    status: int
    article_key: str | None
    text_digest: str | None
    text_key: str | None
    version: int | None
    rendered: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "record_type": self.record_type,
            "crawl_id": self.crawl_id,
            "capture_time": self.capture_time,
            "status": self.status,
            "rendered": self.rendered,
            **({"asked_as": self.asked} if self.asked != self.url else {}),
        }


def _capture(row: Any) -> Capture:
    return Capture(**{f.name: row[f.name] for f in dataclasses.fields(Capture)})


def _catalog_missing(url: str) -> Path | None:
    """The SQLite file ``url`` names when it does not exist (opening it would make one)."""
    if not url.startswith("sqlite:///"):
        return None
    path = Path(url.removeprefix("sqlite:///"))
    return None if path.exists() else path


def crawl_span(catalog: Catalog, crawl_id: str) -> CrawlSpan | None:
    c = captures.c
    with catalog.engine.connect() as conn:
        row = conn.execute(
            select(c.site, func.min(c.capture_time), func.max(c.capture_time))
            .where(c.crawl_id == crawl_id)
            .group_by(c.site)
            .limit(1)
        ).first()
    return None if row is None else CrawlSpan(crawl_id, str(row[0]), str(row[1]), str(row[2]))


def newest_crawl(catalog: Catalog, site: str) -> CrawlSpan | None:
    """The crawl of the site's newest capture."""
    c = captures.c
    with catalog.engine.connect() as conn:
        found = conn.execute(
            select(c.crawl_id)
            .where(c.site == site)
            .order_by(c.capture_time.desc(), c.id.desc())
            .limit(1)
        ).scalar()
    return None if found is None else crawl_span(catalog, str(found))


def _recent_crawls(catalog: Catalog, site: str, count: int = 3) -> list[str]:
    c = captures.c
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(c.crawl_id, func.max(c.capture_time).label("last"))
            .where(c.site == site)
            .group_by(c.crawl_id)
            .order_by(func.max(c.capture_time).desc())
            .limit(count)
        ).all()
    return [str(r[0]) for r in rows]


def find_span(catalog: Catalog, site: str, crawl_id: str | None) -> CrawlSpan:
    """The crawl replayed (``crawl_id``), else the site's newest; ``ValueError`` (one line)
    when the catalog holds none of it."""
    if crawl_id is None:
        span = newest_crawl(catalog, site)
        if span is None:
            raise ValueError(
                f"the catalog {catalog} holds no capture of {site}: nothing to replay "
                f"(crawl {site} first)"
            )
        return span
    span = crawl_span(catalog, crawl_id)
    if span is None:
        recent = _recent_crawls(catalog, site)
        known = f" (the latest of {site}: {', '.join(recent)})" if recent else ""
        raise ValueError(f"the catalog {catalog} holds no crawl {crawl_id!r}{known}")
    if span.site != site:
        raise ValueError(f"crawl {crawl_id} is a crawl of {span.site}, not of {site}")
    return span


def replay_problem(catalog_url: str, store: Store, site: str, crawl_id: str | None) -> str | None:
    """Why ``site`` cannot be replayed from this catalog and store (one line), or None.

    Read only (``ReadOnlyCatalog``): a missing SQLite catalog is not made, nor an older one
    upgraded.
    """
    missing = _catalog_missing(catalog_url)
    if missing is not None:
        return (
            f"no catalog at {missing}: nothing to replay (crawl {site} into {store.uri} "
            "first, or `newsarchive reindex` builds the catalog from the store)"
        )
    try:
        catalog = ReadOnlyCatalog(catalog_url)
    except (SQLAlchemyError, ValueError, OSError) as exc:
        return f"the catalog {without_password(catalog_url)} cannot be read: {exc}"
    try:
        if catalog.store_binding() is not None:
            catalog.check_store(store_identity(store, create=False), store.uri)
        find_span(catalog, site, crawl_id)
    except (CatalogMismatch, ValueError) as exc:
        return str(exc)
    except (SQLAlchemyError, StoreError) as exc:
        return f"the catalog {without_password(catalog_url)} cannot be read: {exc}"
    finally:
        catalog.close()
    return None


class CatalogReplaySource:
    """Answers a replay's requests from the catalog and the store (a ``ReplaySource``).

    Thread-safe: the download handler calls ``answer`` from worker threads, the pipeline
    ``archived_text`` from its own.
    """

    def __init__(self, catalog: Catalog, store: Store, site: str, span: CrawlSpan | None) -> None:
        self.catalog = catalog
        self.store = store
        self.site = site
        self.span = span  # None: each URL's latest capture
        self._lock = threading.Lock()
        self.answered: dict[str, Replayed] = {}
        self.pages_by_crawl: Counter[str] = Counter()
        self.missed: list[dict[str, str]] = []
        self.missed_by_cause: Counter[str] = Counter()
        self.aliases = 0  # article URLs answered by the article's capture under another URL

    # -- which capture ----------------------------------------------------------------------
    def choose(self, url: str, article_key: str | None = None) -> Capture | None:
        """The capture that answers ``url``: no challenge page, no 304 (the response it
        validated, an earlier capture, answers instead).

        An article URL never captured, whose article was captured under another of its URLs
        (a site with several host names lists each article under any of them, and which one a
        crawl asks for first depends on which feed answered first), is answered by that
        capture: the replay finds the articles the crawl found.
        """
        c = captures.c
        found = self._first(c.url == url)
        if found is None and article_key is not None:
            found = self._first(c.article_key == article_key, prefer=c.status == 200)
        return found

    def _first(self, condition: Any, prefer: Any = None) -> Capture | None:
        c = captures.c
        query = select(captures).where(
            c.site == self.site,
            condition,
            c.record_type.in_(("response", "revisit")),
            c.status != 304,
        )
        order: list[Any] = []
        if self.span is not None:
            query = query.where(c.capture_time <= self.span.last)
            order.append(case((c.crawl_id == self.span.crawl_id, 0), else_=1))
        if prefer is not None:
            order.append(case((prefer, 0), else_=1))
        query = query.order_by(*order, c.capture_time.desc(), c.id.desc())
        with self.catalog.engine.connect() as conn:
            row = conn.execute(query.limit(1)).mappings().first()
        return None if row is None else _capture(row)

    # -- answering --------------------------------------------------------------------------
    def answer(self, url: str, *, render: bool, article_key: str | None = None) -> ArchivedAnswer:
        capture = self.choose(url, article_key)
        if capture is None:
            where = f" (in or before crawl {self.span.crawl_id})" if self.span else ""
            raise self._miss(
                NotInArchive(f"{url} is not in the archive{where}", NOT_IN_ARCHIVE), url
            )
        source = capture
        if capture.record_type == "revisit":
            original = (
                self.catalog.payload_capture(capture.url, capture.payload_digest)
                if capture.payload_digest
                else None
            )
            if original is None:
                raise self._miss(
                    ArchiveReadError(
                        f"the revisit {capture.record_id} of {url} refers to a response the "
                        "catalog does not hold",
                        ARCHIVE_MISSING,
                    ),
                    url,
                )
            source = original
        record, payload = self._read(
            url,
            Location(
                "response",
                source.record_id,
                source.warc_key,
                source.warc_offset,
                source.warc_length,
            ),
            target=source.url,
        )
        http = record.http_headers
        code = http.get_statuscode() if http is not None else None
        if http is None or not code or not code.isdigit():
            raise self._miss(
                ArchiveReadError(f"the record of {url} holds no HTTP response", ARCHIVE_CORRUPT),
                url,
            )
        headers = [(str(k), str(v)) for k, v in http.headers]
        rendered = False
        if render:
            dom = self._dom(url, capture)
            if dom is not None:
                rendered = True
                payload = dom
                headers = [
                    (k, v)
                    for k, v in headers
                    if k.lower() not in _NOT_RENDERED_HEADERS and not k.startswith(":")
                ]
                headers.append(("Content-Type", "text/html; charset=utf-8"))
        warc = record.rec_headers
        replayed = Replayed(
            url=capture.url,
            asked=url,
            record_id=capture.record_id,
            record_type=capture.record_type,
            crawl_id=capture.crawl_id,
            capture_time=capture.capture_time,
            status=int(code),
            article_key=capture.article_key,
            text_digest=capture.text_digest,
            text_key=capture.text_key,
            version=capture.version,
            rendered=rendered,
        )
        with self._lock:
            self.answered[capture.url] = replayed
            self.pages_by_crawl[capture.crawl_id] += 1
            if capture.url != url:
                self.aliases += 1
        return ArchivedAnswer(
            url=capture.url,  # the article under the URL it was captured at
            status=int(code),
            headers=headers,
            body=payload,
            protocol=str(http.protocol or "HTTP/1.1"),
            ip_address=warc.get_header("WARC-IP-Address"),
            truncated=bool(warc.get_header("WARC-Truncated")) and not rendered,
            rendered=rendered,
        )

    def _miss(self, exc: ReplayMiss, url: str) -> ReplayMiss:
        """Count and list a request the archive does not answer; the exception to raise."""
        with self._lock:
            self.missed_by_cause[exc.cause] += 1
            if len(self.missed) < MAX_LISTED_MISSES:
                self.missed.append({"url": url, "cause": exc.cause, "error": str(exc)})
        logger.warning("not answered from the archive: %s (%s): %s", url, exc.cause, exc)
        return exc

    def _read(self, url: str, where: Location, *, target: str | None) -> tuple[Any, bytes]:
        """The record at ``where`` and its payload, checked: its id, its URI (``target``,
        None: any), its digest."""
        place = f"{where.warc_key} at {where.offset}"
        try:
            data = self.store.get_range(where.warc_key, where.offset, where.length)
        except FileNotFoundError:
            raise self._miss(
                ArchiveReadError(
                    f"{where.warc_key} is in the catalog but not in the store {self.store.uri}",
                    ARCHIVE_MISSING,
                ),
                url,
            ) from None
        except StoreError as exc:
            raise self._miss(
                ArchiveReadError(f"{place}: the store did not answer: {exc}", ARCHIVE_MISSING),
                url,
            ) from exc
        try:
            if len(data) < where.length:
                raise RecordError(f"{len(data)} of its {where.length} bytes in the store")
            record, payload = wire_payload_of(data)
            headers = record.rec_headers
            found = headers.get_header("WARC-Record-ID") or ""
            if not found:
                raise RecordError(f"no readable WARC record there (record {where.record_id})")
            if found != where.record_id:
                raise RecordError(f"record {found} there, not {where.record_id}")
            uri = headers.get_header("WARC-Target-URI") or ""
            if target is not None and uri != target:
                raise RecordError(f"a record of {uri or 'no URI'} there, not of {target}")
            check_digest(record, payload)
        except RecordError as exc:
            raise self._miss(ArchiveReadError(f"{place}: {exc}", ARCHIVE_CORRUPT), url) from exc
        return record, payload

    def _dom(self, url: str, capture: Capture) -> bytes | None:
        """The DOM a browser made of the page at this capture, when it was rendered."""
        try:
            linked = linked_for(self.catalog.engine, capture.record_id)
        except SQLAlchemyError:  # a catalog made before records were located: no DOM known
            return None
        for where in linked:
            if where.record_type != "resource":
                continue
            # The page's screenshot is a resource too: the DOM is the one under urn:dom:.
            record, payload = self._read(url, where, target=None)
            if (record.rec_headers.get_header("WARC-Target-URI") or "").startswith(DOM_URI_PREFIX):
                return payload
        return None

    def change(self, text_key: str | None, text: bytes) -> str | None:
        """How ``text`` differs from the archived text at ``text_key``, in words ("3 words
        removed in 1 place"); None when that text cannot be read."""
        if not text_key:
            return None
        try:
            old = self.store.get_bytes(text_key)
        except OSError:  # FileNotFoundError, StoreError: the comparison stays by digest
            return None
        return diff_summary(
            word_diff(old.decode("utf-8", "replace"), text.decode("utf-8", "replace"))
        )

    # -- the archived texts -------------------------------------------------------------------
    def replayed(self, url: str) -> Replayed | None:
        with self._lock:
            return self.answered.get(url)

    def archived_text(self, url: str, article_key: str) -> dict[str, Any] | None:
        """The archived text of the capture that answered ``url``: the one made from it, else
        the article's version current at that capture (None: the archive has no text)."""
        replayed = self.replayed(url)
        if replayed is not None and replayed.text_digest:
            return {
                "text_digest": replayed.text_digest,
                "text_key": replayed.text_key,
                "version": replayed.version,
            }
        t = texts.c
        conditions = [t.site == self.site, t.article_key == article_key]
        if replayed is not None:
            conditions.append(t.captured <= replayed.capture_time)
        with self.catalog.engine.connect() as conn:
            row = (
                conn.execute(
                    select(t.text_digest, t.text_key, t.version)
                    .where(and_(*conditions))
                    .order_by(t.version.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)


class ArchiveReplay:
    """One replayed crawl: opens the catalog, answers through its source, lists the articles.

    Writes nothing: no WARC, text, catalog row or store object. The crawl's report gets the
    ``replay`` section (``section``).
    """

    def __repr__(self) -> str:  # Scrapy logs a failing signal handler by its repr: no address
        return "<ArchiveReplay>"

    def __init__(
        self,
        config: ReplayConfig,
        store: Store,
        ledger: CrawlLedger,
        stats: StatsCollector,
        *,
        window_days: int = 0,
    ) -> None:
        self.config = config
        self.store = store
        self.ledger = ledger
        self.stats = stats
        self.window_days = window_days
        self.catalog: Catalog | None = None
        self.source: CatalogReplaySource | None = None
        self.span: CrawlSpan | None = None  # the crawl replayed, or the site's newest
        self.catalog_location = ""
        self._lock = threading.Lock()
        self.articles: list[dict[str, Any]] = []

    def catalog_url(self) -> str:
        return self.config.catalog_url or default_catalog_url(
            local_root(self.store), self.ledger.spool_dir, self.store.uri
        )

    async def spider_opened(self, spider: Spider) -> str | None:
        """Open the catalog; None, or why this site cannot be replayed (one line)."""
        problem: str | None = await maybe_deferred_to_future(deferToThread(self._open, spider.name))
        if problem is not None:
            return problem
        assert self.span is not None
        # The discovery window ends where the replayed crawl started, as it did for that
        # crawl: articles it left out as too old are not asked of the archive now.
        args = getattr(spider, "args", None)
        if self.window_days > 0 and getattr(args, "since", True) is None:
            spider.window_start = self.span.started - timedelta(days=self.window_days)  # type: ignore[attr-defined]
        which = (
            f"crawl {self.span.crawl_id} (a URL it did not fetch: its last capture before)"
            if self.config.crawl_id
            else f"each URL's latest capture (newest crawl {self.span.crawl_id})"
        )
        logger.info(
            "replaying %s from the archive %s: %s; nothing is fetched or written",
            spider.name,
            self.store.uri,
            which,
            extra={"spider": spider},
        )
        return None

    def _open(self, site: str) -> str | None:
        url = self.catalog_url()
        self.catalog_location = without_password(url)
        problem = replay_problem(url, self.store, site, self.config.crawl_id)
        if problem is not None:
            return problem
        self.catalog = ReadOnlyCatalog(url)
        try:
            self.span = find_span(self.catalog, site, self.config.crawl_id)
        except ValueError as exc:  # gone in between
            return str(exc)
        self.source = CatalogReplaySource(
            self.catalog, self.store, site, self.span if self.config.crawl_id else None
        )
        return None

    def close(self) -> None:
        if self.catalog is not None:
            self.catalog.close()

    # -- articles ---------------------------------------------------------------------------
    def compare(
        self, url: str, article_key: str, sidecar: dict[str, Any], text: bytes
    ) -> dict[str, Any]:
        """An article extracted in the replay, beside the archived version: listed, counted."""
        source = self.source
        replayed = source.replayed(url) if source is not None else None
        archived = source.archived_text(url, article_key) if source is not None else None
        same = None if archived is None else archived["text_digest"] == sidecar["text_digest"]
        change = None
        if same is False and archived is not None and source is not None:
            change = source.change(archived.get("text_key"), text)
        entry = {
            "url": url,
            "request_url": sidecar.get("request_url"),
            "article_id": article_key,
            "title": sidecar.get("title"),
            "published": sidecar.get("published"),
            "text_length": sidecar.get("text_length"),
            "text_digest": sidecar.get("text_digest"),
            "extractor": sidecar.get("extractor"),
            "extractor_version": sidecar.get("extractor_version"),
            "rules_digest": sidecar.get("rules_digest"),
            "same": same,
            "change": change,  # what differs from the archived text, in words
            "archived": archived,
            "capture": replayed.describe() if replayed is not None else None,
        }
        self.stats.inc_value(STATS_ARTICLES_REPLAYED)
        self.stats.inc_value(
            STATS_REPLAY_UNARCHIVED
            if same is None
            else STATS_REPLAY_SAME
            if same
            else STATS_REPLAY_DIFFER
        )
        with self._lock:
            self.articles.append(entry)
        return entry

    def failed(self, url: str, article_key: str, reason: str, error: str) -> None:
        """An article whose text extraction failed in the replay."""
        source = self.source
        replayed = source.replayed(url) if source is not None else None
        archived = source.archived_text(url, article_key) if source is not None else None
        with self._lock:
            self.articles.append(
                {
                    "url": url,
                    "article_id": article_key,
                    "failed": reason,
                    "error": error,
                    "same": None,
                    "archived": archived,
                    "capture": replayed.describe() if replayed is not None else None,
                }
            )

    # -- the report -------------------------------------------------------------------------
    def section(self) -> dict[str, Any]:
        """The report's ``replay`` section: where the answers came from and every article."""
        source = self.source
        with self._lock:
            listed = sorted(self.articles, key=lambda a: (str(a["url"]), str(a["article_id"])))
        stats = self.stats.get_stats()
        missed_by = dict(sorted(source.missed_by_cause.items())) if source is not None else {}
        return {
            "written": False,
            "crawl_id": self.config.crawl_id,
            "captures": "crawl" if self.config.crawl_id else "latest",
            "replayed_crawl": self.span.crawl_id if self.span is not None else None,
            "window_anchor": self.span.first if self.span is not None else None,
            "catalog": self.catalog_location,
            "store": self.store.uri,
            "pages": {
                "answered": int(stats.get("archive/replay/responses", 0)),
                "by_crawl": dict(sorted(source.pages_by_crawl.items())) if source else {},
                "article_aliases": source.aliases if source is not None else 0,
                "rendered": int(stats.get("archive/replay/rendered", 0)),
                "not_rendered": int(stats.get("archive/replay/not_rendered", 0)),
            },
            "missed": {
                "total": sum(missed_by.values()),
                "by_cause": missed_by,
                "urls": list(source.missed) if source is not None else [],
            },
            "articles": {
                "extracted": int(stats.get(STATS_ARTICLES_REPLAYED, 0)),
                "same": int(stats.get(STATS_REPLAY_SAME, 0)),
                "differ": int(stats.get(STATS_REPLAY_DIFFER, 0)),
                "unarchived": int(stats.get(STATS_REPLAY_UNARCHIVED, 0)),
                "failed": sum(1 for a in listed if a.get("failed")),
            },
            "differ": [a["url"] for a in listed if a.get("same") is False],
            "list": listed,
        }
