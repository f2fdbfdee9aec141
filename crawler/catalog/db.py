"""The catalog: every capture, where it lies, and each article's text versions.

SQLite under the store by default; any SQLAlchemy URL (PostgreSQL when several machines share
it). It knows nothing of Scrapy: the crawl writes to it, the researcher commands read it, and
it can be rebuilt from the store. Times are ISO 8601 UTC strings ("2026-11-23T14:00:00Z"),
which sort as times in every database.

Several processes on several machines may share one catalog, so nothing here relies on a lock
inside one process: every decision is one conditional write (a site's lease, a text's version)
whose row count says whether it won, and the schema is created and upgraded under a lock the
database holds (PostgreSQL's advisory lock, SQLite's write lock).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    false,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from crawler.constants import GONE_STATUSES
from crawler.util import date_precision

logger = logging.getLogger(__name__)

# 2: site leases. 3: every text version's words, its typed publication date, a full-text
# index over them and the links between articles of different sites that tell the same story.
# A catalog of a newer schema is refused by an older newsarchive, so a machine that knows no
# leases cannot crawl beside ones that take them.
SCHEMA_VERSION = 3
# The PostgreSQL advisory lock the schema is created and upgraded under ("newsarch").
SCHEMA_LOCK_KEY = 0x6E65_7773_6172_6368
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
    # Where the article's text and WARC wait for a remote store ("<host>:<spool>#<crawl id>"),
    # until its crawl or a drain of that spool has stored them; NULL: in the store.
    Column("waits_in", Text),
)

texts = Table(  # every text version of every article: what search, related and diff read
    "texts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("text_key", String(512), nullable=False, unique=True),
    Column("site", String(64), nullable=False),
    Column("article_key", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("text_digest", String(80), nullable=False),
    Column("captured", String(32), nullable=False),  # the first capture with this text
    Column("crawl_id", String(160)),
    Column("title", Text),
    Column("language", String(35)),
    # The publication date, typed: the moment in UTC when the page gave a time of day, the
    # publisher's calendar day always (a date-only value stays a date, never shifted by a
    # zone), and the text as the page wrote it with its precision (day, minute, second).
    Column("published_at", String(32)),
    Column("published_date", String(10)),
    Column("published_text", Text),
    Column("published_precision", String(8)),
    Column("words", Integer, nullable=False),
    # The scheme its story keys (text_bands, text_names) were made by; NULL: not made yet.
    Column("story_keys", String(64)),
    # The extraction that made it (crawler.text.extract.EXTRACTOR_VERSION) and the digest of
    # the site rules it used; NULL: made before they were recorded (version 0).
    Column("extractor_version", Integer),
    Column("rules_digest", String(80)),
    # The cleaned text as archived, last: a row's other columns are read without it.
    Column("body", Text, nullable=False),
)
Index("ix_texts_article", texts.c.site, texts.c.article_key, texts.c.version)
Index("ix_texts_published", texts.c.published_date)
Index("ix_texts_site_published", texts.c.site, texts.c.published_date)

text_bands = Table(  # MinHash LSH bands of each text: texts sharing a band are candidates
    "text_bands",
    metadata,
    Column("text_id", Integer, primary_key=True),
    Column("band", Integer, primary_key=True),
    Column("hash", BigInteger, nullable=False),
    Column("site", String(64), nullable=False),
)
Index("ix_text_bands_hash", text_bands.c.hash, text_bands.c.band)

text_names = Table(  # the proper names of each text: rewrites of one event share them
    "text_names",
    metadata,
    Column("text_id", Integer, primary_key=True),
    Column("key", BigInteger, primary_key=True),
    Column("site", String(64), nullable=False),
)
Index("ix_text_names_key", text_names.c.key)

text_links = Table(  # two texts of different sites that tell the same story, and how
    "text_links",
    metadata,
    Column("a_id", Integer, primary_key=True),  # a_id < b_id
    Column("b_id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # republication | near-duplicate | same-event
    Column("score", Float, nullable=False),
)
Index("ix_text_links_b", text_links.c.b_id)

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
    # NULL while running; for a run found dead, the last time it was known alive.
    Column("finished", String(32)),
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

site_leases = Table(  # who crawls a site now: one row per site, taken by a conditional write
    "site_leases",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("crawl_id", String(160), nullable=False),  # the holder (or the last one)
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("taken", String(32), nullable=False),
    Column("heartbeat", String(32), nullable=False),  # its last renewal
    Column("expires", String(32), nullable=False),
    Column("released", String(32)),  # NULL while held
    # The latest scheduled start a holder took it for: a due start runs once on N replicas.
    Column("last_start", String(40)),
)

HEARTBEAT_PREFIX = "heartbeat:"  # catalog_info names of the daemons' heartbeats
FAILED_RESULTS = ("failed", "timeout", "killed")  # run results that count as failures
PROCESS_GONE = "killed: its process was gone (its lease taken over on the same host)"
SKIPPED = "skipped"  # a start whose site's lease was held: made by another crawl

catalog_info = Table(
    "catalog_info",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


STORE_ID = "store_id"  # catalog_info names of the store the catalog describes
STORE_URI = "store_uri"
# Why a run row still `running` was marked `killed`.
LEASE_LOST = "its process stopped renewing its lease (killed or its machine lost)"
NO_LEASE = "its process holds no lease and never recorded its end (killed or its machine lost)"
# Conditional writes lost to another process are decided again, this many times at most.
ATTEMPTS = 10


class CatalogMismatch(ValueError):
    """The catalog describes another store than the one it was opened for."""


class CatalogConflict(RuntimeError):
    """Other processes kept winning the same conditional write (never seen in practice)."""


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
class TextFacts:
    """What the catalog keeps of a text beside its words: for search filters and links."""

    language: str | None = None
    published_text: str | None = None  # the publication date as the page wrote it
    crawl_id: str | None = None
    extractor_version: int | None = None  # None: made before versions were recorded
    rules_digest: str | None = None

    @classmethod
    def of_sidecar(cls, sidecar: Any) -> TextFacts:
        """The facts a text's JSON sidecar gives (a re-extracted text: its run's rules)."""
        again = sidecar.get("reextracted") or {}
        version = sidecar.get("extractor_version")
        return cls(
            language=sidecar.get("language"),
            published_text=sidecar.get("published_text"),
            crawl_id=sidecar.get("crawl_id"),
            extractor_version=int(version) if isinstance(version, int) else None,
            rules_digest=sidecar.get("rules_digest") or again.get("rules_digest"),
        )


@dataclass(frozen=True, slots=True)
class TextRow:
    """One row of ``texts``: a text version, its words and its typed publication date."""

    text_key: str
    site: str
    article_key: str
    version: int
    url: str
    text_digest: str
    captured: str
    title: str | None
    body: str
    words: int
    crawl_id: str | None = None
    language: str | None = None
    published_at: str | None = None
    published_date: str | None = None
    published_text: str | None = None
    published_precision: str | None = None
    extractor_version: int | None = None
    rules_digest: str | None = None

    @classmethod
    def of(
        cls,
        site: str,
        article_key: str,
        version: int,
        url: str,
        text_key: str,
        text_digest: str,
        captured: str,
        title: str | None,
        body: str,
        published: str | None,
        facts: TextFacts | None = None,
    ) -> TextRow:
        facts = facts or TextFacts()
        return cls(
            text_key=text_key,
            site=site,
            article_key=article_key,
            version=version,
            url=url,
            text_digest=text_digest,
            captured=captured,
            title=title,
            # PostgreSQL's text takes no NUL; the index needs none (the stored text keeps it).
            body=body.replace("\x00", ""),
            words=word_count(body),
            crawl_id=facts.crawl_id,
            language=facts.language,
            extractor_version=facts.extractor_version,
            rules_digest=facts.rules_digest,
            **published_fields(published, facts.published_text),
        )


@dataclass(frozen=True, slots=True)
class StoryKeys:
    """A text's story keys as crawler.text.similar makes them: its MinHash LSH bands
    (``(band, hash)`` pairs), its proper-name keys, and the scheme that made both."""

    bands: Sequence[tuple[int, int]]
    names: Sequence[int]
    scheme: str


@dataclass(frozen=True, slots=True)
class TextRecord:
    """One text for :meth:`Catalog.record_text` (or several for ``record_texts``): the article
    it is a text of, the capture it came from, and with ``body`` the text itself, which a new
    version adds to ``texts`` (``facts`` beside it, ``story_keys`` if made)."""

    site: str
    article_key: str
    url: str
    capture_time: str
    text_digest: str
    text_key: str
    title: str | None = None
    published: str | None = None
    waits_in: str | None = None
    body: str | None = None
    facts: TextFacts | None = None
    story_keys: StoryKeys | None = None


def _text_row(record: TextRecord, version: int, title: str | None) -> TextRow:
    assert record.body is not None
    return TextRow.of(
        record.site,
        record.article_key,
        version,
        record.url,
        record.text_key,
        record.text_digest,
        record.capture_time,
        title,
        record.body,
        record.published,
        record.facts,
    )


_TEXT_ROW_FIELDS = tuple(f.name for f in fields(TextRow))


# A driver's parameter marker, for the statements a text's 64 band rows go through: handing
# them to the driver's executemany as tuples costs half the CPU of SQLAlchemy's insert, which
# processes each row's parameters in Python (0.25 ms of each text's 0.5 on SQLite).
PARAM_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """``rows`` (values in ``columns``' order) into ``table`` in one executemany: as tuples
    to the driver where its parameter marker is known, else by SQLAlchemy's statement."""
    if not rows:
        return
    mark = PARAM_MARKS.get(str(conn.dialect.paramstyle))
    if mark is None:
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})",
        list(rows),
    )


