"""Text remade from the archive's WARCs with today's extraction: the engine of ``newsarchive
reextract`` (issue 21).

For each selected article, its latest capture that has text (a revisit: the response it refers
to) is read from its WARC file by byte range, its payload checked against the record's
``WARC-Payload-Digest``, its content coding undone and decoded as the crawl decodes it, and
extracted with the site rules given. A text equal to the article's current version is only
marked checked; a different one becomes the next version, written as the crawl writes one:
text and sidecar (with a ``reextracted`` block of provenance) in the store, ``conversion`` and
``metadata`` records in a WARC file of the run's own (the original WARCs are never rewritten),
the version and its words in the catalog, its story linked. At the end the run writes what a
crawl writes for the views: CDXJ, a Parquet capture index of the texts it changed, a WACZ and
a manifest, so ``newsarchive reindex`` from the store alone finds the same versions.

Reading, checking and extracting run in a process pool, one task per WARC file (or a slice of
a big one), each file opened once per task; this process alone writes (store, WARC, catalog).
Every decision is checkpointed in the catalog (``crawler.catalog.checkpoints``): the same
selection started again resumes the unfinished run and never writes a version twice.

No Scrapy here: the command gives the site rules (from the spiders) to the constructor.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import secrets
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import SQLAlchemyError

from crawler import __version__
from crawler.access import table
from crawler.access.indexes import merged_cdxj, pages_jsonl, write_wacz
from crawler.access.query import Listing
from crawler.access.records import (
    CAPTURE_TYPES,
    Location,
    add_linked,
    ensure_tables,
    index_warc,
    linked_for_many,
    open_object,
)
from crawler.access.stories import link_text
from crawler.capture.exchange import TEXT_URI_PREFIX
from crawler.capture.records import RecordBuilder, WarcRecord
from crawler.capture.writer import WarcFileWriter, recover_open_files
from crawler.catalog.checkpoints import Checkpoints, DoneRow, RunRow
from crawler.catalog.db import (
    ArchivedArticle,
    Capture,
    Catalog,
    CatalogConflict,
    TextFacts,
    TextRecord,
    articles,
    captures,
    iso,
    texts,
)
from crawler.crawl.reextract_worker import (
    Done,
    Extracted,
    GroupTask,
    Place,
    RecordReader,
    RecordTask,
    pack,
    ready,
    start_worker,
    work,
)
from crawler.crawl.sidecar import text_sidecar
from crawler.layout import (
    WARC_GZ_SUFFIX,
    cdxj_key,
    manifest_key,
    parquet_key,
    sidecar_key,
    spool_dir_for,
    text_key,
    wacz_key,
    warc_key,
    warc_spool_dir,
)
from crawler.store.base import Store, StoreConflictError, StoredObject, StoreError, local_root
from crawler.text.extract import (
    EXTRACTOR_VERSION,
    SiteRules,
    rules_digest,
)
from crawler.text.quality import DegenerateGuard, TextLimits
from crawler.util import json_bytes

logger = logging.getLogger(__name__)

# Why a record gave no text, as the summary names it.
REASONS: Mapping[str, str] = {
    "missing-warc": "WARC file not in the store",
    "object-gone": "WARC object gone from the store",
    "store-error": "the store did not answer",
    "corrupt-record": "no readable record of that capture at its place",
    "truncated": "the response was cut short when captured",
    "digest-mismatch": "payload fails its WARC-Payload-Digest",
    "no-digest": "no payload digest to check the record by",
    "content-coding": "Content-Encoding does not undo",
    "extraction-error": "no text extracted",
    "bad-content-coding": "Content-Encoding data corrupt or failing its checksum",
    "degenerate": "the text is far below the site's usual size (kept as it was)",
    "missing-original": "a revisit whose response the catalog does not know",
    "no-article": "the catalog has no article row for it",
    "conflict": "another writer made that version first",
    "catalog-error": "the catalog refused the write",
    "worker-crashed": "its worker process died",
}
KEPT_FAILURES = 1000  # failures listed by name in a summary (all are counted)
_NAMESPACE = uuid.UUID("6f1d3c0e-2b8a-5a57-9a6e-2d1f1c0de021")  # of the run's record ids
# Checkpoint rows are written at least this often, and every _FLUSH_SECONDS: a commit costs a
# disk flush (a millisecond here), a kill costs at most that much work done again.
_FLUSH_ROWS = 1000
_FLUSH_SECONDS = 2.0


class ReextractError(Exception):
    """A run that cannot start as asked (a bad selection, a run that cannot be resumed)."""


# -- what to re-extract --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Selection:
    """Which articles a run takes: each one's latest capture with text among the captures
    every filter given admits (none: every article of the catalog)."""

    sites: tuple[str, ...] = ()
    url_prefix: str | None = None
    since: str | None = None  # capture time, catalog format, inclusive
    until: str | None = None  # exclusive
    crawl_id: str | None = None
    extractor_below: int | None = None  # texts made by an older extractor (NULL: version 0)
    shard: tuple[int, int] | None = None  # (i, n), 1 <= i <= n: the i-th of n disjoint parts
    limit: int | None = None
    # Only these captures (a replay's articles whose text differs: ``crawl --write``).
    record_ids: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["sites"] = sorted(self.sites)
        out["shard"] = list(self.shard) if self.shard else None
        if self.record_ids:
            out["record_ids"] = sorted(self.record_ids)
        else:  # as before there were any: an older run's fingerprint stays the same
            del out["record_ids"]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Selection:
        shard = data.get("shard")
        return cls(
            sites=tuple(data.get("sites") or ()),
            url_prefix=data.get("url_prefix"),
            since=data.get("since"),
            until=data.get("until"),
            crawl_id=data.get("crawl_id"),
            extractor_below=data.get("extractor_below"),
            shard=(int(shard[0]), int(shard[1])) if shard else None,
            limit=data.get("limit"),
            record_ids=tuple(data.get("record_ids") or ()),
        )

    def describe(self) -> str:
        parts = [f"site {', '.join(self.sites)}" if self.sites else "every site"]
        if self.url_prefix:
            parts.append(f"URLs starting {self.url_prefix}")
        if self.crawl_id:
            parts.append(f"crawl {self.crawl_id}")
        if self.since or self.until:
            parts.append(f"captured {self.since or 'any time'} .. {self.until or 'now'}")
        if self.extractor_below is not None:
            parts.append(f"texts of extractor versions below {self.extractor_below}")
        if self.shard:
            parts.append(f"shard {self.shard[0]}/{self.shard[1]}")
        if self.limit is not None:
            parts.append(f"at most {self.limit}")
        if self.record_ids:
            parts.append(f"{len(self.record_ids)} chosen captures")
        return "; ".join(parts)


# A pool's tasks: about this many a worker, of about equal work, so that the last one to finish
# leaves the others idle for a small part of the run (14 tasks of up to 256 records for two
# workers left one idle for up to a tenth of the mirror bench's run); and at least this many
# records each, so that a task's cost (a file opened, a round trip) stays small beside its work.
_TASKS_PER_WORKER = 24
_TASK_RECORDS = (8, 256)


def slice_tasks(groups: Mapping[str, Sequence[RecordTask]], workers: int) -> list[GroupTask]:
    """Each WARC file's records in offset order, cut into tasks of about equal bytes to read
    (extraction's cost grows with the page): ``_TASKS_PER_WORKER`` a worker, none of more
    than 256 records or (unless its file has fewer) fewer than 8. One worker: 256 a task."""
    low, high = _TASK_RECORDS
    total = sum(r.read.length for records in groups.values() for r in records)
    budget = total / (workers * _TASKS_PER_WORKER) if workers > 1 else float("inf")
    tasks = []
    for key in sorted(groups):
        records = sorted(groups[key], key=lambda r: r.read.offset)
        start, size = 0, 0
        for end, record in enumerate(records, 1):
            size += record.read.length
            if end - start >= high or (end - start >= low and size >= budget):
                tasks.append(GroupTask(key, tuple(records[start:end])))
                start, size = end, 0
        if start < len(records):
            tasks.append(GroupTask(key, tuple(records[start:])))
    return tasks


def shard_of(site: str, article_key: str, count: int) -> int:
    """The shard (1..count) an article belongs to: stable across machines and runs."""
    digest = hashlib.sha256(f"{site}:{article_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


@dataclass(frozen=True, slots=True)
class Item:
    """One article to re-extract: the capture chosen, the response holding its payload (the
    capture itself, or the response a revisit refers to; None: unknown) and, for a page the
    crawl rendered, the DOM its text was made from (the capture's first ``resource``)."""

    capture: Capture
    source: Capture | None
    dom: Location | None = None
    current: ArchivedArticle | None = None  # the article's current version, when selected

    @property
    def record_id(self) -> str:
        return self.capture.record_id


_CAPTURE_FIELDS = tuple(Capture.__dataclass_fields__)
_ARTICLE_FIELDS = tuple(ArchivedArticle.__dataclass_fields__)


def select_items(catalog: Catalog, selection: Selection) -> list[Item]:
    """Each selected article's latest capture with text, by site and article key."""
    ensure_tables(catalog.engine)  # where a capture's other records lie (a DOM among them)
    c = captures.c
    listing = Listing(
        tuple(selection.sites),
        selection.url_prefix,
        selection.crawl_id,
        selection.since,
        selection.until,
    )
    # Each article's latest capture: the one no other follows in (capture time, id) order.
    # Only ids go through the window, in the order the index on (site, article key, capture
    # time) keeps with the id as its rowid (SQLite), and the rows are then read by id: a
    # quarter less than ranking whole rows by time and id descending.
    following = (
        func.lead(c.id)
        .over(partition_by=(c.site, c.article_key), order_by=(c.capture_time, c.id))
        .label("following")
    )
    inner = (
        select(c.id, following)
        .where(
            and_(
                c.article_key.is_not(None),
                c.text_key.is_not(None),
                c.record_type.in_(CAPTURE_TYPES),
                *listing.conditions(),
                # Chosen captures are ranked among themselves: each is the one taken.
                *([c.record_id.in_(selection.record_ids)] if selection.record_ids else []),
            )
        )
        .subquery()
    )
    # The columns in Capture's order, then the article's (its current version, joined here
    # rather than asked for 500 keys at a time): rows become both without a dict each.
    joined = captures.join(inner, c.id == inner.c.id).outerjoin(
        articles,
        and_(articles.c.site == c.site, articles.c.article_key == c.article_key),
    )
    query = select(
        *(c[name] for name in _CAPTURE_FIELDS),
        *(articles.c[name] for name in _ARTICLE_FIELDS),
    ).where(inner.c.following.is_(None))
    if selection.extractor_below is not None:
        joined = joined.outerjoin(texts, texts.c.text_key == c.text_key)
        query = query.where(func.coalesce(texts.c.extractor_version, 0) < selection.extractor_below)
    query = query.select_from(joined).order_by(c.site, c.article_key)
    width = len(_CAPTURE_FIELDS)
    rows: list[Capture] = []
    current: dict[tuple[str, str], ArchivedArticle] = {}
    with catalog.engine.connect() as conn:
        for r in conn.execute(query):
            row = Capture(*r[:width])
            rows.append(row)
            if r[width] is not None:  # the article's site: it has a row
                current[(row.site, str(row.article_key))] = ArchivedArticle(*r[width:])
    if selection.shard is not None:
        index, count = selection.shard
        rows = [r for r in rows if shard_of(r.site, str(r.article_key), count) == index]
    # A rendered page: its DOM is the first resource the browser wrote beside it (only those
    # are read: a capture's request and metadata records are no business of this).
    doms: dict[str, Location] = {}
    ids = [r.record_id for r in rows]
    for start in range(0, len(ids), 500):
        found = linked_for_many(catalog.engine, ids[start : start + 500], "resource")
        doms.update((capture, places[0]) for capture, places in found.items() if places)
    items = []
    for row in rows:
        source: Capture | None = row
        if row.record_type == "revisit":
            source = (
                catalog.payload_capture(row.url, row.payload_digest) if row.payload_digest else None
            )
        known = current.get((row.site, str(row.article_key)))
        items.append(Item(row, source, doms.get(row.record_id), known))
    return items


# -- the run's account --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    site: str
    article_key: str
    record_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class Change:
    site: str
    article_key: str
    url: str
    old_version: int
    new_version: int
    text_key: str


@dataclass(frozen=True, slots=True)
class Example:
    """A change a dry run shows as a word diff."""

    change: Change
    old_text: str
    new_text: str


@dataclass
class Summary:
    selected: int = 0
    skipped: int = 0  # decided by an earlier start of a resumed run
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    reads: int = 0  # records read by byte range
    bytes_read: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    stopped: bool = False  # asked to stop: the runs are left to resume
    runs: dict[str, str] = field(default_factory=dict)  # site -> run id
    resumed: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    by_reason: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.changed + self.unchanged + self.failed

    def counts(self) -> dict[str, Any]:
        return {
            "selected": self.selected,
            "skipped": self.skipped,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "failed_by_reason": dict(sorted(self.by_reason.items())),
            "ranged_reads": self.reads,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
        }


ProgressCallback = Callable[[Summary], None]


@dataclass
class _SiteRun:
    """One site's run: its id, its WARC writer, what it changed."""

    run_id: str
    site: str
    started: str
    spool: Path
    resumed: bool = False
    writer: WarcFileWriter | None = None
    # Conversion and metadata records a killed start left in its WARC files, by the id of
    # the conversion: found there, they are not written again.
    recovered: dict[str, list[Location]] = field(default_factory=dict)
    intents: dict[str, DoneRow] = field(default_factory=dict)
    objects: dict[str, StoredObject] = field(default_factory=dict)  # texts and sidecars
    cached: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)  # key: car, text
    summary: Summary = field(default_factory=Summary)


def new_run_id(site: str, now: datetime | None = None) -> str:
    """``<site>-reextract-<YYYYMMDDTHHMMSSZ>-<token>``."""
    now = now or datetime.now(UTC)
    return f"{site}-reextract-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _record_ids(run_id: str, record_id: str) -> tuple[str, str]:
    """The ids of the conversion and metadata records a run writes for a capture: the same
    every time, so a resumed run finds what its killed start wrote."""
    return tuple(  # type: ignore[return-value]
        f"<urn:uuid:{uuid.uuid5(_NAMESPACE, f'{run_id} {record_id} {kind}')}>"
        for kind in ("conversion", "metadata")
    )


_clock: list[tuple[int, str]] = [(0, "")]


def _now() -> str:
    """The catalog's time of now (to the second: one formatting a second, not a record)."""
    second = int(time.time())
    if _clock[0][0] != second:
        _clock[0] = (second, iso(datetime.now(UTC)))
    return _clock[0][1]


class _Workers:
    """A run's process pool: started in a thread of its own as the run starts, so that its
    processes come up (the forkserver importing the extractor, a fork each) while this process
    reads the selection from the catalog; a pool that breaks is replaced by a new one."""

    def __init__(self, owner: Reextractor) -> None:
        # A fresh process per worker, not a fork of this one: its threads (the WARC writer's,
        # the database's) hold locks a fork would copy held.
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["crawler.crawl.reextract_worker"])
        self.alive, self.keep = self.context.Pipe(duplex=False)
        self.count = owner.workers
        self.initargs = (owner.store.uri, owner.store_options, owner.rules, owner.mode, self.alive)
        self._early: cf.ProcessPoolExecutor | None = None
        self._ready: list[cf.Future[None]] = []
        self._failed = False
        self._starting: threading.Thread | None = None

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            self.count,
            mp_context=self.context,
            initializer=start_worker,
            initargs=self.initargs,
        )

    def start(self) -> None:
        """Start the first pool's processes in the background."""

        def starting() -> None:
            pool = self.new_pool()
            self._early = pool
            # A task each (submitting one starts a process while none is idle).
            try:
                self._ready = [pool.submit(ready) for _ in range(self.count)]
            except Exception:  # a pool that cannot start: a new one fails where it is used
                self._ready = []
                self._failed = True

        self._starting = threading.Thread(target=starting, name="reextract-pool-start")
        self._starting.start()

    def take_pool(self) -> cf.ProcessPoolExecutor | None:
        """The pool started early, once (None: none, taken, or broken as it started)."""
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        pool, self._early = self._early, None
        if pool is not None and (
            self._failed or any(f.done() and f.exception() is not None for f in self._ready)
        ):
            pool.shutdown(wait=False, cancel_futures=True)
            return None
        return pool

    def close(self) -> None:
        pool = self.take_pool()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        # The pool processes watch this pipe: they exit when it closes.
        self.keep.close()
        self.alive.close()


