"""Test crawls: small test spiders, and one crawl of one of them in a subprocess.

``python -m tests.crawl_helper SPIDER OUT [-s NAME=VALUE]... [-a NAME=VALUE]...`` runs one crawl
of the spider class ``SPIDER`` (a name in this module, or ``module:Class``) with the project
settings (so the add-on wires in capture, pipeline and report), and writes
``{"exit_code", "report", "stats"}`` to the JSON file ``OUT``. Name lookups of anything but
loopback fail, so a crawl can only ever reach the mirror. Tests call :func:`start_crawl` and
:func:`run_crawl`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import scrapy
from scrapy.http import Response
from scrapy.settings import Settings

from crawler.crawl.spider import NewsSpider
from crawler.text.extract import SiteRules

ROOT = Path(__file__).resolve().parent.parent
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

# Settings for crawls against the loopback mirror: no politeness delay against our own server.
MIRROR_SETTINGS = {
    "DOWNLOAD_DELAY": "0",
    "AUTOTHROTTLE_ENABLED": "False",
    "DOWNLOAD_TIMEOUT": "20",
    "LOG_LEVEL": "INFO",
    # The saved pages carry their real (old) dates: no 30-day discovery window.
    "ARCHIVE_DISCOVERY_WINDOW_DAYS": "0",
}


def addon_settings(**project: Any) -> Settings:
    """The project's settings as the add-on leaves them, with ``project`` values set at the
    project's priority (as a project module would)."""
    from scrapy.utils.project import get_project_settings

    from crawler.crawl.addon import Addon

    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    settings = get_project_settings()
    for name, value in project.items():
        settings.set(name, value, priority="project")
    Addon().update_settings(settings)
    return settings


def mirror_settings(mirror: Any) -> dict[str, str]:
    """Crawl through a running MirrorServer: its proxy, and its certificates for Chromium."""
    return {"ARCHIVE_PROXY": mirror.proxy_url, "ARCHIVE_RENDER_TRUSTED_SPKI": mirror.spki_sha256}


# For spiders built in unit tests from saved pages, whose dates are real and old.
NO_WINDOW = {"ARCHIVE_DISCOVERY_WINDOW_DAYS": 0}

SIMPLE_RULES = SiteRules(title=("h1",), body=("div.story",))


# ------------------------------------------------------------------ test spiders

SLOW_HOST = "slow.example.test"
_SLOW_ARTICLE = re.compile(rf"https://{re.escape(SLOW_HOST)}/a/(\d+)/")


class SlowSiteSpider(NewsSpider):
    """Many slow articles from one sitemap: a crawl that lasts long enough to be killed."""

    name = "slowsite"
    allowed_domains: ClassVar[list[str]] = [SLOW_HOST]
    sitemaps: ClassVar[tuple[str, ...]] = (f"https://{SLOW_HOST}/sitemap.xml",)
    rules: ClassVar[SiteRules] = SIMPLE_RULES

    def article_key(self, url: str) -> str | None:
        match = _SLOW_ARTICLE.fullmatch(url)
        return match.group(1) if match else None


BAD_HOST = "bad.example.test"
_BAD_ARTICLE = re.compile(rf"https://{re.escape(BAD_HOST)}/news/([a-z0-9-]+)/")


class BadInputSpider(NewsSpider):
    """A site where every source and article is broken in its own way."""

    name = "badinput"
    allowed_domains: ClassVar[list[str]] = [BAD_HOST]
    feeds: ClassVar[tuple[str, ...]] = (f"https://{BAD_HOST}/feed/",)
    sitemaps: ClassVar[tuple[str, ...]] = (
        f"https://{BAD_HOST}/sitemap.xml",
        f"https://{BAD_HOST}/broken-sitemap.xml",
    )
    rules: ClassVar[SiteRules] = SIMPLE_RULES

    def article_key(self, url: str) -> str | None:
        match = _BAD_ARTICLE.fullmatch(url)
        return match.group(1) if match else None


ROBOTS_HOST = "robots.example.test"
ROBOTS_ALLOWED = tuple(f"https://{ROBOTS_HOST}/news/{i}/" for i in range(1, 7))
ROBOTS_DISALLOWED = tuple(f"https://{ROBOTS_HOST}/private/{i}/" for i in range(1, 7))


class RobotsSpider(scrapy.Spider):
    """Asks for allowed and disallowed URLs of one host all at once, before robots.txt is in."""

    name = "robotsite"
    allowed_domains: ClassVar[list[str]] = [ROBOTS_HOST]

    async def start(self) -> AsyncIterator[Any]:
        for allowed, disallowed in zip(ROBOTS_ALLOWED, ROBOTS_DISALLOWED, strict=True):
            yield scrapy.Request(allowed, callback=self.parse)
            yield scrapy.Request(disallowed, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Any]:
        yield from ()


# ------------------------------------------------------------------ running a crawl


