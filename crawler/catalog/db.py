"""The catalog: every capture, where it lies, and each article's text versions.

SQLite under the store by default; any SQLAlchemy URL (PostgreSQL when several machines share
it). It knows nothing of Scrapy: the crawl writes to it, the researcher commands read it, and
it can be rebuilt from the store. Times are ISO 8601 UTC strings ("2026-11-23T14:00:00Z"),
which sort as times in every database.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

SCHEMA_VERSION = 1
DEFAULT_REVISION_AGES = (timedelta(hours=1), timedelta(days=1), timedelta(days=7))

metadata = MetaData()

captures = Table(
    "captures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(80), nullable=False, unique=True),
    Column("crawl_id", String(160), nullable=False),
    Column("site", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("article_key", String(255)),
    Column("capture_time", String(32), nullable=False),
    Column("warc_date", String(40)),  # the record's WARC-Date exactly (revisits cite it)
    Column("status", Integer, nullable=False),
    Column("record_type", String(16), nullable=False),  # response | revisit
    Column("payload_digest", String(80)),
    Column("warc_key", Text, nullable=False),
    Column("warc_offset", BigInteger, nullable=False),
    Column("warc_length", BigInteger, nullable=False),
    Column("text_digest", String(80)),
    Column("text_key", Text),
    Column("version", Integer),
)
Index("ix_captures_site_key_time", captures.c.site, captures.c.article_key, captures.c.capture_time)
Index("ix_captures_url_time", captures.c.url, captures.c.capture_time)
Index("ix_captures_payload", captures.c.payload_digest)
# One site over a time range: exports, the browse pages.
Index("ix_captures_site_time", captures.c.site, captures.c.capture_time)

articles = Table(
    "articles",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("article_key", String(255), primary_key=True),
    Column("url", Text, nullable=False),
    Column("first_captured", String(32), nullable=False),
    Column("last_checked", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("text_digest", String(80), nullable=False),
    Column("text_key", Text, nullable=False),
    Column("title", Text),
    Column("published", String(40)),
)

validators = Table(  # of feeds, sitemaps, listings: what a conditional request sends back
    "validators",
    metadata,
    Column("url", String(2048), primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("updated", String(32), nullable=False),
)

runs = Table(  # job history: one row per crawl started by the daemon or `newsarchive crawl`
    "runs",
    metadata,
    Column("crawl_id", String(160), primary_key=True),
    Column("site", String(64), nullable=False),
    Column("trigger", String(16), nullable=False),  # schedule | revisions | command
    Column("host", String(255)),
    Column("started", String(32), nullable=False),
    Column("finished", String(32)),  # NULL while running (or when the runner died)
    # running | ok | failed | timeout | stopped | killed
    Column("result", String(16), nullable=False),
    Column("exit_code", Integer),
    Column("new_articles", Integer),
    Column("revised_articles", Integer),
    Column("pages", Integer),
    Column("warc_bytes", BigInteger),
    Column("pending_uploads", Integer),
    Column("failure", Text),
)
Index("ix_runs_site_started", runs.c.site, runs.c.started)

HEARTBEAT_PREFIX = "heartbeat:"  # catalog_info names of the daemons' heartbeats
FAILED_RESULTS = ("failed", "timeout", "killed")  # run results that count as failures

catalog_info = Table(
    "catalog_info",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def iso(moment: datetime) -> str:
    """A UTC time as the catalog stores it; naive times are refused (they are ambiguous)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: give a timezone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Capture:
    record_id: str
    crawl_id: str
    site: str
    url: str
    article_key: str | None
    capture_time: str
    status: int
    record_type: str
    payload_digest: str | None
    warc_key: str
    warc_offset: int
    warc_length: int
    text_digest: str | None = None
    text_key: str | None = None
    version: int | None = None
    warc_date: str | None = None


@dataclass(frozen=True, slots=True)
class ArchivedArticle:
    site: str
    article_key: str
    url: str
    first_captured: str
    last_checked: str
    version: int
    text_digest: str
    text_key: str
    title: str | None = None
    published: str | None = None


