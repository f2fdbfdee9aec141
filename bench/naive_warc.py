"""The naive build's WARC writer: the obvious Scrapy extension around warcio's WARCWriter.

What a Scrapy user writes in an afternoon, as the benchmark's yardstick: on every
``response_downloaded`` (the body still as received, Content-Encoding and all) a request and a
response record, gzip per record, straight into one file on the reactor thread. warcio computes
the block and payload digests (SHA-1) itself. No revisits, no rotation, no catalog, no crash
recovery: the work a capture cannot skip and nothing more.

    EXTENSIONS = {"bench.naive_warc.NaiveWarcWriter": 500}
    BENCH_NAIVE_WARC = "/tmp/naive.warc.gz"
"""

from __future__ import annotations

import io
from http.client import responses
from pathlib import Path
from typing import IO, TYPE_CHECKING, Self
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.exceptions import NotConfigured
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Headers, Response


def _pairs(headers: Headers) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, values in headers.items()
        for value in values
    ]


class NaiveWarcWriter:
    """Writes a request and a response record for every downloaded response."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._writer: WARCWriter | None = None
        self.records = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        path = crawler.settings.get("BENCH_NAIVE_WARC")
        if not path:
            raise NotConfigured("BENCH_NAIVE_WARC is not set")
        ext = cls(Path(path))
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.response_downloaded, signal=signals.response_downloaded)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self) -> None:
        self._file = self.path.open("wb")
        self._writer = WARCWriter(self._file, gzip=True)

    def response_downloaded(self, response: Response, request: Request) -> None:
        writer = self._writer
        if writer is None:
            return
        parts = urlsplit(request.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request_headers = StatusAndHeaders(
            f"{request.method} {target} HTTP/1.1", _pairs(request.headers), is_http_request=True
        )
        response_headers = StatusAndHeaders(
            f"{response.status} {responses.get(response.status, '')}".rstrip(),
            _pairs(response.headers),
            protocol="HTTP/1.1",
        )
        record = writer.create_warc_record(
            response.url,
            "response",
            payload=io.BytesIO(response.body),
            http_headers=response_headers,
        )
        req = writer.create_warc_record(
            request.url,
            "request",
            payload=io.BytesIO(request.body or b""),
            http_headers=request_headers,
        )
        writer.write_request_response_pair(req, record)
        self.records += 2

    def spider_closed(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None
