"""A real Scrapy crawl through the loopback mirror, in a subprocess (the reactor cannot restart)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler.mirror.server import MirrorServer

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "crawler" / "mirror" / "sites" / "example"
H = "https://news.example.test"

CRAWL_SCRIPT = r"""
import json
import socket
import sys

proxy, out_path, follow_from, follow, *urls = sys.argv[1:]

# Belt and braces: this crawl may only ever reach the mirror on loopback.
_getaddrinfo = socket.getaddrinfo
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in _LOOPBACK:
        raise OSError(f"blocked name lookup of {name!r}")
    return _getaddrinfo(host, *args, **kwargs)


def _guarded_gethostbyname(host):
    if host not in _LOOPBACK:
        raise OSError(f"blocked name lookup of {host!r}")
    return "127.0.0.1"


socket.getaddrinfo = _guarded_getaddrinfo
socket.gethostbyname = _guarded_gethostbyname

import scrapy  # noqa: E402
from scrapy.crawler import CrawlerProcess  # noqa: E402

results = []


class MirrorSpider(scrapy.Spider):
    name = "mirror_test"
    allowed_domains = ["news.example.test", "unmirrored.example.org"]

    async def start(self):
        for url in urls:
            yield scrapy.Request(
                url, meta={"proxy": proxy}, callback=self.parse, errback=self.failed,
                dont_filter=True,
            )

    def parse(self, response):
        if response.url == follow_from:
            # Only once robots.txt is parsed: Scrapy 2.19's RobotsTxtMiddleware lets requests
            # that were waiting for it through unchecked (asyncio reactor, Deferred.asFuture).
            yield response.follow(
                follow, meta={"proxy": proxy}, callback=self.parse, errback=self.failed
            )
        results.append({
            "request_url": response.meta.get("redirect_urls", [response.request.url])[0],
            "url": response.url,
            "status": response.status,
            "flags": response.flags,
            "body": response.body.decode("utf-8", "replace"),
            "redirect_urls": response.meta.get("redirect_urls", []),
        })

    def failed(self, failure):
        results.append({"request_url": failure.request.url, "error": failure.type.__name__})


process = CrawlerProcess(settings={
    "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
    "DOWNLOAD_FAIL_ON_DATALOSS": False,
    "HTTPERROR_ALLOW_ALL": True,
    "ROBOTSTXT_OBEY": True,
    "TELNETCONSOLE_ENABLED": False,
    "REMOTE_CONTROL_ENABLED": False,
    "DOWNLOAD_TIMEOUT": 15,
    "LOG_LEVEL": "INFO",
})
crawler = process.create_crawler(MirrorSpider)
process.crawl(crawler)
process.start()
stats = {k: v for k, v in crawler.stats.get_stats().items() if isinstance(v, (int, float, str))}
with open(out_path, "w") as f:
    json.dump({"results": results, "stats": stats}, f)
"""

URLS = [
    f"{H}/",
    f"{H}/article/1/",  # gzip
    f"{H}/article/2/",  # brotli, chunked
    f"{H}/long/chunked/",
    f"{H}/old-article/",  # 301
    f"{H}/nothing/",  # 404
    f"{H}/truncated/",
    f"{H}/flaky/",  # 500, 500, then 200: within Scrapy's two retries
    "http://news.example.test/plain/",
    "https://unmirrored.example.org/",
]
FOLLOW = [f"{H}/", f"{H}/private/secret/"]  # followed from the first: disallowed by robots.txt


@pytest.fixture(scope="module")
def crawl(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Any], MirrorServer]]:
    workdir = tmp_path_factory.mktemp("crawl")
    out = workdir / "out.json"
    # A file, not ``python -c``: Scrapy reads generator callbacks' source.
    script = workdir / "crawl.py"
    script.write_text(CRAWL_SCRIPT)
    with MirrorServer([SITE]) as mirror:
        env = {
            **os.environ,
            # The robots.txt middleware's own requests carry no meta: send them via the proxy too.
            "http_proxy": mirror.proxy_url,
            "https_proxy": mirror.proxy_url,
            "no_proxy": "",
        }
        env.pop("NO_PROXY", None)
        proc = subprocess.run(
            [sys.executable, str(script), mirror.proxy_url, str(out), *FOLLOW, *URLS],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "blocked name lookup" not in proc.stderr
        data = json.loads(out.read_text())
        yield data, mirror


def by_url(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["request_url"]: r for r in data["results"]}


def test_scrapy_gets_pages_decoded_through_the_mirror(
    crawl: tuple[dict[str, Any], MirrorServer],
) -> None:
    data, mirror = crawl
    results = by_url(data)
    assert results[f"{H}/"]["status"] == 200
    assert results[f"{H}/"]["body"] == (SITE / "index.html").read_text()
    assert results[f"{H}/article/1/"]["body"] == (SITE / "article-1.html").read_text()
    long = (SITE / "long-report.html").read_text()
    assert results[f"{H}/article/2/"]["body"] == long
    assert results[f"{H}/long/chunked/"]["body"] == long
    assert results["http://news.example.test/plain/"]["body"] == "served over plain http\n"
    # Scrapy asked for compression and really got (and undid) it: /article/1/ twice (once as
    # the redirect's target) and /article/2/.
    assert data["stats"]["httpcompression/response_count"] == 3
    sent = {r.url: r for r in mirror.requests if r.method == "GET"}
    assert "gzip" in (sent[f"{H}/article/1/"].header("Accept-Encoding") or "")
    assert "br" in (sent[f"{H}/article/2/"].header("Accept-Encoding") or "")


def test_scrapy_redirect_404_and_retries(crawl: tuple[dict[str, Any], MirrorServer]) -> None:
    data, mirror = crawl
    results = by_url(data)
    moved = results[f"{H}/old-article/"]
    assert (moved["status"], moved["url"]) == (200, f"{H}/article/1/")
    assert moved["redirect_urls"] == [f"{H}/old-article/"]
    assert results[f"{H}/nothing/"]["status"] == 404
    assert results[f"{H}/nothing/"]["body"] == (SITE / "404.html").read_text()
    assert results[f"{H}/flaky/"]["status"] == 200
    assert sum(r.url == f"{H}/flaky/" for r in mirror.requests) == 3
    assert data["stats"]["retry/count"] >= 2


def test_scrapy_sees_truncation_as_dataloss(crawl: tuple[dict[str, Any], MirrorServer]) -> None:
    data, _ = crawl
    truncated = by_url(data)[f"{H}/truncated/"]
    assert "dataloss" in truncated["flags"]
    assert truncated["body"] == (SITE / "long-report.html").read_text()[:1000]


def test_scrapy_robots_and_unmirrored_host(crawl: tuple[dict[str, Any], MirrorServer]) -> None:
    data, mirror = crawl
    results = by_url(data)
    urls = [r.url for r in mirror.requests]
    assert f"{H}/robots.txt" in urls
    assert f"{H}/private/secret/" not in urls
    assert results[f"{H}/private/secret/"]["error"] == "IgnoreRequest"
    assert data["stats"]["robotstxt/forbidden"] == 1
    assert results["https://unmirrored.example.org/"]["error"] == "TunnelError"
    assert "unmirrored.example.org:443" in urls
