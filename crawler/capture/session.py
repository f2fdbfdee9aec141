"""One crawl's WARC capture: the rolling writer, crash repair, and what each exchange becomes.

Knows no Scrapy, no site rules and no store: finished files go to an ``ArchiveSink`` and every
capture is told to the listeners it was given (the catalog records them).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from crawler.capture.exchange import (
    CaptureInfo,
    CaptureListener,
    Exchange,
    RevisitLookup,
    exchange_records,
)
from crawler.capture.records import Clock, RecordBuilder, WarcRecord, format_warc_date, utc_now
from crawler.capture.writer import RecordLocation, WarcFileWriter, recover_open_files
from crawler.constants import (
    STATS_WARC_BYTES,
    STATS_WARC_ERRORS,
    STATS_WARC_FILES,
    STATS_WARC_RECORDS,
    STATS_WARC_RECORDS_BY_TYPE,
    STATS_WARC_RECOVERED,
)
from crawler.layout import crawl_token, warc_key

logger = logging.getLogger(__name__)


class ArchiveSink(Protocol):
    """Where a crawl's finished files go (the crawl's bookkeeping: store, spool, manifest)."""

    def put_file(
        self, key: str, path: Path, *, move: bool = True, sha256: str | None = None
    ) -> object: ...

    def storage_failed(self, what: str, exc: OSError) -> None:
        """A local write failed: nothing more can be archived, the crawl stops."""


class Counter(Protocol):
    """The crawl's counters (Scrapy's stats collector has this method)."""

    def inc_value(self, key: str, count: int = 1, start: int = 0) -> None: ...


@dataclass(frozen=True, slots=True)
class WarcConfig:
    prefix: str
    max_size: int
    max_age: float | None
    compress_level: int
    operator: str
    robots_obey: bool
    settings_digest: str
    # More warcinfo fields, in order (the crawl's text mode and extractor, …).
    info: tuple[tuple[str, str], ...] = ()


def lock_spool_dir(spool: Path, timeout: float = 2.0) -> IO[bytes]:
    """Make a crawl's spool dir and lock it, even while another crawl's recovery removes it.

    Recovery removes a dir whose lock it gets and that holds no file, so it can take a new
    crawl's dir between its mkdir and its flock. It holds the lock only that long: retry until
    the lock is ours on a dir that still exists.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spool.mkdir(parents=True, exist_ok=True)
        try:
            fh = (spool / ".lock").open("ab")
        except FileNotFoundError:
            continue  # removed between mkdir and open
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            time.sleep(0.005)
            continue
        if os.fstat(fh.fileno()).st_nlink:
            return fh
        fh.close()  # removed while we waited for the lock: make it again
    raise BlockingIOError(errno.EWOULDBLOCK, f"WARC spool dir {spool} is locked by another crawl")


# (site, crawl id, store key, path) of a WARC file a killed crawl left, repaired.
RecoveredListener = Callable[[str, str, str, Path], None]