@dataclass(frozen=True)
class CrawlResult:
    exit_code: int
    report: dict[str, Any]
    stats: dict[str, Any]
    stderr: str


def crawl_command(
    spider: str,
    out: Path,
    *,
    settings: Mapping[str, str] | None = None,
    spider_args: Mapping[str, str] | None = None,
) -> list[str]:
    cmd = [sys.executable, "-m", "tests.crawl_helper", spider, str(out)]
    for name, value in {**MIRROR_SETTINGS, **(settings or {})}.items():
        cmd += ["-s", f"{name}={value}"]
    for name, value in (spider_args or {}).items():
        cmd += ["-a", f"{name}={value}"]
    return cmd


def crawl_env() -> dict[str, str]:
    # The environment must not add settings (the add-on reads ARCHIVE_* names from it) or
    # proxies: requests go to ARCHIVE_PROXY, the mirror, and nowhere else.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("ARCHIVE_")
        and name != "NEWSARCHIVE_STORE"
        and name.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env["PYTHONPATH"] = str(ROOT)
    # No cached public suffix list: a crawl must not try to download one (name lookups off
    # loopback fail the test), as on a fresh machine.
    env["TLDEXTRACT_CACHE"] = tempfile.mkdtemp(prefix="tldextract-")
    env.pop("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", None)
    env["SCRAPY_SETTINGS_MODULE"] = "settings"
    return env


def start_crawl(
    spider: str,
    out: Path,
    *,
    settings: Mapping[str, str] | None = None,
    spider_args: Mapping[str, str] | None = None,
    stderr_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a crawl subprocess (stderr to ``stderr_path``, or ``out`` + ``.log``).

    ``env`` adds variables to the crawl's environment (an S3 server's credentials).
    """
    log = stderr_path or out.with_suffix(".log")
    with log.open("wb") as err:
        return subprocess.Popen(
            crawl_command(spider, out, settings=settings, spider_args=spider_args),
            cwd=ROOT,
            env={**crawl_env(), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def run_crawl(
    spider: str,
    out: Path,
    *,
    settings: Mapping[str, str] | None = None,
    spider_args: Mapping[str, str] | None = None,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
) -> CrawlResult:
    """Run a crawl to its end and return its exit code, crawl report and stats."""
    log = out.with_suffix(".log")
    proc = start_crawl(
        spider, out, settings=settings, spider_args=spider_args, stderr_path=log, env=env
    )
    try:
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = log.read_text(errors="replace")
    blocked = [line for line in stderr.splitlines() if "blocked name lookup" in line]
    assert not blocked, "\n".join(blocked[:20])
    assert out.exists(), f"crawl wrote no result (exit {proc.returncode}):\n{stderr[-5000:]}"
    data = json.loads(out.read_text())
    assert data["exit_code"] == proc.returncode
    return CrawlResult(proc.returncode, data["report"], data["stats"], stderr)


def _guard_name_lookups() -> None:
    """Belt and braces: name lookups of anything but loopback fail in the crawl process."""
    getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in _LOOPBACK:
            raise OSError(f"blocked name lookup of {name!r}")
        return getaddrinfo(host, *args, **kwargs)

    def guarded_gethostbyname(host: str) -> str:
        if host not in _LOOPBACK:
            raise OSError(f"blocked name lookup of {host!r}")
        return "127.0.0.1"

    socket.getaddrinfo = guarded_getaddrinfo
    socket.gethostbyname = guarded_gethostbyname


def _pairs(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in values:
        name, _, value = pair.partition("=")
        out[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.crawl_helper")
    parser.add_argument("spider", help="a spider class of this module, or module:Class")
    parser.add_argument("out", type=Path, help="JSON file for exit code, report and stats")
    parser.add_argument("-s", dest="settings", action="append", default=[])
    parser.add_argument("-a", dest="args", action="append", default=[])
    ns = parser.parse_args(argv)
    _guard_name_lookups()

    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.misc import load_object
    from scrapy.utils.project import get_project_settings

    from crawler.constants import EXIT_FAILED, EXIT_OK
    from crawler.crawl.archive import ArchiveCrawl
    from crawler.crawl.runner import crawl_failed

    spider_path = ns.spider if ":" in ns.spider else f"tests.crawl_helper.{ns.spider}"
    spidercls = load_object(spider_path.replace(":", "."))
    settings = get_project_settings()
    settings.setdict(_pairs(ns.settings), priority="cmdline")
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(spidercls)
    process.crawl(crawler, **_pairs(ns.args))
    process.start()
    root = crawler.get_extension(ArchiveCrawl)
    report = root.ledger.report if root is not None else None
    assert crawler.stats is not None
    stats = {
        k: v
        for k, v in crawler.stats.get_stats().items()
        if isinstance(v, (int, float, str)) and not isinstance(v, bool)
    }
    code = EXIT_FAILED if crawl_failed(report) else EXIT_OK
    ns.out.write_text(json.dumps({"exit_code": code, "report": report, "stats": stats}, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main())
