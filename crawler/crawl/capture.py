"""WARC capture: every HTTP exchange Scrapy downloads, written as request + response records."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self, TypeVar

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawler import __version__
from crawler.capture.records import (
    Clock,
    RecordBuilder,
    WarcRecord,
    build_request_head,
    build_response_head,
    format_warc_date,
    sha1_digest,
    utc_now,
)
from crawler.capture.writer import RecordLocation, WarcFileWriter, recover_open_files
from crawler.constants import (
    META_ARTICLE_KEY,
    META_CAPTURE,
    META_HTTP_HEAD,
    META_HTTP_REASON,
    META_SKIP_CAPTURE,
    STATS_WARC_BYTES,
    STATS_WARC_ERRORS,
    STATS_WARC_FILES,
    STATS_WARC_RECORDS,
    STATS_WARC_RECORDS_BY_TYPE,
    STATS_WARC_RECOVERED,
    STATS_WARC_TRUNCATED,
)
from crawler.crawl.run import ArchiveRun

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

_Number = TypeVar("_Number", int, float)
TEXT_URI_PREFIX = "urn:text:"
_FILE_TS = re.compile(r"-(\d{4})(\d{2})(\d{2})\d{6}-\d{5}-")
# Settings that change what lands in the archive; their digest goes into warcinfo.
_DIGESTED_SETTINGS = (
    "USER_AGENT",
    "ROBOTSTXT_OBEY",
    "DOWNLOAD_MAXSIZE",
    "DOWNLOAD_TIMEOUT",
    "DOWNLOAD_FAIL_ON_DATALOSS",
    "REDIRECT_MAX_TIMES",
    "RETRY_TIMES",
    "ARCHIVE_WARC_MAX_SIZE",
    "ARCHIVE_WARC_MAX_AGE",
    "ARCHIVE_WARC_COMPRESS_LEVEL",
    "ARCHIVE_TEXT_MODE",
    "ARCHIVE_PROXY",
)


@dataclass(frozen=True, slots=True)
class WarcConfig:
    prefix: str
    max_size: int
    max_age: float | None
    compress_level: int
    operator: str
    robots_obey: bool
    settings_digest: str

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> WarcConfig:
        max_size = _setting_number(settings, "ARCHIVE_WARC_MAX_SIZE", settings.getint)
        max_age = _setting_number(settings, "ARCHIVE_WARC_MAX_AGE", settings.getfloat)
        level = _setting_number(settings, "ARCHIVE_WARC_COMPRESS_LEVEL", settings.getint)
        if max_size <= 0:
            raise ValueError(f"ARCHIVE_WARC_MAX_SIZE must be > 0, got {max_size}")
        if max_age < 0:
            raise ValueError(f"ARCHIVE_WARC_MAX_AGE must be >= 0 seconds, got {max_age}")
        if not 0 <= level <= 9:
            raise ValueError(f"ARCHIVE_WARC_COMPRESS_LEVEL must be 0..9, got {level}")
        digest_src = json.dumps(
            {k: settings.get(k) for k in _DIGESTED_SETTINGS}, sort_keys=True, default=str
        )
        return cls(
            prefix=str(settings.get("ARCHIVE_WARC_PREFIX") or ""),
            max_size=max_size,
            max_age=max_age or None,
            compress_level=level,
            operator=str(settings.get("ARCHIVE_WARC_OPERATOR") or ""),
            robots_obey=settings.getbool("ROBOTSTXT_OBEY"),
            settings_digest="sha256:" + hashlib.sha256(digest_src.encode()).hexdigest(),
        )


def _setting_number(settings: BaseSettings, name: str, parse: Callable[[str], _Number]) -> _Number:
    try:
        return parse(name)
    except (TypeError, ValueError) as exc:
        # Scrapy's own message ("invalid literal for int()") does not name the setting.
        raise ValueError(f"{name} must be a number, got {settings.get(name)!r}") from exc


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


@dataclass(slots=True)
class CaptureInfo:
    """Where the response of one exchange went; set in the request's meta at download time."""

    record_id: str
    target_uri: str
    date: str
    payload_digest: str | None
    future: Future[list[RecordLocation]] = field(repr=False)
    record_type: str = "response"  # or "revisit": the payload equals an earlier capture's
    rendered_dom: str | None = None  # a rendered page: its DOM's resource record (render.py)

    def location(self, timeout: float | None = 60.0) -> RecordLocation:
        return self.future.result(timeout)[0]


@dataclass(frozen=True, slots=True)
class RevisitTarget:
    """An earlier response with the same payload, which a revisit record refers to."""

    record_id: str
    target_uri: str
    date: str


RevisitLookup = Callable[[str, str, "str | None"], "RevisitTarget | None"]  # url, digest, key
CaptureListener = Callable[["CaptureInfo", "Request", "Response"], None]


def _header_pairs(headers: Mapping[Any, Any]) -> Iterator[tuple[bytes, bytes]]:
    for name, values in headers.items():
        for value in values:
            yield bytes(name), bytes(value)