def put_story_keys(
    conn: Connection, text_id: int, site: str, keys: StoryKeys, *, fresh: bool = False
) -> None:
    """Replace a text's story keys, in the caller's transaction (``texts.story_keys`` is the
    caller's to set). ``fresh``: the text's row was inserted in this transaction, so there
    are no keys to delete first (two statements fewer for each text a crawl records); a key
    row left under a reused id makes the insert fail on the primary key instead."""
    mark = PARAM_MARKS.get(str(conn.dialect.paramstyle))
    if not fresh:
        if mark is not None:
            conn.exec_driver_sql(f"DELETE FROM text_bands WHERE text_id = {mark}", (text_id,))
            conn.exec_driver_sql(f"DELETE FROM text_names WHERE text_id = {mark}", (text_id,))
        else:  # another driver's parameter style: SQLAlchemy's own statements
            conn.execute(text_bands.delete().where(text_bands.c.text_id == text_id))
            conn.execute(text_names.delete().where(text_names.c.text_id == text_id))
    insert_rows(
        conn,
        text_bands,
        ("text_id", "band", "hash", "site"),
        [(text_id, b, h, site) for b, h in keys.bands],
    )
    insert_rows(
        conn,
        text_names,
        ("text_id", "key", "site"),
        [(text_id, k, site) for k in sorted(set(keys.names))],
    )