@dataclass(frozen=True, slots=True)
class VersionDecision:
    """What a text is to the archive: its version, and whether that version is new."""

    version: int
    new: bool
    previous: ArchivedArticle | None  # the version it follows (a new one) or is (the same)


# What a failed write to the catalog raises (SQLite on a full disk, a database gone).
CatalogWriteError = OperationalError


def url_digest(url: str) -> bytes:
    """A short fingerprint of a URL, to keep a site's captured URLs in memory cheaply."""
    return hashlib.blake2b(url.encode("utf-8", "surrogateescape"), digest_size=8).digest()


def decide_version(current: ArchivedArticle | None, text_digest: str) -> VersionDecision:
    """The one rule: the first text is version 1; a text whose digest differs from the current
    version's is the next version; the same text is the current version, only checked again."""
    if current is None:
        return VersionDecision(1, True, None)
    if current.text_digest == text_digest:
        return VersionDecision(current.version, False, current)
    return VersionDecision(current.version + 1, True, current)


@dataclass(frozen=True, slots=True)
class Run:
    crawl_id: str
    site: str
    trigger: str
    started: str
    result: str = "running"
    host: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    new_articles: int | None = None
    revised_articles: int | None = None
    pages: int | None = None
    warc_bytes: int | None = None
    pending_uploads: int | None = None
    failure: str | None = None


def _row(cls: type[Any], mapping: Any) -> Any:
    return cls(**{f.name: mapping[f.name] for f in fields(cls)})