class CaptureSession:
    """Writes one crawl's exchanges as WARC records into rolling files, stored when closed.

    Records are serialised on the caller's thread (cheap) and compressed and written by the
    writer's thread; the response record id is known at once (``CaptureInfo``).
    """

    def __init__(
        self,
        config: WarcConfig,
        sink: ArchiveSink,
        stats: Counter,
        *,
        hostname: str,
        user_agent: str = "",
        software: str = "",
        clock: Clock = utc_now,
        builder: RecordBuilder | None = None,
        revisit_lookup: RevisitLookup | None = None,
        listeners: Sequence[CaptureListener] = (),
        recovered: Sequence[RecoveredListener] = (),
    ) -> None:
        self.config = config
        self.sink = sink
        self.stats = stats
        self.hostname = hostname
        self.user_agent = user_agent
        self.software = software
        self.clock = clock
        self.builder = builder or RecordBuilder(clock=clock)
        self.revisit_lookup = revisit_lookup
        self.listeners = tuple(listeners)
        # Told of each file a killed crawl left, once repaired and before it is stored: the
        # catalog records the captures that crawl had not recorded yet.
        self.recovered = tuple(recovered)
        self.writer: WarcFileWriter | None = None
        self.site = ""
        self._lock_fh: IO[bytes] | None = None
        self._spool: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self, site: str, crawl_id: str, spool: Path) -> None:
        """Start writing into ``spool`` (locked for the whole crawl: recovery leaves it)."""
        self.site = site
        self._lock_fh = lock_spool_dir(spool)
        self._spool = spool
        self.writer = WarcFileWriter(
            spool,
            prefix=self.config.prefix or site,
            hostname=self.hostname,
            crawl_tag=crawl_token(crawl_id),
            builder=self.builder,
            warcinfo_fields=self.warcinfo_fields(site, crawl_id),
            max_size=self.config.max_size,
            max_age=self.config.max_age,
            compress_level=self.config.compress_level,
            on_close=self._file_closed,
            clock=self.clock,
        )

    def warcinfo_fields(self, site: str, crawl_id: str) -> dict[str, str]:
        fields = {
            "software": self.software,
            "spider": site,
            "crawl-id": crawl_id,
            "hostname": self.hostname,
            "http-header-user-agent": self.user_agent,
            "robots": "obey" if self.config.robots_obey else "ignore",
            "settings-digest": self.config.settings_digest,
        }
        if self.config.operator:
            fields["operator"] = self.config.operator
        fields.update(self.config.info)
        return fields

    def recover(self, root: Path) -> int:
        """Repair and store files left open by crawls that died (any site, lock not held)."""
        recovered = 0
        if not root.is_dir():
            return 0
        for site_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for crawl_dir in sorted(p for p in site_dir.iterdir() if p.is_dir()):
                if crawl_dir == self._spool:
                    continue
                recovered += self._recover_dir(site_dir.name, crawl_dir)
        if recovered:
            self.stats.inc_value(STATS_WARC_RECOVERED, recovered)
        return recovered

    def _recover_dir(self, site: str, crawl_dir: Path) -> int:
        lock_path = crawl_dir / ".lock"
        with lock_path.open("ab") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # a live crawl owns it
            results = recover_open_files(crawl_dir)
            for res in results:
                logger.warning(
                    "recovered %s left open by a killed crawl: %d complete records kept, "
                    "%d bytes cut",
                    res.path.name,
                    res.records_kept,
                    res.bytes_cut,
                )
            # Closed but not yet stored (killed between rename and store): store them now.
            for path in sorted(crawl_dir.glob("*.warc.gz")):
                for listener in self.recovered:
                    listener(site, crawl_dir.name, warc_key(site, path.name), path)
                self._store_file(site, path)
            leftovers = [p for p in crawl_dir.iterdir() if p.name != ".lock"]
            if not leftovers:
                shutil.rmtree(crawl_dir, ignore_errors=True)
            return len(results)

    def _file_closed(self, path: Path) -> None:
        self._store_file(self.site, path)

    def _store_file(self, site: str, path: Path) -> None:
        digest = self.writer.sha256_of(path) if self.writer is not None else None
        self.sink.put_file(warc_key(site, path.name), path, move=True, sha256=digest)
        self.stats.inc_value(STATS_WARC_FILES)

    def close(self) -> None:
        """Close the open file (stored through the sink); blocking: not on the reactor."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None
        if self._spool is not None and self._spool.is_dir():
            leftovers = [p for p in self._spool.iterdir() if p.name != ".lock"]
            if not leftovers:
                shutil.rmtree(self._spool, ignore_errors=True)

    # -- capture -----------------------------------------------------------------------------
    def capture(self, exchange: Exchange) -> CaptureInfo:
        """Write one exchange; ValueError when it cannot be written faithfully (CR/LF in it)."""
        records = exchange_records(self.builder, exchange, self.revisit_lookup)
        future = self.submit(records)
        resp = records[0]
        info = CaptureInfo(
            record_id=resp.record_id,
            target_uri=exchange.url,
            date=format_warc_date(exchange.date),
            payload_digest=resp.payload_digest,
            future=future,
            record_type=resp.record_type,
        )
        self.announce(info, exchange)
        return info

    def announce(self, info: CaptureInfo, exchange: Exchange) -> None:
        for listener in self.listeners:
            listener(info, exchange)

    def submit(self, records: Sequence[WarcRecord]) -> Future[list[RecordLocation]]:
        if self.writer is None:
            raise RuntimeError("the WARC capture is not open")
        self.stats.inc_value(STATS_WARC_RECORDS, len(records))
        for rec in records:
            self.stats.inc_value(STATS_WARC_RECORDS_BY_TYPE.format(type=rec.record_type))
            self.stats.inc_value(STATS_WARC_BYTES, len(rec.data))
        future = self.writer.write(records)
        future.add_done_callback(self._check_written)
        return future

    def _check_written(self, future: Future[list[RecordLocation]]) -> None:
        exc = future.exception()
        if exc is not None:
            self.stats.inc_value(STATS_WARC_ERRORS)
            if isinstance(exc, OSError):
                # The writer takes nothing more after a failed write: fetching on would
                # archive nothing. One ERROR, and the crawl stops.
                where = self.writer.current_path if self.writer is not None else None
                self.sink.storage_failed(f"writing the WARC file in {where or self._spool}", exc)
            else:
                logger.error("WARC write failed: %s", exc)