def parse_raw_head(
    lines: Sequence[bytes] | None, status: int
) -> tuple[str, str, list[tuple[bytes, bytes]]] | None:
    """Protocol, reason and header pairs in wire order from the head's raw lines, or None.

    None when there are none or they belong to another response (their status differs).
    """
    if not lines:
        return None
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) != status:
        return None
    protocol = parts[0].decode("latin-1")
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and headers:
            # An obsolete folded continuation line: one value, as every parser reads it.
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, sep, value = line.partition(b":")
        if sep and name.strip():
            headers.append((name, value.strip()))
    return protocol, reason, headers


def warc_key(site: str, filename: str) -> str:
    match = _FILE_TS.search(filename)
    if match:
        yyyy, mm, dd = match.groups()
    else:
        now = datetime.now(UTC)
        yyyy, mm, dd = f"{now:%Y}", f"{now:%m}", f"{now:%d}"
    return f"warc/{site}/{yyyy}/{mm}/{dd}/{filename}"


class WarcCapture:
    """Writes each downloaded exchange as it arrived: response + request, linked.

    Connected to ``response_downloaded``, so the body is still as received (compressed when
    the server compressed it) and redirects, robots.txt, errors are all captured. Records are
    serialised on the reactor thread (cheap) and compressed and written by the writer's
    thread; the response record id is known at once and put in ``meta["archive_capture"]``.
    """

    def __init__(
        self,
        config: WarcConfig,
        crawler: Crawler,
        *,
        clock: Clock = utc_now,
        builder: RecordBuilder | None = None,
        hostname: str | None = None,
    ) -> None:
        self.config = config
        self.crawler = crawler
        self.clock = clock
        self.builder = builder or RecordBuilder(clock=clock)
        self.hostname = hostname or socket.gethostname()
        self.writer: WarcFileWriter | None = None
        self.run: ArchiveRun | None = None
        self.site = ""
        # Set by the catalog: where an identical payload was captured before (None: write it).
        self.revisit_lookup: RevisitLookup | None = None
        # Called with every capture once it is queued for writing (the catalog records them).
        self.listeners: list[CaptureListener] = []
        self._lock_fh: IO[bytes] | None = None
        self._spool: Path | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("ARCHIVE_WARC_ENABLED"):
            raise NotConfigured("ARCHIVE_WARC_ENABLED is off")
        try:
            config = WarcConfig.from_settings(crawler.settings)
        except ValueError as exc:
            raise NotConfigured(str(exc)) from exc
        ext = cls(config, crawler)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.response_downloaded, signal=signals.response_downloaded)
        return ext

    # -- lifecycle ---------------------------------------------------------------------------
    async def spider_opened(self, spider: Spider) -> None:
        run = self.crawler.get_extension(ArchiveRun)
        if run is None:
            raise NotConfigured("WarcCapture needs the ArchiveRun extension (the store)")
        self.run = run
        self.site = spider.name
        if not run.crawl_id:
            run.spider_opened(spider)
        spool = run.spool_dir / "warc" / spider.name / run.crawl_id
        # Held for the whole crawl: recovery never touches a live crawl's files.
        self._lock_fh = lock_spool_dir(spool)
        self._spool = spool
        self.writer = WarcFileWriter(
            spool,
            prefix=self.config.prefix or spider.name,
            hostname=self.hostname,
            builder=self.builder,
            warcinfo_fields=self.warcinfo_fields(spider.name, run.crawl_id),
            max_size=self.config.max_size,
            max_age=self.config.max_age,
            compress_level=self.config.compress_level,
            on_close=self._file_closed,
            clock=self.clock,
        )
        run.add_closer("warc", self.close)
        # Repairing a 1 GB file takes seconds: not on the reactor thread.
        await maybe_deferred_to_future(deferToThread(self.recover, run.spool_dir / "warc"))

    def warcinfo_fields(self, site: str, crawl_id: str) -> dict[str, str]:
        fields = {
            "software": f"newsarchive/{__version__} (scrapy, warcio-compatible writer)",
            "spider": site,
            "crawl-id": crawl_id,
            "hostname": self.hostname,
            "http-header-user-agent": str(self.crawler.settings.get("USER_AGENT") or ""),
            "robots": "obey" if self.config.robots_obey else "ignore",
            "settings-digest": self.config.settings_digest,
        }
        if self.config.operator:
            fields["operator"] = self.config.operator
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
            self.crawler.stats.inc_value(STATS_WARC_RECOVERED, recovered)
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
                self._store_file(site, path)
            leftovers = [p for p in crawl_dir.iterdir() if p.name != ".lock"]
            if not leftovers:
                shutil.rmtree(crawl_dir, ignore_errors=True)
            return len(results)

    def _file_closed(self, path: Path) -> None:
        self._store_file(self.site, path)

    def _store_file(self, site: str, path: Path) -> None:
        assert self.run is not None
        digest = self.writer.sha256_of(path) if self.writer is not None else None
        self.run.put_file(warc_key(site, path.name), path, move=True, sha256=digest)
        self.crawler.stats.inc_value(STATS_WARC_FILES)

    def close(self) -> None:
        """Close the open file (stored through ``_file_closed``); runs in ArchiveRun's thread."""
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
    def response_downloaded(self, response: Response, request: Request, spider: Spider) -> None:
        if self.writer is None or request.meta.get(META_SKIP_CAPTURE):
            return
        if "rendered" in response.flags:
            return  # a browser's DOM, no exchange: fetch/render.py archived what it received
        if not request.url.startswith(("http://", "https://")):
            return
        latency = float(request.meta.get("download_latency") or 0.0)
        date = self.clock() - timedelta(seconds=latency)
        try:
            records = self.exchange_records(response, request, date)
        except ValueError as exc:
            # A URL or header that cannot be written faithfully (e.g. CR/LF in it).
            logger.warning("not archiving %s: %s", request.url, exc, extra={"spider": spider})
            self.crawler.stats.inc_value(STATS_WARC_ERRORS)
            return
        future = self.submit(records)
        resp = records[0]
        info = CaptureInfo(
            record_id=resp.record_id,
            target_uri=request.url,
            date=format_warc_date(date),
            payload_digest=resp.payload_digest,
            future=future,
            record_type=resp.record_type,
        )
        request.meta[META_CAPTURE] = info
        if "dataloss" in response.flags or "partial" in response.flags:
            self.crawler.stats.inc_value(STATS_WARC_TRUNCATED)
        for listener in self.listeners:
            listener(info, request, response)

    def exchange_records(
        self, response: Response, request: Request, date: datetime
    ) -> list[WarcRecord]:
        body = response.body
        # Through a proxy the peer address is the proxy's, not the site's: leave it out.
        ip = None
        if response.ip_address is not None and not request.meta.get("proxy"):
            ip = str(response.ip_address)
        truncated = None
        if "dataloss" in response.flags or "partial" in response.flags:
            truncated = "disconnect"
        # Popped: a redirect or retry copies the meta into the next request.
        reason = request.meta.pop(META_HTTP_REASON, None)
        raw = parse_raw_head(request.meta.pop(META_HTTP_HEAD, None), response.status)
        protocol: str | None
        if raw is not None:
            protocol, reason, headers = raw
        else:
            protocol, headers = response.protocol, list(_header_pairs(response.headers))
        resp_head = build_response_head(protocol, response.status, reason, headers, len(body))
        earlier = None
        if self.revisit_lookup is not None and body and truncated is None:
            digest = sha1_digest(body)
            earlier = self.revisit_lookup(request.url, digest, request.meta.get(META_ARTICLE_KEY))
        if earlier is not None:
            # Identical-payload revisit: the head as received now, the payload by reference.
            resp = self.builder.revisit(
                target_uri=request.url,
                http_head=resp_head,
                date=date,
                refers_to=earlier.record_id,
                refers_to_target_uri=earlier.target_uri,
                refers_to_date=earlier.date,
                payload_digest=digest,
                ip_address=ip,
            )
        else:
            resp = self.builder.response(
                target_uri=request.url,
                http_head=resp_head,
                payload=body,
                date=date,
                ip_address=ip,
                truncated=truncated,
            )
        req_head = build_request_head(
            request.method, request.url, _header_pairs(request.headers), len(request.body)
        )
        req = self.builder.request(
            target_uri=request.url,
            http_head=req_head,
            body=request.body,
            date=date,
            concurrent_to=resp.record_id,
            ip_address=ip,
        )
        return [resp, req]

    def submit(self, records: Sequence[WarcRecord]) -> Future[list[RecordLocation]]:
        assert self.writer is not None
        stats = self.crawler.stats
        assert stats is not None
        stats.inc_value(STATS_WARC_RECORDS, len(records))
        for rec in records:
            stats.inc_value(STATS_WARC_RECORDS_BY_TYPE.format(type=rec.record_type))
            stats.inc_value(STATS_WARC_BYTES, len(rec.data))
        future = self.writer.write(records)
        future.add_done_callback(self._check_written)
        return future

    def _check_written(self, future: Future[list[RecordLocation]]) -> None:
        exc = future.exception()
        if exc is not None:
            self.crawler.stats.inc_value(STATS_WARC_ERRORS)
            if isinstance(exc, OSError) and self.run is not None:
                # The writer takes nothing more after a failed write: fetching on would
                # archive nothing. One ERROR, and the crawl stops.
                self.run.storage_failed("writing the WARC file", exc)
            else:
                logger.error("WARC write failed: %s", exc)

    def article_records(
        self,
        capture: CaptureInfo,
        text: bytes,
        metadata: Mapping[str, str | Sequence[str]],
    ) -> list[WarcRecord]:
        """The conversion (cleaned text) and metadata (provenance) records of one article."""
        # Not the page's own URL: replay tools (pywb) would index the text as one more, newer
        # capture of the page. "urn:text:" is browsertrix-crawler's name for derived text.
        conversion = self.builder.conversion(
            target_uri=TEXT_URI_PREFIX + capture.target_uri,
            content=text,
            refers_to=capture.record_id,
            refers_to_target_uri=capture.target_uri,
            refers_to_date=capture.date,
        )
        meta = self.builder.metadata(
            target_uri=capture.target_uri,
            fields=metadata,
            refers_to=capture.record_id,
        )
        return [conversion, meta]
