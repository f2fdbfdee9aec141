"""The response head is archived as received: real reason phrase, header names and order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import scrapy
from scrapy.http import Response
from warcio.archiveiterator import ArchiveIterator

from crawler.crawl.capture import parse_raw_head
from crawler.mirror.routes import Route
from crawler.mirror.server import MirrorServer
from tests.crawl_helper import run_crawl

HOST = "head.example.test"
ODD = f"https://{HOST}/odd"
OLD = f"https://{HOST}/old"
NEW = f"https://{HOST}/new"
ODD_HEADERS = [
    ["x-lower-case", "1"],
    ["Set-Cookie", "a=1; Path=/"],
    ["X-Mixed-CASE", "2"],
    ["Set-Cookie", "b=2; Path=/"],
]


class HeadSpider(scrapy.Spider):
    name = "headsite"
    allowed_domains: ClassVar[list[str]] = [HOST]
    custom_settings: ClassVar[dict[str, Any]] = {"ROBOTSTXT_OBEY": False}

    async def start(self) -> AsyncIterator[Any]:
        yield scrapy.Request(ODD, callback=self.parse)
        yield scrapy.Request(OLD, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Any]:
        yield from ()


@pytest.mark.parametrize(
    ("lines", "status", "expected"),
    [
        (
            [b"HTTP/1.1 200 Fine Thanks", b"x-a: 1", b"Set-Cookie: a", b"X-B:2", b"Set-Cookie: b"],
            200,
            (
                "HTTP/1.1",
                "Fine Thanks",
                [(b"x-a", b"1"), (b"Set-Cookie", b"a"), (b"X-B", b"2"), (b"Set-Cookie", b"b")],
            ),
        ),
        (
            [b"HTTP/1.0 404", b"A: 1", b"  folded", b"no colon here"],
            404,
            ("HTTP/1.0", "", [(b"A", b"1 folded")]),
        ),
        ([b"HTTP/1.1 301 Moved Permanently", b"Location: /x"], 200, None),  # another response
        ([b"garbage"], 200, None),
        ([], 200, None),
        (None, 200, None),
    ],
)
def test_parse_raw_head(
    lines: list[bytes] | None,
    status: int,
    expected: tuple[str, str, list[tuple[bytes, bytes]]] | None,
) -> None:
    assert parse_raw_head(lines, status) == expected


def _responses(store: Path) -> dict[str, bytes]:
    heads: dict[str, bytes] = {}
    for path in (store / "warc").rglob("*.warc.gz"):
        with path.open("rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type == "response":
                    uri = rec.rec_headers.get_header("WARC-Target-URI")
                    heads[uri] = rec.http_headers.to_bytes()
    return heads


def test_head_lines_are_archived_as_sent(tmp_path: Path) -> None:
    with MirrorServer(sites=[]) as mirror:
        mirror.add_route(
            Route(
                url=ODD, body=b"odd", reason="Fine Thanks", headers=[tuple(h) for h in ODD_HEADERS]
            )
        )
        mirror.add_route(Route(url=OLD, redirect=NEW, status=302))
        mirror.add_route(Route(url=NEW, body=b"new", headers=[("X-New", "yes")]))
        result = run_crawl(
            f"{__name__}:HeadSpider",
            tmp_path / "out.json",
            settings={"ARCHIVE_PROXY": mirror.proxy_url, "ARCHIVE_STORE_URI": str(tmp_path / "s")},
        )
    assert result.exit_code == 0, result.stderr[-3000:]
    heads = _responses(tmp_path / "s")
    odd = heads[ODD].split(b"\r\n")
    assert odd[0] == b"HTTP/1.1 200 Fine Thanks"
    # Names as sent (Twisted would give "X-Lower-Case", "X-Mixed-Case"), repeated headers in
    # their own places (Twisted groups them).
    ours = [
        line
        for line in odd
        if line.split(b":")[0].lower() in (b"x-lower-case", b"set-cookie", b"x-mixed-case")
    ]
    assert ours == [f"{n}: {v}".encode() for n, v in ODD_HEADERS]
    # The redirect's head stays with the redirect: the next response has its own.
    assert heads[OLD].split(b"\r\n")[0] == b"HTTP/1.1 302 Found"
    new = heads[NEW].split(b"\r\n")
    assert new[0] == b"HTTP/1.1 200 OK"
    assert b"X-New: yes" in new
    assert not any(line.startswith(b"Location") for line in new)