class Catalog:
    """Thread-safe: one engine, short transactions; SQLite in WAL mode."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._lock = threading.Lock()
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            found = conn.execute(
                select(catalog_info.c.value).where(catalog_info.c.name == "schema_version")
            ).scalar()
            if found is None:
                conn.execute(
                    insert(catalog_info).values(name="schema_version", value=str(SCHEMA_VERSION))
                )
            elif int(found) > SCHEMA_VERSION:
                raise ValueError(
                    f"catalog {url} has schema {found}, newer than this newsarchive "
                    f"({SCHEMA_VERSION}): upgrade newsarchive"
                )

    def close(self) -> None:
        self.engine.dispose()

    # -- writing ------------------------------------------------------------------------------
    def add_capture(self, capture: Capture) -> bool:
        """Record a capture; False when its record id is already there (a re-run is a no-op)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(captures).values(**asdict(capture)))
        except IntegrityError:
            return False
        return True

    def set_capture_texts(self, texts: dict[str, tuple[str, str, int]]) -> set[str]:
        """Attach (text digest, text key, version) to recorded captures; the ids it found."""
        found: set[str] = set()
        with self.engine.begin() as conn:
            for record_id, (digest, key, version) in texts.items():
                done = conn.execute(
                    update(captures)
                    .where(captures.c.record_id == record_id)
                    .values(text_digest=digest, text_key=key, version=version)
                ).rowcount
                if done:
                    found.add(record_id)
        return found

    def record_text(
        self,
        *,
        site: str,
        article_key: str,
        url: str,
        capture_time: str,
        text_digest: str,
        text_key: str,
        title: str | None = None,
        published: str | None = None,
    ) -> tuple[int, bool]:
        """The article's version for this text, and whether it is new.

        The first text of an article is version 1; a text whose digest differs from the current
        version's becomes the next version; the same text only marks the article checked.
        """
        with self._lock, self.engine.begin() as conn:
            current = (
                conn.execute(
                    select(articles).where(
                        and_(articles.c.site == site, articles.c.article_key == article_key)
                    )
                )
                .mappings()
                .first()
            )
            decision = decide_version(
                None if current is None else _row(ArchivedArticle, current), text_digest
            )
            if current is None:
                conn.execute(
                    insert(articles).values(
                        site=site,
                        article_key=article_key,
                        url=url,
                        first_captured=capture_time,
                        last_checked=capture_time,
                        version=1,
                        text_digest=text_digest,
                        text_key=text_key,
                        title=title,
                        published=published,
                    )
                )
                return 1, True
            where = and_(articles.c.site == site, articles.c.article_key == article_key)
            if not decision.new:
                conn.execute(update(articles).where(where).values(last_checked=capture_time))
                return decision.version, False
            version = decision.version
            conn.execute(
                update(articles)
                .where(where)
                .values(
                    url=url,
                    last_checked=capture_time,
                    version=version,
                    text_digest=text_digest,
                    text_key=text_key,
                    title=title,
                    published=published,
                )
            )
            return version, True

    def set_validators(self, entries: dict[str, tuple[str | None, str | None]], now: str) -> None:
        """Remember ETag/Last-Modified per URL (only after a crawl that lost nothing)."""
        with self._lock, self.engine.begin() as conn:
            for url, (etag, last_modified) in entries.items():
                values = {"etag": etag, "last_modified": last_modified, "updated": now}
                done = conn.execute(
                    update(validators).where(validators.c.url == url).values(**values)
                ).rowcount
                if not done:
                    conn.execute(insert(validators).values(url=url, **values))

    def get_validators(self, urls: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
        wanted = list(urls)
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(validators).where(validators.c.url.in_(wanted))).mappings()
            return {r["url"]: (r["etag"], r["last_modified"]) for r in rows}

    # -- reading ------------------------------------------------------------------------------
    def article(self, site: str, article_key: str) -> ArchivedArticle | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(articles).where(
                        and_(articles.c.site == site, articles.c.article_key == article_key)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else _row(ArchivedArticle, row)

    def known_keys(self, site: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(
                conn.execute(select(articles.c.article_key).where(articles.c.site == site))
                .scalars()
                .all()
            )

    def due_for_revision(
        self,
        site: str,
        now: datetime,
        ages: Sequence[timedelta] = DEFAULT_REVISION_AGES,
    ) -> list[ArchivedArticle]:
        """Articles past one of their revision ages and not checked since they reached it.

        An article first captured at F and last checked at C is due when, for some age A,
        F + A <= now and C < F + A. SQL narrows to articles past the smallest age; the exact
        test runs here, where times are times.
        """
        if not ages:
            return []
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(articles).where(
                        and_(
                            articles.c.site == site,
                            articles.c.first_captured <= iso(now - min(ages)),
                            articles.c.last_checked < iso(now),
                        )
                    )
                )
                .mappings()
                .all()
            )
        due = []
        for row in rows:
            first = _parse(row["first_captured"])
            checked = row["last_checked"]
            if any(first + age <= now and checked < iso(first + age) for age in ages):
                due.append(_row(ArchivedArticle, row))
        return due

    def captured_urls(self, site: str) -> set[bytes]:
        """The URLs of the site's earlier responses, as ``url_digest`` (8 bytes each): where a
        payload can equal an earlier capture's, so where a revisit lookup is worth a query."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(captures.c.url)
                .where(and_(captures.c.site == site, captures.c.record_type == "response"))
                .distinct()
            ).scalars()
            return {url_digest(url) for url in rows}

    def payload_capture(self, url: str, payload_digest: str) -> Capture | None:
        """The earliest response of this URL with this payload: what a revisit refers to."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(captures)
                    .where(
                        and_(
                            captures.c.url == url,
                            captures.c.payload_digest == payload_digest,
                            captures.c.record_type == "response",
                        )
                    )
                    .order_by(captures.c.capture_time)
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else _row(Capture, row)

    def captures(
        self,
        *,
        site: str | None = None,
        article_key: str | None = None,
        url: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Iterator[Capture]:
        query = select(captures)
        if site is not None:
            query = query.where(captures.c.site == site)
        if article_key is not None:
            query = query.where(captures.c.article_key == article_key)
        if url is not None:
            query = query.where(captures.c.url == url)
        if since is not None:
            query = query.where(captures.c.capture_time >= since)
        if until is not None:
            query = query.where(captures.c.capture_time < until)
        with self.engine.connect() as conn:
            for row in conn.execute(query.order_by(captures.c.capture_time)).mappings():
                yield _row(Capture, row)

    def add_captures(self, rows: Iterable[Capture]) -> int:
        """Many captures in one transaction; record ids already there are skipped."""
        batch = [asdict(row) for row in rows]
        if not batch:
            return 0
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(captures), batch)
            return len(batch)
        except IntegrityError:
            # Some were there (a re-run): one at a time, skipping those.
            return sum(self.add_capture(Capture(**row)) for row in batch)

    # -- job history --------------------------------------------------------------------------
    def start_run(self, run: Run) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(runs).values(**asdict(run)))

    def finish_run(self, run: Run) -> None:
        """Record how a run ended (inserted if its start was never recorded)."""
        values = {k: v for k, v in asdict(run).items() if k != "crawl_id"}
        with self.engine.begin() as conn:
            done = conn.execute(
                update(runs).where(runs.c.crawl_id == run.crawl_id).values(**values)
            ).rowcount
            if not done:
                conn.execute(insert(runs).values(**asdict(run)))

    def runs(self, site: str | None = None, limit: int = 20) -> list[Run]:
        """The latest runs, newest first."""
        query = select(runs).order_by(runs.c.started.desc(), runs.c.crawl_id.desc())
        if site is not None:
            query = query.where(runs.c.site == site)
        with self.engine.connect() as conn:
            return [_row(Run, r) for r in conn.execute(query.limit(limit)).mappings()]

    def last_runs(self) -> dict[str, Run]:
        """Each site's latest run."""
        latest = (
            select(runs.c.site, func.max(runs.c.started).label("started"))
            .group_by(runs.c.site)
            .subquery()
        )
        query = select(runs).join(
            latest, and_(runs.c.site == latest.c.site, runs.c.started == latest.c.started)
        )
        found: dict[str, Run] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query.order_by(runs.c.crawl_id)).mappings():
                found[row["site"]] = _row(Run, row)
        return found

    def failed_streaks(self, limit: int) -> dict[str, tuple[int, str | None]]:
        """Per site, how many of its latest runs failed in a row (up to ``limit``), and the
        newest failure's reason. A run still going is no failure and ends no streak."""
        found: dict[str, tuple[int, str | None]] = {}
        with self.engine.connect() as conn:
            sites = list(conn.execute(select(runs.c.site).distinct()).scalars())
        for site in sites:
            streak, reason = 0, None
            for run in self.runs(site, limit=limit + 1):
                if run.result == "running":
                    continue
                if run.result not in FAILED_RESULTS:
                    break
                streak += 1
                reason = reason or run.failure or run.result
            found[site] = (streak, reason)
        return found

    def beat(self, name: str, when: datetime) -> None:
        """A daemon's heartbeat (``name``: its host): the time it last checked in."""
        key, value = f"{HEARTBEAT_PREFIX}{name}"[:64], iso(when)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(catalog_info).where(catalog_info.c.name == key).values(value=value)
            ).rowcount
            if not done:
                conn.execute(insert(catalog_info).values(name=key, value=value))

    def heartbeats(self) -> dict[str, str]:
        """Every daemon's last heartbeat, by host."""
        query = select(catalog_info).where(catalog_info.c.name.startswith(HEARTBEAT_PREFIX))
        with self.engine.connect() as conn:
            return {
                row["name"].removeprefix(HEARTBEAT_PREFIX): row["value"]
                for row in conn.execute(query).mappings()
            }

    def first_runs(self) -> dict[str, str]:
        """Per site, when its first recorded run started."""
        query = select(runs.c.site, func.min(runs.c.started)).group_by(runs.c.site)
        with self.engine.connect() as conn:
            return {site: first for site, first in conn.execute(query)}

    def newest_articles(self) -> dict[str, str]:
        """Per site, when its newest article was first captured."""
        query = select(articles.c.site, func.max(articles.c.first_captured)).group_by(
            articles.c.site
        )
        with self.engine.connect() as conn:
            return {site: newest for site, newest in conn.execute(query)}


def _parse(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (researcher commands) never block the crawl's writes, and the reverse.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