# record_text's statements, built once: building them at each text (their clauses, their
# cache keys) cost a tenth of its CPU.
_ARTICLE = select(articles).where(
    articles.c.site == bindparam("site"), articles.c.article_key == bindparam("article_key")
)
_ADD_ARTICLE = insert(articles)
_TEXT_ID = select(texts.c.id).where(texts.c.text_key == bindparam("text_key"))
_ADD_TEXT = insert(texts)
# The conditional write of a later decision: it holds only while the article's row is still
# the version it was decided against (w_*: the row as read).
_UNCHANGED = and_(
    articles.c.site == bindparam("w_site"),
    articles.c.article_key == bindparam("w_article_key"),
    articles.c.version == bindparam("w_version"),
    articles.c.text_digest == bindparam("w_text_digest"),
)
_CHECKED = update(articles).where(_UNCHANGED).values(last_checked=bindparam("last_checked"))
_REVISED = (
    update(articles)
    .where(_UNCHANGED)
    .values(
        {
            name: bindparam(name)
            for name in (
                "last_checked",
                "url",
                "version",
                "text_digest",
                "text_key",
                "title",
                "published",
                "waits_in",
            )
        }
    )
)


class _LostWrite(Exception):
    """A conditional write of a batch lost to another process: the batch is undone."""


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


@dataclass(frozen=True, slots=True)
class Lease:
    """A site's lease row: who holds it (or held it last), from where, and until when."""

    site: str
    crawl_id: str
    host: str
    pid: int
    taken: str
    heartbeat: str
    expires: str
    released: str | None = None
    last_start: str | None = None

    def live(self, now: datetime) -> bool:
        """Held at ``now``: not released and not expired (it holds until ``expires``)."""
        return self.released is None and self.expires > iso(now)

    def describe(self) -> str:
        return f"crawl {self.crawl_id} on {self.host} (pid {self.pid})"