class Reextractor:
    """Re-extracts a selection of the archive; the one writer of its runs.

    ``rules``: each site's rules (the spiders' ``rules``); ``mode``: ``article`` or ``page``
    (``ARCHIVE_TEXT_MODE``); ``workers``: processes reading and extracting (1: this one);
    ``store_options``: what the workers need to open the store again (``AWS_*`` …).
    """

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        rules: Mapping[str, SiteRules],
        *,
        mode: str = "article",
        workers: int = 1,
        store_options: Mapping[str, object] | None = None,
        spool_dir: Path | None = None,
        progress: ProgressCallback | None = None,
        examples: int = 3,
        host: str | None = None,
        limits: TextLimits | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.store = store
        self.catalog = catalog
        self.rules = dict(rules)
        self.mode = mode
        self.workers = workers
        self.store_options = dict(store_options or {})
        self.spool = spool_dir_for(local_root(store), spool_dir)
        self.progress = progress
        self.examples = examples
        self.host = host or socket.gethostname()
        self.checkpoints = Checkpoints(catalog.engine)
        # The crawl's degenerate-text rule, each site measured by its texts in the catalog: a
        # remade text far below the site's usual size is no new version (reason "degenerate").
        self.guard = DegenerateGuard(limits or TextLimits(), catalog.text_lengths)
        self._stop = False
        self._rows: list[DoneRow] = []
        self._flushed = time.monotonic()
        # Records with a ``writing`` row: their next row replaces it (the rest are inserted).
        self._replace: set[str] = set()
        self._resuming: RunRow | None = None  # the run --resume names
        # CPU seconds each pool process spent on its tasks in the last run (by process id):
        # how evenly the work was shared, whatever else the machine was doing.
        self.worker_cpu: dict[int, float] = {}

    def stop(self) -> None:
        """Finish the records in hand and stop; the runs stay unfinished, to resume."""
        self._stop = True

    # -- the selection's identity -------------------------------------------------------------
    def fingerprint(self, selection: Selection) -> str:
        """What makes two starts the same run: the selection, the text mode, the extractor
        version and the rules of the sites it covers."""
        sites = selection.sites or tuple(sorted(self.rules))
        body = {
            "selection": selection.as_json(),
            "mode": self.mode,
            "extractor_version": EXTRACTOR_VERSION,
            "rules": {site: rules_digest(self.rules.get(site)) for site in sorted(sites)},
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]

    def resumable(self, run_id: str) -> Selection:
        """The selection of an unfinished run, to start it again (``--resume``)."""
        run = self.checkpoints.run(run_id)
        self._resuming = run
        if run is None:
            raise ReextractError(f"no reextract run {run_id!r} in the catalog {self.catalog}")
        if run.finished is not None:
            raise ReextractError(f"the run {run_id} finished at {run.finished}: nothing to resume")
        selection = Selection.from_json(json.loads(run.selection))
        if self.fingerprint(selection) != run.fingerprint:
            raise ReextractError(
                f"the run {run_id} was started with other site rules, text mode or extractor "
                "version: its versions would mix two extractions; start a new run instead"
            )
        return selection

    def _elsewhere(self, row: RunRow) -> tuple[bool, str] | None:
        """Why this host cannot take over an unfinished run another host started (whether
        new versions wait in that host's spool, and one line), or None.

        Its new versions' conversion records lie in WARC files that host's spool holds until
        the run ends: taken over here, they would never reach the store (and a version being
        written would be written again). A run that wrote nothing yet may be running there
        still: only ``--resume RUN_ID`` takes it over."""
        changed = [
            {str(place["warc_key"]) for place in done.record_places()}
            for done in self.checkpoints.done([row.run_id], "changed").values()
        ]
        missing = {key for key in set().union(*changed) if self.store.head(key) is None}
        waiting = len(self.checkpoints.done([row.run_id], "writing"))
        waiting += sum(1 for keys in changed if keys & missing)
        where = f"host {row.host} (pid {row.pid}, started {row.started})"
        if waiting:
            return True, (
                f"the run {row.run_id} of this selection was started on {where} and left "
                f"{waiting} new versions whose WARC records wait in that host's spool: resume "
                f"it there (newsarchive reextract --resume {row.run_id})"
            )
        named = self._resuming
        if named is not None and (named.host, named.pid, named.fingerprint) == (
            row.host,
            row.pid,
            row.fingerprint,
        ):
            return None  # the run named, or another site's of the same start
        return False, (
            f"the run {row.run_id} of this selection is unfinished on {where}: resume it there, "
            f"or here with --resume {row.run_id} if it is no longer running there"
        )

    def _spooled_here(self, row: RunRow) -> bool:
        spool = warc_spool_dir(self.spool, row.site, row.run_id)
        return spool.is_dir() and any(spool.iterdir())

    # -- the run ------------------------------------------------------------------------------
    def run(self, selection: Selection, *, dry_run: bool = False) -> Summary:
        with _frozen():
            if self.workers == 1:
                return self._run(selection, dry_run, None)
            with _Workers(self) as workers:
                workers.start()
                return self._run(selection, dry_run, workers)

    def _run(self, selection: Selection, dry_run: bool, workers: _Workers | None) -> Summary:
        t0 = time.monotonic()
        self.worker_cpu = {}
        summary = Summary(dry_run=dry_run)
        unknown = [s for s in selection.sites if s not in self.rules]
        if unknown:
            logger.warning("no site rules for %s: generic extraction", ", ".join(unknown))
        items = select_items(self.catalog, selection)
        fingerprint = self.fingerprint(selection)
        open_runs: dict[str, RunRow] = {}
        problems: list[tuple[bool, str]] = []
        unfinished = [] if dry_run else self.checkpoints.unfinished(fingerprint)
        # Starts whose spool is this host's too (a shared volume, a host renamed): any of
        # their runs' WARC files is here.
        shared = {(r.host, r.pid) for r in unfinished if self._spooled_here(r)}
        for row in unfinished:
            if row.host == self.host and row.pid and row.pid != os.getpid() and _alive(row.pid):
                raise ReextractError(
                    f"the run {row.run_id} of this selection is running now (pid {row.pid} "
                    "on this host): let it finish, or stop it (it resumes when started again)"
                )
            if row.host and row.host != self.host and (row.host, row.pid) not in shared:
                problem = self._elsewhere(row)
                if problem is not None:
                    problems.append(problem)
            open_runs.setdefault(row.site, row)
        if problems:
            # Versions stranded in another host's spool are the news worth the one line.
            raise ReextractError(max(problems, key=lambda p: p[0])[1])
        done = self.checkpoints.done(r.run_id for r in open_runs.values())
        final = {k: v for k, v in done.items() if v.outcome != "writing"}
        todo = [i for i in items if i.record_id not in final]
        if selection.limit is not None:
            todo = todo[: max(0, selection.limit - len(final))]
        summary.skipped = len(final)
        summary.selected = len(todo) + len(final)
        runs: dict[str, _SiteRun] = {}
        sites = sorted({i.capture.site for i in todo} | set(open_runs))
        for site in sites:
            runs[site] = self._open_run(site, selection, fingerprint, open_runs.get(site), dry_run)
            if not dry_run:
                summary.runs[site] = runs[site].run_id
            runs[site].summary.selected = sum(1 for i in todo if i.capture.site == site) + sum(
                1 for r in final.values() if r.run_id == runs[site].run_id
            )
            if runs[site].resumed:
                summary.resumed.append(runs[site].run_id)
        for intent in done.values():
            if intent.outcome == "writing":
                self._replace.add(intent.record_id)
                for run in runs.values():
                    if intent.run_id == run.run_id:
                        run.intents[intent.record_id] = intent
        by_id = {i.record_id: i for i in todo}

        def take(got: Extracted) -> None:
            item = by_id[got.record_id]
            run = runs[item.capture.site]
            summary.reads += got.reads
            summary.bytes_read += got.bytes_read
            run.summary.reads += got.reads
            run.summary.bytes_read += got.bytes_read
            self._take(run, item, got, summary, dry_run)
            self._flush()
            summary.seconds = time.monotonic() - t0
            if self.progress is not None:
                self.progress(summary)

        missing = [i for i in todo if i.source is None]
        for item in missing:
            take(
                Extracted(
                    item.record_id,
                    "missing-original",
                    f"{item.capture.url} revisit {item.record_id}",
                )
            )
        try:
            intents = {k for run in runs.values() for k in run.intents}
            tasks = self._tasks([i for i in todo if i.source is not None], intents)
            gc.freeze()  # the selection and its tasks live as long as the run (_frozen)
            self._dispatch(tasks, take, workers)
        finally:
            self._flush(force=True)
            for run in runs.values():
                if run.writer is not None:
                    run.writer.close()
        if not dry_run and not self._stop:
            for run in runs.values():
                run.summary.seconds = time.monotonic() - t0
                key = self._finish(run, selection)
                if key is not None:
                    summary.manifests.append(key)
        summary.stopped = self._stop
        summary.seconds = time.monotonic() - t0
        return summary

    def _open_run(
        self,
        site: str,
        selection: Selection,
        fingerprint: str,
        found: RunRow | None,
        dry_run: bool,
    ) -> _SiteRun:
        if found is not None:
            run = _SiteRun(
                found.run_id,
                site,
                found.started,
                warc_spool_dir(self.spool, site, found.run_id),
                resumed=True,
            )
            self.checkpoints.adopt(run.run_id, self.host, os.getpid())
            # What a killed start left in its WARC files: repaired, and known by record id.
            recover_open_files(run.spool)
            for path in sorted(run.spool.glob(f"*{WARC_GZ_SUFFIX}")):
                self._learn_records(run, path)
            logger.info("resuming the reextract run %s of %s", run.run_id, site)
            return run
        started = datetime.now(UTC)
        run_id = new_run_id(site, started)
        run = _SiteRun(run_id, site, iso(started), warc_spool_dir(self.spool, site, run_id))
        if not dry_run:
            self.checkpoints.start(
                RunRow(
                    run_id=run_id,
                    site=site,
                    fingerprint=fingerprint,
                    selection=json.dumps(selection.as_json(), sort_keys=True),
                    started=run.started,
                    host=self.host,
                    pid=os.getpid(),
                )
            )
        return run

    def _learn_records(self, run: _SiteRun, path: Path) -> None:
        key = warc_key(run.site, path.name)
        with path.open("rb") as fh:
            entries, _cdxj = index_warc(fh, key)
        for entry in entries:
            if entry.record_type != "conversion":
                continue
            places = [entry.location]
            # Its metadata record follows it in the same group.
            for other in entries:
                if other.record_type == "metadata" and other.offset == entry.offset + entry.length:
                    places.append(other.location)
            run.recovered[entry.record_id] = places

    # -- work to the pool ---------------------------------------------------------------------
    def _tasks(self, items: Sequence[Item], intents: set[str]) -> list[GroupTask]:
        groups: dict[str, list[RecordTask]] = {}
        for item in items:
            source = item.source
            assert source is not None
            response = Place(
                source.record_id,
                "response",
                source.warc_key,
                source.warc_offset,
                source.warc_length,
            )
            read, fallback = response, None
            if item.dom is not None:
                dom = item.dom
                read = Place(dom.record_id, "resource", dom.warc_key, dom.offset, dom.length)
                fallback = response
            # A record a killed start began to write comes back whole, to finish the write.
            expect = (
                None
                if item.record_id in intents or item.current is None
                else (item.current.text_digest)
            )
            groups.setdefault(read.warc_key, []).append(
                RecordTask(
                    item.record_id, item.capture.site, item.capture.url, read, fallback, expect
                )
            )
        return slice_tasks(groups, self.workers)

    def _dispatch(
        self,
        tasks: list[GroupTask],
        take: Callable[[Extracted], None],
        workers: _Workers | None = None,
    ) -> None:
        if self.workers == 1:
            reader = RecordReader(self.store, self.rules, self.mode)
            for task in tasks:
                if self._stop:
                    return
                for got in reader.group(task):
                    take(got)
            return
        if workers is None:
            with _Workers(self) as started:
                self._pool(started, tasks, take)
        else:
            self._pool(workers, tasks, take)

    def _pool(
        self,
        workers: _Workers,
        tasks: list[GroupTask],
        take: Callable[[Extracted], None],
    ) -> None:
        pending = deque((task, 0) for task in tasks)
        while pending and not self._stop:
            pool = workers.take_pool() or workers.new_pool()
            inflight: dict[cf.Future[Done], tuple[GroupTask, int]] = {}
            broken = False
            try:
                while (pending or inflight) and not broken:
                    while pending and not self._stop and len(inflight) < self.workers * 3:
                        task, tries = pending[0]
                        try:
                            inflight[pool.submit(work, pack(task))] = (task, tries)
                        except BrokenProcessPool:  # it broke since the last answer
                            broken = True
                            break
                        pending.popleft()
                    if broken or not inflight:
                        break
                    finished, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                    for future in finished:
                        task, tries = inflight.pop(future)
                        try:
                            same, rest, pid, cpu = future.result()
                        except BrokenProcessPool:
                            broken = True
                            pending.appendleft((task, tries + 1))
                            continue
                        self.worker_cpu[pid] = self.worker_cpu.get(pid, 0.0) + cpu
                        if same:
                            # The text the article has: its digest is the one the task gave.
                            expect = {r.record_id: r.expect for r in task.records}
                            for record_id, reads, size in same:
                                digest = expect[record_id] or ""
                                take(
                                    Extracted(
                                        record_id, digest=digest, reads=reads, bytes_read=size
                                    )
                                )
                        for got in rest:
                            take(got)
            finally:
                # Every answer is in (or the pool is broken): its processes exit on their own
                # time, not this run's (joining them cost a tenth of a second at each run's end).
                pool.shutdown(wait=broken or bool(inflight), cancel_futures=True)
            if broken:
                # Every task in flight died with the pool: each is tried once more in a
                # new one; a task that breaks a pool twice is what breaks it.
                for task, tries in inflight.values():
                    pending.appendleft((task, tries + 1))
                again: deque[tuple[GroupTask, int]] = deque()
                for task, tries in pending:
                    if tries > 1:
                        for record in task.records:
                            take(Extracted(record.record_id, "worker-crashed", task.warc_key))
                    else:
                        again.append((task, tries))
                pending = again
                logger.error("a reextract worker process died; a new pool takes over")

    # -- one record's outcome -----------------------------------------------------------------
    def _take(
        self, run: _SiteRun, item: Item, got: Extracted, summary: Summary, dry_run: bool
    ) -> None:
        cap = item.capture
        if got.reason is not None:
            self._fail(run, item, got.reason, got.detail, summary, dry_run)
            return
        key = str(cap.article_key)
        digest = got.digest
        intent = run.intents.get(cap.record_id)
        known = item.current
        if intent is None and known is not None and known.text_digest == digest:
            self._unchanged(run, item, known, summary, dry_run)
            return
        # Decided against the catalog as it is now (a crawl may have moved the article on).
        current = self.catalog.article(cap.site, key)
        if current is None:
            self._fail(run, item, "no-article", f"{cap.site}:{key}", summary, dry_run)
            return
        if intent is not None and intent.text_key == current.text_key:
            # A start killed after this version was recorded: its write is finished now.
            if current.text_digest != digest:
                detail = f"{intent.text_key} holds another text than this extraction makes"
                self._fail(run, item, "conflict", detail, summary, dry_run)
                return
            replaces = json.loads(intent.detail or "{}").get("replaces") or {}
            assert intent.version is not None
            self._write(run, item, got, digest, intent.version, current.text_key, replaces, summary)
            return
        if current.text_digest == digest:
            self._unchanged(run, item, current, summary, dry_run)
            return
        article = got.article
        assert article is not None, "a changed text travels back whole"
        poor = self.guard.check(cap.site, article)
        if poor is not None:
            self._fail(run, item, "degenerate", poor, summary, dry_run)
            return
        version = current.version + 1
        new_key = text_key(cap.site, key, cap.capture_time, version)
        replaces = {
            "version": current.version,
            "text_key": current.text_key,
            "text_digest": current.text_digest,
        }
        change = Change(cap.site, key, cap.url, current.version, version, new_key)
        if dry_run:
            summary.changed += 1
            if len(summary.changes) < KEPT_FAILURES:
                summary.changes.append(change)
            if len(summary.examples) < self.examples:
                try:
                    old = self.store.get_bytes(current.text_key).decode("utf-8", "replace")
                except (FileNotFoundError, StoreError, OSError):
                    old = ""
                summary.examples.append(Example(change, old, article.text))
            return
        # Before anything is written: which version this is going to be.
        self.checkpoints.put(
            [
                DoneRow(
                    run.run_id,
                    cap.record_id,
                    "writing",
                    _now(),
                    detail=json.dumps({"replaces": replaces}),
                    text_key=new_key,
                    version=version,
                )
            ],
            replace=self._replace,
        )
        self._replace.add(cap.record_id)
        self._write(run, item, got, digest, version, new_key, replaces, summary)

    def _unchanged(
        self,
        run: _SiteRun,
        item: Item,
        current: ArchivedArticle,
        summary: Summary,
        dry_run: bool,
    ) -> None:
        """The text the article has: only the check is recorded (``record_text`` with the same
        digest), when it is news to the catalog: a capture newer than the last check."""
        cap = item.capture
        if not dry_run:
            if cap.capture_time > current.last_checked:
                try:
                    self.catalog.record_text(
                        TextRecord(
                            site=cap.site,
                            article_key=str(cap.article_key),
                            url=cap.url,
                            capture_time=cap.capture_time,
                            text_digest=current.text_digest,
                            text_key=current.text_key,
                        )
                    )
                except (SQLAlchemyError, CatalogConflict) as exc:
                    self._fail(run, item, "catalog-error", str(exc), summary, dry_run)
                    return
            self._rows.append(DoneRow(run.run_id, cap.record_id, "unchanged", _now()))
        summary.unchanged += 1
        run.summary.unchanged += 1

    def _fail(
        self,
        run: _SiteRun,
        item: Item,
        reason: str,
        detail: str,
        summary: Summary,
        dry_run: bool,
    ) -> None:
        cap = item.capture
        failure = Failure(reason, cap.site, str(cap.article_key), cap.record_id, detail)
        summary.failed += 1
        summary.by_reason[reason] += 1
        run.summary.failed += 1
        run.summary.by_reason[reason] += 1
        if len(summary.failures) < KEPT_FAILURES:
            summary.failures.append(failure)
        if len(run.summary.failures) < KEPT_FAILURES:
            run.summary.failures.append(failure)
        # The summary names every failure: the log line is for the run's own log.
        logger.info("%s:%s not re-extracted (%s): %s", cap.site, cap.article_key, reason, detail)
        if not dry_run:
            self._rows.append(
                DoneRow(
                    run.run_id, cap.record_id, "failed", _now(), reason=reason, detail=detail[:2000]
                )
            )

    def _write(
        self,
        run: _SiteRun,
        item: Item,
        got: Extracted,
        digest: str,
        version: int,
        key: str,
        replaces: dict[str, Any],
        summary: Summary,
    ) -> None:
        cap, source = item.capture, item.source
        article = got.article
        assert source is not None and article is not None
        conversion_id, _metadata_id = _record_ids(run.run_id, cap.record_id)
        places = run.recovered.get(conversion_id)
        if places is None:
            records = self._records(run, item, got, key, replaces)
            try:
                written = self._writer(run).write_sync(records)
            except OSError as exc:
                self._fail(run, item, "store-error", f"the run's WARC: {exc}", summary, False)
                return
            places = [
                Location(
                    r.record_type, w.record_id, warc_key(run.site, w.filename), w.offset, w.length
                )
                for r, w in zip(records, written, strict=True)
            ]
        sidecar = self._sidecar(run, item, got, version, key, replaces, places)
        text = got.text
        try:
            stored = [
                self.store.put_bytes(key, text),
                self.store.put_bytes(sidecar_key(key), json_bytes(sidecar)),
            ]
        except StoreConflictError as exc:
            self._fail(run, item, "conflict", str(exc), summary, False)
            return
        except (StoreError, OSError) as exc:
            self._fail(run, item, "store-error", f"{key}: {exc}", summary, False)
            return
        try:
            recorded, _new = self.catalog.record_text(
                TextRecord(
                    site=cap.site,
                    article_key=str(cap.article_key),
                    url=cap.url,
                    capture_time=cap.capture_time,
                    text_digest=digest,
                    text_key=key,
                    title=sidecar["title"],
                    published=sidecar["published"],
                    body=article.text,
                    facts=TextFacts.of_sidecar(sidecar),
                )
            )
        except (SQLAlchemyError, CatalogConflict) as exc:
            self._fail(run, item, "catalog-error", f"{key}: {exc}", summary, False)
            return
        if recorded != version:
            detail = (
                f"{cap.site}:{cap.article_key} became version {recorded}, not {version} ({key})"
            )
            self._fail(run, item, "conflict", detail, summary, False)
            return
        try:
            self.catalog.set_capture_texts({cap.record_id: (digest, key, version)})
            add_linked(self.catalog.engine, {cap.record_id: places})
        except SQLAlchemyError as exc:
            self._fail(run, item, "catalog-error", f"{key}: {exc}", summary, False)
            return
        self._link(key)
        run.objects.update({o.key: o for o in stored})
        run.cached[key] = (sidecar, article.text)
        self._rows.append(
            DoneRow(
                run.run_id,
                cap.record_id,
                "changed",
                _now(),
                text_key=key,
                version=version,
                records=json.dumps([asdict(p) for p in places]),
            )
        )
        self._flush(force=True)  # a version written is worth its own commit
        change = Change(
            cap.site, str(cap.article_key), cap.url, int(replaces.get("version") or 0), version, key
        )
        summary.changed += 1
        run.summary.changed += 1
        if len(summary.changes) < KEPT_FAILURES:
            summary.changes.append(change)

    def _link(self, key: str) -> None:
        """The new text's story across sites; a failure loses nothing (reindex links it)."""
        try:
            text_id = self.catalog.text_id(key)
            if text_id is not None:
                link_text(self.catalog, text_id)
        except Exception as exc:  # the links are an index: the archive is whole without them
            logger.warning("%s: not linked to other sites' stories (reindex will): %s", key, exc)

    def _writer(self, run: _SiteRun) -> WarcFileWriter:
        if run.writer is None:
            run.writer = WarcFileWriter(
                run.spool,
                prefix=run.site,
                crawl_tag=run.run_id,
                warcinfo_fields={
                    "software": f"newsarchive/{__version__}",
                    "description": "article texts re-extracted from archived responses",
                    "reextract-run": run.run_id,
                    "site": run.site,
                    "text-mode": self.mode,
                    "extractor-version": str(EXTRACTOR_VERSION),
                    "rules-digest": rules_digest(self.rules.get(run.site)) or "none",
                },
                max_age=None,
            )
        return run.writer

    def _records(
        self,
        run: _SiteRun,
        item: Item,
        got: Extracted,
        key: str,
        replaces: Mapping[str, Any],
    ) -> list[WarcRecord]:
        """The text's conversion record (``WARC-Refers-To`` the record it was made from: the
        response, or a rendered page's DOM) and a metadata record of its provenance."""
        cap, source, article = item.capture, got.source, got.article
        assert source is not None and article is not None
        conversion_id, metadata_id = _record_ids(run.run_id, cap.record_id)
        conversion = RecordBuilder(make_id=lambda: conversion_id).conversion(
            target_uri=TEXT_URI_PREFIX + cap.url,
            content=got.text,
            refers_to=source.record_id,
            refers_to_target_uri=got.source_uri or cap.url,
            refers_to_date=got.source_date or None,
        )
        fields = {
            "article-id": str(cap.article_key),
            "site": cap.site,
            "reextract-run": run.run_id,
            "extractor": article.extractor,
            "extractor-version": str(EXTRACTOR_VERSION),
            "rules-digest": rules_digest(self.rules.get(cap.site)) or "none",
            "text-mode": self.mode,
            "text-key": key,
            "replaces-text-key": str(replaces.get("text_key") or ""),
        }
        metadata = RecordBuilder(make_id=lambda: metadata_id).metadata(
            target_uri=cap.url,
            fields={k: v for k, v in fields.items() if v},
            refers_to=cap.record_id,
        )
        return [conversion, metadata]

    def _sidecar(
        self,
        run: _SiteRun,
        item: Item,
        got: Extracted,
        version: int,
        key: str,
        replaces: Mapping[str, Any],
        places: Sequence[Location],
    ) -> dict[str, Any]:
        """The sidecar as the crawl writes it, and where this text came from: the same
        bytes every time for one run and capture (a resumed run writes no other)."""
        cap, response, source, article = item.capture, item.source, got.source, got.article
        assert response is not None and source is not None and article is not None
        old: dict[str, Any] = {}
        if replaces.get("text_key"):
            with suppress(FileNotFoundError, StoreError, OSError, ValueError):
                old = dict(json.loads(self.store.get_bytes(sidecar_key(replaces["text_key"]))))
        rules = self.rules.get(cap.site)
        car = text_sidecar(
            article,
            got.text,
            url=cap.url,
            request_url=str(old.get("request_url") or cap.url),
            site=cap.site,
            article_id=str(cap.article_key),
            status=cap.status,
            encoding=got.encoding,
            discovery=list(old.get("discovery") or []),
            crawl_id=cap.crawl_id,
            crawl_time=old.get("crawl_time") if old.get("crawl_id") == cap.crawl_id else None,
            text_mode=self.mode,
            rules=rules,
        )
        car["capture_time"] = cap.warc_date or cap.capture_time
        car["payload_digest"] = cap.payload_digest
        car["warc"] = {
            "file": cap.warc_key.rsplit("/", 1)[-1],
            "key": cap.warc_key,
            "offset": cap.warc_offset,
            "length": cap.warc_length,
            "record_id": cap.record_id,
            "record_type": cap.record_type,
        }
        car["version"] = version
        car["previous_version"] = dict(replaces)
        car["conversion_record_id"] = places[0].record_id
        car["metadata_record_id"] = places[1].record_id if len(places) > 1 else None
        car["text_key"] = key
        car["reextracted"] = {
            "run_id": run.run_id,
            "at": run.started,
            "extractor": article.extractor,
            "extractor_version": EXTRACTOR_VERSION,
            "rules_digest": rules_digest(rules),
            "text_mode": self.mode,
            # The record the text was made from (a rendered page: its DOM) and the response
            # the capture holds (what a replay shows).
            "source": asdict(source),
            **(
                {}
                if response.record_id == source.record_id
                else {
                    "response": {
                        "record_id": response.record_id,
                        "record_type": "response",
                        "warc_key": response.warc_key,
                        "offset": response.warc_offset,
                        "length": response.warc_length,
                    }
                }
            ),
            "replaces": dict(replaces),
            "records": [asdict(p) for p in places],
        }
        return car

    def _flush(self, *, force: bool = False) -> None:
        if not self._rows:
            return
        if (
            force
            or len(self._rows) >= _FLUSH_ROWS
            or time.monotonic() - self._flushed >= _FLUSH_SECONDS
        ):
            self.checkpoints.put(self._rows, replace=self._replace)
            self._rows = []
            self._flushed = time.monotonic()

    # -- the run's views ----------------------------------------------------------------------
    def _finish(self, run: _SiteRun, selection: Selection) -> str | None:
        """Store the run's WARC files and what a crawl writes beside them (CDXJ, Parquet,
        WACZ, manifest); the manifest's key (None: the run changed nothing)."""
        manifest = manifest_key(run.site, run.run_id)
        changed = sorted(
            self.checkpoints.done([run.run_id], "changed").values(),
            key=lambda r: str(r.text_key),
        )
        outcomes = self.checkpoints.counts(run.run_id)
        files = sorted(run.spool.glob(f"*{WARC_GZ_SUFFIX}")) if run.spool.is_dir() else []
        objects: dict[str, StoredObject] = {}
        cdxj: dict[str, str] = {}
        for path in files:
            key = warc_key(run.site, path.name)
            digest = run.writer.sha256_of(path) if run.writer is not None else None
            objects[key] = self.store.put_file(key, path, move=False, sha256=digest)
            with path.open("rb") as fh:
                cdxj[key] = index_warc(fh, key)[1]
        warcs = sorted(
            {str(p["warc_key"]) for r in changed for p in r.record_places()} | set(objects)
        )
        counts = run.summary.counts()
        counts.update({name: outcomes.get(name, 0) for name in ("changed", "unchanged", "failed")})
        report = {
            "kind": "reextract",
            "run_id": run.run_id,
            "site": run.site,
            "started": run.started,
            "finished": _now(),
            "selection": selection.as_json(),
            "text_mode": self.mode,
            "extractor_version": EXTRACTOR_VERSION,
            "rules_digest": rules_digest(self.rules.get(run.site)),
            "counts": counts,
            "failures": [asdict(f) for f in run.summary.failures],
        }
        if not changed and not warcs:
            self.checkpoints.finish(run.run_id, _now(), counts)
            self._clean(run, files)
            return None
        if self.store.exists(manifest):
            # A start killed after its manifest: the views are in the store already.
            self.checkpoints.finish(run.run_id, _now(), counts)
            self._clean(run, files)
            return manifest
        for key in warcs:
            if key not in objects:
                found = self.store.head(key)
                if found is None:
                    logger.error("%s: the run's WARC file is not in the store", key)
                    continue
                objects[key] = found
                with open_object(self.store, key, found.size) as fh:
                    cdxj[key] = index_warc(fh, key)[1]
        for key, lines in sorted(cdxj.items()):
            stored = self._put_bytes(cdxj_key(key), lines.encode())
            objects[stored.key] = stored
        rows = self._rows_of(run, changed, objects)
        stored = self._put_bytes(parquet_key(run.site, run.run_id), table.to_parquet(rows))
        objects[stored.key] = stored
        wacz = self._wacz(run, [k for k in warcs if k in objects], files, cdxj, rows, changed)
        if wacz is not None:
            objects[wacz.key] = wacz
        body = {
            "crawl_id": run.run_id,
            "site": run.site,
            "kind": "reextract",
            "created": _now(),
            "store": self.store.uri,
            "objects": [
                {"key": o.key, "size": o.size, "sha256": o.sha256}
                for o in sorted(objects.values(), key=lambda o: o.key)
            ],
            "report": report,
        }
        self.store.put_bytes(manifest, json_bytes(body))
        self.checkpoints.finish(run.run_id, _now(), counts)
        self._clean(run, files)
        return manifest

    def _put_bytes(self, key: str, data: bytes) -> StoredObject:
        """A view of the run; one an earlier start of it stored already is kept."""
        try:
            return self.store.put_bytes(key, data)
        except StoreConflictError:
            found = self.store.head(key)
            if found is None:
                raise
            return found

    def _rows_of(
        self, run: _SiteRun, changed: Sequence[DoneRow], objects: dict[str, StoredObject]
    ) -> list[dict[str, Any]]:
        """The Parquet rows: each changed capture with its new text and its records."""
        ids = [r.record_id for r in changed]
        found: dict[str, Capture] = {}
        with self.catalog.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                for r in conn.execute(
                    select(captures).where(captures.c.record_id.in_(part))
                ).mappings():
                    found[r["record_id"]] = table.capture_of(r)
        rows = []
        for done in changed:
            capture = found.get(done.record_id)
            key = str(done.text_key)
            if capture is None:
                continue
            if key in run.cached:
                car, text = run.cached[key]
            else:
                car = dict(json.loads(self.store.get_bytes(sidecar_key(key))))
                text = self.store.get_bytes(key).decode("utf-8")
            for obj_key in (key, sidecar_key(key)):
                if obj_key not in objects:
                    held = run.objects.get(obj_key) or self.store.head(obj_key)
                    if held is not None:
                        objects[obj_key] = held
            # The capture as this version made it (a later crawl may have moved it on).
            capture = _with_text(capture, car)
            links = [Location(**p) for p in done.record_places()]
            rows.append(table.row(capture, links, car, text))
        return rows

    def _wacz(
        self,
        run: _SiteRun,
        warcs: Sequence[str],
        files: Sequence[Path],
        cdxj: Mapping[str, str],
        rows: Sequence[Mapping[str, Any]],
        changed: Sequence[DoneRow],
    ) -> StoredObject | None:
        """The run's WARC files with copies of the responses its texts came from, so the
        package replays the pages whose new texts ``pages.jsonl`` holds."""
        local = {warc_key(run.site, p.name): p for p in files}
        run.spool.mkdir(parents=True, exist_ok=True)
        tmp = run.spool / f".{run.run_id}.wacz"
        originals = run.spool / f".{run.run_id}-originals.warc.gz"
        originals_key = f"originals/{run.run_id}-originals.warc.gz"
        try:
            copied = 0
            with originals.open("wb") as out:
                for done in changed:
                    car = run.cached.get(str(done.text_key), ({}, ""))[0] or {}
                    if not car:
                        with suppress(FileNotFoundError, StoreError, OSError, ValueError):
                            car = dict(
                                json.loads(self.store.get_bytes(sidecar_key(str(done.text_key))))
                            )
                    again = car.get("reextracted") or {}
                    src = again.get("response") or again.get("source")
                    if not src:
                        continue
                    try:
                        out.write(
                            self.store.get_range(
                                str(src["warc_key"]), int(src["offset"]), int(src["length"])
                            )
                        )
                        copied += 1
                    except (FileNotFoundError, StoreError, OSError) as exc:
                        logger.warning("the package of %s lacks %s: %s", run.run_id, src, exc)
            keys = list(warcs)
            parts = [cdxj.get(k, "") for k in warcs]
            sizes: dict[str, int] = {}
            if copied:
                with originals.open("rb") as fh:
                    parts.append(index_warc(fh, originals_key)[1])
                keys.append(originals_key)
                sizes[originals_key] = originals.stat().st_size

            @contextmanager
            def opener(key: str) -> Iterator[IO[bytes]]:
                path = originals if key == originals_key else local.get(key)
                if path is not None and path.exists():
                    with path.open("rb") as fh:
                        yield fh
                else:
                    with open_object(self.store, key) as fh:
                        yield fh

            write_wacz(
                tmp,
                keys,
                opener,
                merged_cdxj(parts),
                pages_jsonl(rows),
                f"{run.site} reextract {run.run_id}",
                sizes,
            )
            try:
                return self.store.put_file(wacz_key(run.site, run.run_id), tmp, move=True)
            except StoreConflictError:
                return self.store.head(wacz_key(run.site, run.run_id))
        finally:
            tmp.unlink(missing_ok=True)
            originals.unlink(missing_ok=True)

    def _clean(self, run: _SiteRun, files: Sequence[Path]) -> None:
        """The run's local WARC files, once the store holds them."""
        for path in files:
            path.unlink(missing_ok=True)
        with suppress(OSError):  # not empty (a file another process left): kept
            run.spool.rmdir()


@contextmanager
def _frozen() -> Iterator[None]:
    """A run with what the process holds (modules, the catalog's engine) and the selection
    (``gc.freeze`` again once it is made) out of the collector's generations, as the crawl
    does (``crawler.crawl.archive``): extraction's allocations set off collections, and a
    full one walked all of them, 60 ms for the 100,000 objects of a 3,000-record run of the
    bench (20 us a record, where the extractor alone sets off none). Undone at the end unless
    the process had frozen its own before (a crawl's); either way nothing is lost: frozen
    objects are freed as ever when unreferenced, only cycles among them wait for the thaw."""
    thaw = gc.get_freeze_count() == 0
    gc.freeze()
    try:
        yield
    finally:
        if thaw:
            gc.unfreeze()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _with_text(capture: Capture, sidecar: Mapping[str, Any]) -> Capture:
    from dataclasses import replace

    return replace(
        capture,
        text_key=sidecar.get("text_key"),
        text_digest=sidecar.get("text_digest"),
        version=sidecar.get("version"),
    )