@dataclass(frozen=True, slots=True)
class LeaseResult:
    """What ``take_lease`` did: taken or not, and by whose account."""

    taken: bool
    # Taken: the lease as now held. Not taken: the current holder's lease (or, when the start
    # already ran, the lease of the crawl that took it for that start, released or not).
    lease: Lease
    took_over: Lease | None = None  # taken from this holder, which had stopped renewing it
    already_started: bool = False  # refused: this scheduled start was taken already

    def message(self) -> str:
        """One line for the log or the terminal."""
        lease = self.lease
        if self.taken and self.took_over is not None:
            old = self.took_over
            return (
                f"{lease.site}: took over the lease of {old.describe()}, "
                f"silent since {old.heartbeat}"
            )
        if self.taken:
            return f"{lease.site}: lease taken by {lease.describe()} until {lease.expires}"
        if self.already_started:
            return f"{lease.site}: start {lease.last_start} already taken by {lease.describe()}"
        return f"{lease.site}: held by {lease.describe()} until {lease.expires}"


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
        try:
            self._ensure_schema()
        except BaseException:
            if engine is None:
                self.engine.dispose()  # a catalog refused leaves no connection open
            raise

    # -- the schema ---------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        """Create missing tables and columns, once, however many processes start at once.

        A catalog already current is only read (a read-only file opens). Otherwise the work
        runs in one transaction under a lock the database holds: PostgreSQL's advisory lock,
        SQLite's write lock (BEGIN IMMEDIATE); whoever comes second finds it done.
        """
        with self.engine.connect() as conn:
            if self._schema_current(conn):
                return
        with self._schema_lock() as conn:
            metadata.create_all(conn)
            _add_missing_columns(conn)
            _create_search_index(conn)
            found = self._schema_version(conn)
            if found is None:
                conn.execute(
                    insert(catalog_info).values(name="schema_version", value=str(SCHEMA_VERSION))
                )
            elif found < SCHEMA_VERSION:
                conn.execute(
                    update(catalog_info)
                    .where(catalog_info.c.name == "schema_version")
                    .values(value=str(SCHEMA_VERSION))
                )
                logger.info("catalog %s: schema %s upgraded to %s", self, found, SCHEMA_VERSION)

    def _schema_current(self, conn: Connection) -> bool:
        inspector = inspect(conn)
        tables = set(inspector.get_table_names())
        for table in metadata.sorted_tables:
            if table.name not in tables:
                return False
            have = {c["name"] for c in inspector.get_columns(table.name)}
            if any(column.name not in have for column in table.columns):
                return False
        found = self._schema_version(conn)
        return found is not None and found >= SCHEMA_VERSION

    def _schema_version(self, conn: Connection) -> int | None:
        found = conn.execute(
            select(catalog_info.c.value).where(catalog_info.c.name == "schema_version")
        ).scalar()
        if found is not None and int(found) > SCHEMA_VERSION:
            raise ValueError(
                f"catalog {self} has schema {found}, newer than this newsarchive "
                f"({SCHEMA_VERSION}): upgrade newsarchive"
            )
        return None if found is None else int(found)

    @contextmanager
    def _schema_lock(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # Held to the end of the transaction, which also makes the DDL all or nothing.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            elif conn.dialect.name == "sqlite":
                # pysqlite begins no transaction for DDL by itself: this one takes the write
                # lock at once (waiting up to busy_timeout), so the check below runs alone.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
            conn.commit()

    def bound_queries(self, seconds: float) -> None:
        """Stop any statement of this catalog's connections after ``seconds`` (a read-only
        service's budget per query): PostgreSQL's ``statement_timeout``, SQLite's progress
        handler. A stopped statement raises ``QueryTooLong``'s OperationalError."""
        budget = max(0.001, seconds)
        self.engine.dispose()  # connections made from now on carry the bound
        if self.engine.dialect.name == "postgresql":
            millis = int(budget * 1000)

            @event.listens_for(self.engine, "connect")
            def _pg_timeout(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute(f"SET statement_timeout = {millis}")
                cursor.close()
                dbapi_connection.commit()

        elif self.engine.dialect.name == "sqlite":
            started: dict[int, float] = {}

            @event.listens_for(self.engine, "before_cursor_execute")
            def _start(conn: Any, *_args: Any) -> None:
                started[id(conn.connection.dbapi_connection)] = time.monotonic()

            @event.listens_for(self.engine, "connect")
            def _sqlite_budget(dbapi_connection: Any, _record: Any) -> None:
                key = id(dbapi_connection)

                def over() -> int:  # non-zero: SQLite interrupts the statement
                    return int(time.monotonic() - started.get(key, time.monotonic()) > budget)

                dbapi_connection.set_progress_handler(over, 20_000)

    def __str__(self) -> str:
        """The catalog's URL without its password."""
        return self.engine.url.render_as_string(hide_password=True)

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
        record: TextRecord,
    ) -> tuple[int, bool]:
        """The article's version for this text (:class:`TextRecord`), and whether it is new.

        With ``body`` (the text itself), a new version is also added to ``texts`` in the same
        transaction, so the full-text index never lags the versions (``facts``: its language,
        the publication date as written, the crawl), and with ``story_keys`` its keys too:
        one commit, and they are there for any text recorded after it to find.

        The first text of an article is version 1; a text whose digest differs from the current
        version's becomes the next version; the same text only marks the article checked.

        Safe across processes: the first version is claimed by the articles' primary key, every
        later decision by an UPDATE that holds only while the row is still the version it was
        decided against. A write lost to another process is decided again against its version.
        """
        for _attempt in range(ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    decided = self._record_in(conn, record)
                    if decided is not None:
                        return decided
            except IntegrityError:
                pass  # another process recorded the first version in between
            logger.debug("catalog: version of %s/%s decided again", record.site, record.article_key)
        raise CatalogConflict(
            f"the version of {record.site}/{record.article_key} changed {ATTEMPTS} times while "
            "deciding it"
        )

    def record_texts(self, records: Sequence[TextRecord]) -> list[tuple[int, bool]]:
        """Several texts as :meth:`record_text` records each, in one transaction (a group
        commit): their versions and whether each is new, in order.

        Each is decided as ``record_text`` decides it, by the same conditional writes, one after
        the other (a later one sees an earlier one's version). If any of them loses its write
        to another process, nothing of the batch is kept and each is recorded on its own, as
        ``record_text`` does, decided again against the version it lost to.
        """
        if not records:
            return []
        try:
            with self.engine.begin() as conn:
                decided = []
                for record in records:
                    one = self._record_in(conn, record, fresh=True)
                    if one is None:
                        raise _LostWrite
                    decided.append(one)
                return decided
        except (IntegrityError, _LostWrite):
            logger.debug("catalog: a batch of %d texts recorded one by one", len(records))
        return [self.record_text(record) for record in records]

    def _record_in(
        self, conn: Connection, record: TextRecord, *, fresh: bool = False
    ) -> tuple[int, bool] | None:
        """Decide and write one text's version in ``conn``'s transaction; None when another
        process changed the article's row since it was read (nothing was written).
        ``fresh``: a new text's story keys are inserted without first removing any under its
        new id (a batch; were one there, the batch fails and each text is recorded alone,
        which removes them)."""
        title = record.title
        if title:  # PostgreSQL's text takes no NUL (a hostile page's headline may hold one)
            title = title.replace("\x00", "")
        site, article_key, capture_time = record.site, record.article_key, record.capture_time
        current = conn.execute(_ARTICLE, {"site": site, "article_key": article_key}).first()
        if current is None:
            conn.execute(
                _ADD_ARTICLE,
                {
                    "site": site,
                    "article_key": article_key,
                    "url": record.url,
                    "first_captured": capture_time,
                    "last_checked": capture_time,
                    "version": 1,
                    "text_digest": record.text_digest,
                    "text_key": record.text_key,
                    "title": title,
                    "published": record.published,
                    "waits_in": record.waits_in,
                },
            )
            if record.body is not None:
                self._insert_text(conn, _text_row(record, 1, title), record.story_keys, fresh)
            return 1, True
        was = _row(ArchivedArticle, current._mapping)
        decision = decide_version(was, record.text_digest)
        # Never back in time: a text remade from an older capture (reextract) checks nothing
        # newer than the article's last check.
        checked = max(was.last_checked, capture_time)
        params: dict[str, Any] = {
            "w_site": site,
            "w_article_key": article_key,
            "w_version": was.version,
            "w_text_digest": was.text_digest,
            "last_checked": checked,
        }
        if not decision.new:
            return (decision.version, False) if conn.execute(_CHECKED, params).rowcount else None
        params.update(
            url=record.url,
            version=decision.version,
            text_digest=record.text_digest,
            text_key=record.text_key,
            title=title,
            published=record.published,
            waits_in=record.waits_in,
        )
        if not conn.execute(_REVISED, params).rowcount:
            return None
        if record.body is not None:
            row = _text_row(record, decision.version, title)
            self._insert_text(conn, row, record.story_keys, fresh)
        return decision.version, True

    @staticmethod
    def _insert_text(
        conn: Connection, row: TextRow, keys: StoryKeys | None = None, fresh: bool = False
    ) -> bool:
        """Add a text version unless its key is there already (a re-run, a reindex)."""
        found = conn.execute(_TEXT_ID, {"text_key": row.text_key}).first()
        if found is not None:
            return False
        values = {name: getattr(row, name) for name in _TEXT_ROW_FIELDS}
        if keys is not None:
            values["story_keys"] = keys.scheme
        added = conn.execute(_ADD_TEXT, values).inserted_primary_key
        if keys is not None:
            assert added is not None  # an INSERT of one row
            put_story_keys(conn, int(added[0]), row.site, keys, fresh=fresh)
        return True

    def add_text(self, row: TextRow) -> bool:
        """Add one text version (reindex); False when its key is known already."""
        with self.engine.begin() as conn:
            return self._insert_text(conn, row)

    def text_id(self, text_key: str) -> int | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(texts.c.id).where(texts.c.text_key == text_key)).scalar()
        return None if found is None else int(found)

    def text_lengths(self, site: str, limit: int = 200) -> list[int]:
        """Body characters (the text less its headline) of the site's latest ``limit`` texts:
        what the degenerate-text guard takes the site's usual size from (text/quality.py)."""
        # A page-mode text does not start with its headline: nothing to take off.
        title = texts.c.title
        headed = and_(title.is_not(None), func.substr(texts.c.body, 1, func.length(title)) == title)
        chars = func.length(texts.c.body) - case((headed, func.length(title)), else_=0)
        # The ids first (the site's index holds them), then only those rows' bodies: sorted
        # together, SQLite would read every body of the site for its 200 latest.
        latest = select(texts.c.id).where(texts.c.site == site)
        latest = latest.order_by(texts.c.id.desc()).limit(limit)
        query = select(chars).where(texts.c.id.in_(latest.scalar_subquery()))
        query = query.order_by(texts.c.id.desc())
        with self.engine.connect() as conn:
            return [max(int(n or 0), 0) for n in conn.execute(query).scalars()]

    def texts_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(texts)).scalar() or 0)

    def settle_waits(self, spool_id: str, still_waiting: Iterable[str]) -> int:
        """Articles whose objects waited in the spool ``spool_id`` (``…@<id>#<crawl id>``, on
        whichever host: a shared volume is one spool) and are stored now: every crawl of that
        spool but ``still_waiting`` (crawl ids with objects left there)."""
        keep = set(still_waiting)
        mark = f"@{spool_id}#"
        with self.engine.begin() as conn:
            places = conn.execute(
                select(articles.c.waits_in).where(articles.c.waits_in.like(f"%{mark}%")).distinct()
            ).scalars()
            done = [p for p in places if p.rsplit(mark, 1)[-1] not in keep]
            if not done:
                return 0
            return int(
                conn.execute(
                    update(articles).where(articles.c.waits_in.in_(done)).values(waits_in=None)
                ).rowcount
            )

    def waiting(self) -> dict[str, int]:
        """Articles not in the store yet, by the spool they wait in (``<host>:<path>``)."""
        query = (
            select(articles.c.waits_in, func.count())
            .where(articles.c.waits_in.is_not(None))
            .group_by(articles.c.waits_in)
        )
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            for place, count in conn.execute(query):
                spool = str(place).rsplit("#", 1)[0].rsplit("@", 1)[0]
                out[spool] = out.get(spool, 0) + int(count)
        return out

    def set_validators(self, entries: dict[str, tuple[str | None, str | None]], now: str) -> None:
        """Remember ETag/Last-Modified per URL (only after a crawl that lost nothing)."""
        for attempt in range(ATTEMPTS):
            try:
                with self._lock, self.engine.begin() as conn:
                    for url, (etag, last_modified) in entries.items():
                        values = {"etag": etag, "last_modified": last_modified, "updated": now}
                        done = conn.execute(
                            update(validators).where(validators.c.url == url).values(**values)
                        ).rowcount
                        if not done:
                            conn.execute(insert(validators).values(url=url, **values))
                return
            except IntegrityError:
                # Another process inserted one of these URLs in between: updated this time.
                if attempt == ATTEMPTS - 1:
                    raise

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

    def gone_keys(self, site: str) -> dict[str, str]:
        """The site's article keys gone at their last answer (``GONE_STATUSES``), each with the
        capture time of their latest gone answer: read from the captures, which hold them all.

        Only a later 2xx says an article came back. A redirect is no answer (a 301 to a 404
        ends in the 404), nor is a challenge page; a 503 or 429 passes, a 403 says we are
        blocked: none of them says the page is there again. Within one second the gone answer
        wins (a retried 503, then the 404).
        """
        gone = captures.c.status.in_(GONE_STATUSES)
        back = and_(captures.c.status >= 200, captures.c.status < 300)
        gone_at = func.max(case((gone, captures.c.capture_time)))
        back_at = func.max(case((back, captures.c.capture_time)))
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(captures.c.article_key, gone_at, back_at)
                .where(
                    and_(
                        captures.c.site == site,
                        captures.c.article_key.is_not(None),
                        captures.c.record_type.in_(("response", "revisit")),
                    )
                )
                .group_by(captures.c.article_key)
                .having(gone_at.is_not(None))
            ).all()
        return {key: at for key, at, came_back in rows if came_back is None or came_back <= at}

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
        """Each site's latest run (a start left to another crawl, ``skipped``, is none)."""
        made = or_(runs.c.result.is_(None), runs.c.result != SKIPPED)
        latest = (
            select(runs.c.site, func.max(runs.c.started).label("started"))
            .where(made)
            .group_by(runs.c.site)
            .subquery()
        )
        query = (
            select(runs)
            .where(made)
            .join(latest, and_(runs.c.site == latest.c.site, runs.c.started == latest.c.started))
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
                if run.result in ("running", SKIPPED):
                    continue
                if run.result not in FAILED_RESULTS:
                    break
                streak += 1
                reason = reason or run.failure or run.result
            found[site] = (streak, reason)
        return found

    def beat(self, name: str, when: datetime) -> None:
        """A daemon's heartbeat (``name``: its host): the time it last checked in."""
        self._put_info(f"{HEARTBEAT_PREFIX}{name}"[:64], iso(when))

    def forget_beat(self, name: str) -> None:
        """A daemon that stopped cleanly is no daemon to wait for (a replaced pod, say)."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(catalog_info).where(catalog_info.c.name == f"{HEARTBEAT_PREFIX}{name}"[:64])
            )

    def _put_info(self, name: str, value: str) -> None:
        for attempt in range(ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    done = conn.execute(
                        update(catalog_info).where(catalog_info.c.name == name).values(value=value)
                    ).rowcount
                    if not done:
                        conn.execute(insert(catalog_info).values(name=name, value=value))
                return
            except IntegrityError:
                # Another process inserted it in between: updated this time.
                if attempt == ATTEMPTS - 1:
                    raise

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

    # -- site leases --------------------------------------------------------------------------
    # A crawl of a site first takes the site's lease, renews it while crawling (well within its
    # ttl) and releases it at the end. A lease whose holder stopped renewing expires and is
    # taken over; the holder's run row, still `running`, is then marked `killed`. Runs with no
    # live lease and no sign of life for a ttl are marked by ``mark_dead_runs``, for a crawl's
    # start to call; it also ends the rows left `running` by crawls from before leases.

    def clock(self) -> datetime:
        """The time leases are judged by: PostgreSQL's clock when the catalog is shared (one
        clock for every machine, however theirs drift), this machine's for SQLite."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                found: datetime = conn.execute(select(func.now())).scalar_one()
            return found.astimezone(UTC)
        return datetime.now(UTC)

    def take_lease(
        self,
        site: str,
        *,
        crawl_id: str,
        host: str,
        pid: int,
        ttl: timedelta,
        now: datetime | None = None,
        start: str | None = None,
        gone: Callable[[Lease], bool] | None = None,
    ) -> LeaseResult:
        """Take the site's lease for this crawl, or learn who holds it.

        Taken when there is none, when it was released or expired (a take-over, logged, and
        the old holder's run marked `killed`), or when this crawl holds it already (a renewal).
        ``start`` is the scheduled start this crawl runs (any sortable token, e.g. its ISO
        time): a lease once taken for that start or a later one is refused to every other crawl
        (``already_started``), so replicas of a daemon run each due start once. Each attempt is
        one conditional write that holds only while the row is as it was read; a write lost to
        another process is judged again against that process's lease.
        ``gone``: whether a holder's process is known to have ended (on this host, its pid is
        no process): its lease is taken over at once instead of when it expires.
        """
        moment = now or self.clock()
        stamp, expires = iso(moment), iso(moment + ttl)
        current = None
        for _attempt in range(ATTEMPTS):
            current = self.lease(site)
            if current is None:
                lease = Lease(site, crawl_id, host, pid, stamp, stamp, expires, None, start)
                try:
                    with self.engine.begin() as conn:
                        conn.execute(insert(site_leases).values(**asdict(lease)))
                except IntegrityError:
                    continue  # another crawl made the row first
                return LeaseResult(True, lease)
            mine = current.crawl_id == crawl_id
            if (
                not mine
                and start is not None
                and current.last_start is not None
                and current.last_start >= start
            ):
                return LeaseResult(False, current, already_started=True)
            dead = not mine and current.live(moment) and gone is not None and gone(current)
            if not mine and current.live(moment) and not dead:
                return LeaseResult(False, current)
            held_on = mine and current.released is None
            lease = Lease(
                site,
                crawl_id,
                host,
                pid,
                current.taken if held_on else stamp,
                stamp,
                expires,
                None,
                max(start, current.last_start or "") if start is not None else current.last_start,
            )
            took_over = current if not mine and current.released is None else None
            with self.engine.begin() as conn:
                done = conn.execute(
                    update(site_leases)
                    .where(
                        site_leases.c.site == site,
                        site_leases.c.crawl_id == current.crawl_id,
                        site_leases.c.expires == current.expires,
                        _same(site_leases.c.released, current.released),
                        _same(site_leases.c.last_start, current.last_start),
                        or_(
                            site_leases.c.crawl_id == crawl_id,
                            site_leases.c.released.is_not(None),
                            site_leases.c.expires <= stamp,
                            true() if dead else false(),
                        ),
                    )
                    .values(**asdict(lease))
                ).rowcount
                if done and took_over is not None:
                    why = PROCESS_GONE if dead else LEASE_LOST
                    self._kill_run(conn, took_over.crawl_id, took_over.heartbeat, why)
            if done:
                result = LeaseResult(True, lease, took_over=took_over)
                if took_over is not None:
                    logger.warning("%s", result.message())
                return result
        assert current is not None  # every attempt read a row that changed before the write
        return LeaseResult(False, current)

    def renew_lease(
        self, site: str, crawl_id: str, ttl: timedelta, now: datetime | None = None
    ) -> bool:
        """Extend this crawl's lease by ``ttl`` from now; False when it is no longer this
        crawl's (taken over after it expired, or released)."""
        moment = now or self.clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(site_leases)
                .where(
                    site_leases.c.site == site,
                    site_leases.c.crawl_id == crawl_id,
                    site_leases.c.released.is_(None),
                )
                .values(heartbeat=iso(moment), expires=iso(moment + ttl))
            ).rowcount
        return bool(done)

    def release_lease(self, site: str, crawl_id: str, now: datetime | None = None) -> None:
        """Give the lease up (if this crawl still holds it): the site is free at once. The row
        stays, naming the last holder and the start it ran."""
        stamp = iso(now or self.clock())
        with self.engine.begin() as conn:
            conn.execute(
                update(site_leases)
                .where(
                    site_leases.c.site == site,
                    site_leases.c.crawl_id == crawl_id,
                    site_leases.c.released.is_(None),
                )
                .values(released=stamp, heartbeat=stamp, expires=stamp)
            )

    def lease(self, site: str) -> Lease | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(site_leases).where(site_leases.c.site == site)).mappings()
            found = row.first()
        return None if found is None else _row(Lease, found)

    def leases(self) -> list[Lease]:
        """Every site's lease, held or not (``Lease.live`` tells), by site."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(site_leases).order_by(site_leases.c.site)).mappings()
            return [_row(Lease, row) for row in rows]

    def mark_dead_runs(self, ttl: timedelta, now: datetime | None = None) -> list[str]:
        """Mark `killed` every run still `running` whose process is gone; their crawl ids.

        Gone: no live lease names its crawl, and its last sign of life (its start, or its
        lease's last heartbeat or release) is ``ttl`` old or older. A crawl that released its
        lease has that long to record its end. A run marked by mistake (a crawl that took no
        lease and ran past ``ttl``) is put right by its own ``finish_run``.
        """
        moment = now or self.clock()
        cutoff = iso(moment - ttl)
        query = (
            select(
                runs.c.crawl_id,
                runs.c.started,
                site_leases.c.heartbeat,
                site_leases.c.expires,
                site_leases.c.released,
            )
            .select_from(
                runs.outerjoin(
                    site_leases,
                    and_(
                        site_leases.c.site == runs.c.site,
                        site_leases.c.crawl_id == runs.c.crawl_id,
                    ),
                )
            )
            .where(runs.c.result == "running")
            .order_by(runs.c.started, runs.c.crawl_id)
        )
        killed = []
        with self.engine.begin() as conn:
            for row in conn.execute(query).mappings().all():
                held = row["heartbeat"] is not None
                if held and row["released"] is None and row["expires"] > iso(moment):
                    continue  # its lease is live
                last_seen = max(row["started"], row["heartbeat"] or "")
                if last_seen > cutoff:
                    continue
                reason = LEASE_LOST if held and row["released"] is None else NO_LEASE
                if self._kill_run(conn, row["crawl_id"], last_seen, reason):
                    killed.append((row["crawl_id"], reason))
        for crawl_id, reason in killed:
            logger.warning("run %s marked killed: %s", crawl_id, reason)
        return [crawl_id for crawl_id, _reason in killed]

    @staticmethod
    def _kill_run(conn: Connection, crawl_id: str, last_seen: str, reason: str) -> bool:
        """Mark a run still `running` as `killed` (a run that recorded its end is left)."""
        return bool(
            conn.execute(
                update(runs)
                .where(runs.c.crawl_id == crawl_id, runs.c.result == "running")
                .values(result="killed", finished=last_seen, failure=reason)
            ).rowcount
        )

    # -- the store the catalog describes ------------------------------------------------------
    def bind_store(self, store_id: str, store_uri: str) -> None:
        """Record which store this catalog describes, at its first use; refuse another.

        ``store_id`` is the id the store holds (made at its first crawl); ``store_uri`` where
        it was reached, kept up to date (the same store may move). Raises ``CatalogMismatch``
        when the catalog describes a store with another id.
        """
        for _attempt in range(ATTEMPTS):
            found = self.store_binding()
            if found is None:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(
                            insert(catalog_info),
                            [
                                {"name": STORE_ID, "value": store_id},
                                {"name": STORE_URI, "value": store_uri},
                            ],
                        )
                except IntegrityError:
                    continue  # bound by another process in between: compared with it
                return
            self.check_store(store_id, store_uri, found)
            if found[1] != store_uri:
                self._put_info(STORE_URI, store_uri)
            return
        raise CatalogConflict(f"the catalog {self}: its store binding kept changing")

    def check_store(
        self,
        store_id: str | None,
        store_uri: str,
        bound: tuple[str, str] | None = None,
    ) -> None:
        """``CatalogMismatch``, one line, when this catalog describes a store other than the
        one with ``store_id`` (None: a store with no id yet, so no store it describes)."""
        found = bound or self.store_binding()
        if found is not None and found[0] != store_id:
            raise CatalogMismatch(
                f"the catalog {self} describes the store {found[1]} (id {found[0]}), not "
                f"{store_uri} (id {store_id or 'none yet'}): give this store its own catalog"
            )

    def store_binding(self) -> tuple[str, str] | None:
        """(store id, store URI) of the store this catalog describes; None before its first
        crawl."""
        query = select(catalog_info).where(catalog_info.c.name.in_((STORE_ID, STORE_URI)))
        with self.engine.connect() as conn:
            found = {row["name"]: row["value"] for row in conn.execute(query).mappings()}
        if STORE_ID not in found:
            return None
        return found[STORE_ID], found.get(STORE_URI, "")


def _parse(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _add_missing_columns(conn: Connection) -> None:
    """The upgrade of a catalog made by an older newsarchive: columns added since, as NULL.

    Runs under the schema lock. A new column must be nullable (or the upgrade needs more than
    this step); a new table is made by ``create_all``.
    """
    inspector = inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    for table in metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            if not column.nullable:
                raise ValueError(
                    f"catalog table {table.name} lacks the column {column.name}, which cannot "
                    "be added to existing rows: rebuild the catalog (newsarchive reindex)"
                )
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(
                f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
            )
            logger.info("catalog: column %s.%s added", table.name, column.name)


# The full-text index over ``texts``: words as written (Unicode case and diacritics folded, no
# stemming), the same on both databases, so a query finds the same texts on either.
_SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS texts_fts USING fts5(title, body, content='texts', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS texts_fts_insert AFTER INSERT ON texts BEGIN "
    "INSERT INTO texts_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER IF NOT EXISTS texts_fts_delete AFTER DELETE ON texts BEGIN "
    "INSERT INTO texts_fts(texts_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER IF NOT EXISTS texts_fts_update AFTER UPDATE OF title, body ON texts BEGIN "
    "INSERT INTO texts_fts(texts_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO texts_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
)
# PostgreSQL: a GIN index over the same expression the search query uses (catalog/search.py).
SEARCH_VECTOR = "to_tsvector('simple', coalesce(title, '') || ' ' || body)"
_POSTGRES_SEARCH = (
    f"CREATE INDEX IF NOT EXISTS ix_texts_search ON texts USING GIN ({SEARCH_VECTOR})",
)


def _create_search_index(conn: Connection) -> None:
    """The database's own full-text index over ``texts``, kept up to date as rows are added."""
    statements = {"sqlite": _SQLITE_SEARCH, "postgresql": _POSTGRES_SEARCH}
    for statement in statements.get(conn.dialect.name, ()):
        conn.exec_driver_sql(statement)


def published_fields(published: str | None, text: str | None = None) -> dict[str, str | None]:
    """A publication date typed for the catalog from the sidecar's ISO value and the text the
    page wrote: ``published_at`` (UTC, when a time of day is known), ``published_date`` (the
    publisher's calendar day), ``published_text`` and ``published_precision``.

    A sidecar made before the page's text was kept has only the ISO value: midnight there is
    taken for a date without time (that is what date-only values were stored as).
    """
    empty: dict[str, str | None] = {
        "published_at": None,
        "published_date": None,
        "published_text": text,
        "published_precision": None,
    }
    if not published:
        return empty
    try:
        moment = datetime.fromisoformat(published)
    except ValueError:
        return empty
    if text:
        precision = date_precision(text) or "day"
    else:
        precision = "day" if moment.time() == datetime.min.time() else "second"
        text = published
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return {
        "published_at": None if precision == "day" else iso(moment),
        "published_date": moment.date().isoformat(),
        "published_text": text,
        "published_precision": precision,
    }


def word_count(body: str) -> int:
    return len(body.split())


def _same(column: Any, value: object) -> ColumnElement[bool]:
    """``column = value`` where NULL equals NULL: a compare-and-set on a nullable column."""
    if value is None:
        result: ColumnElement[bool] = column.is_(None)
        return result
    return column == value  # type: ignore[no-any-return]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # First: switching to WAL takes a lock too, and processes opening a new catalog at once
    # must wait for each other rather than fail.
    cursor.execute("PRAGMA busy_timeout=30000")
    # WAL: readers (researcher commands) never block the crawl's writes, and the reverse.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
