"""The sources file (crawler/crawl/sources.py), its spiders, its schedules, the egress guard
decision of ``sources add``, and the commands' help: unit tests, no network."""

from __future__ import annotations

import argparse
import re
import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest
from scrapy.settings import Settings

from crawler.crawl.generic import GenericNewsSpider, SourcesSpiderLoader, generic_spider
from crawler.crawl.sources import (
    SourceEntry,
    SourcesError,
    add_entry,
    configured_sources,
    default_sources_file,
    load_sources,
    parse_entry,
)
from crawler.ops import cli
from crawler.ops import sources as ops_sources

GOOD = """
[sources.harborpost]
start_urls = ["https://www.harborpost.example/"]
hosts = ["harborpost.example"]
feeds = ["https://www.harborpost.example/feed/"]
sitemaps = ["https://www.harborpost.example/wp-sitemap.xml"]
articles = ['^/\\d{4}/\\d{1,2}/\\d{1,2}/[^/]+/$']
delay = 2
concurrency = 1
schedule = "15 */4 * * *"

[sources.harborpost.selectors]
headline = "h1.entry-title"
body = "div.entry-content"
date = ["time.published", 'meta[property="article:published_time"]']
timezone = "America/New_York"

[sources.valleytimes]
start_urls = ["https://www.valleytimes.example/"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_entries_parsed_and_completed(tmp_path: Path) -> None:
    harbor, valley = load_sources(write(tmp_path, GOOD))
    assert harbor.name == "harborpost"
    # The start URLs' hosts join the hosts given.
    assert harbor.hosts == ("harborpost.example", "www.harborpost.example")
    assert harbor.delay == 2.0 and harbor.concurrency == 1
    rules = harbor.rules()
    assert rules is not None
    assert rules.title == ("h1.entry-title",) and rules.body == ("div.entry-content",)
    assert rules.published == ("time.published", 'meta[property="article:published_time"]')
    assert rules.timezone == "America/New_York"
    # Nothing but a start page: it is the listing; no selectors: the generic extractor.
    assert valley.listings == ("https://www.valleytimes.example/",)
    assert valley.articles == () and valley.rules() is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            'start_urls = ["https://a.example/"]\nfeed = []',
            "unknown key 'feed' (did you mean feeds?)",
        ),
        ('start_urls = ["https://a.example/"]\nsitemap = []', "(did you mean sitemaps?)"),
        ("hosts = []", "start_urls is required"),
        ('start_urls = ["ftp://a.example/"]', "is not an http(s) URL"),
        ('start_urls = ["https://a.example:99999/"]', "is not a URL"),
        (
            'start_urls = ["https://a.example/"]\nfeeds = ["https://b.example/feed"]',
            "not on the source's hosts",
        ),
        ('start_urls = ["https://a.example/"]\narticles = "all"', 'articles must be "auto"'),
        ('start_urls = ["https://a.example/"]\narticles = ["(unclosed"]', "bad regex"),
        ('start_urls = ["https://a.example/"]\ndelay = -1', "delay must be seconds"),
        ('start_urls = ["https://a.example/"]\nrender = "yes"', "render must be true or false"),
        ('start_urls = ["https://a.example/"]\nschedule = "hourly"', "schedule must be a cron"),
        ('start_urls = ["https://a.example/"]\nlisting_pages = 0', "listing_pages must be"),
        ('start_urls = ["https://a.example/"]\nselectors = {headline = "h1"}', "body is required"),
        (
            'start_urls = ["https://a.example/"]\nselectors = {body = "div", hedline = "h1"}',
            "(did you mean headline?)",
        ),
        ('start_urls = ["https://a.example/"]\nselectors = {body = "div[["}', "selectors:"),
        (
            'start_urls = ["https://a.example/"]\n'
            'selectors = {body = "div", timezone = "Mars/Base"}',
            "selectors:",
        ),
        ('start_urls = ["https://a.example/"]\nhosts = ["not a host"]', "is not a host name"),
    ],
)
def test_a_mistake_is_one_line_naming_file_source_and_key(
    tmp_path: Path, entry: str, message: str
) -> None:
    path = write(tmp_path, f"[sources.site]\n{entry}\n")
    with pytest.raises(SourcesError) as caught:
        load_sources(path)
    text = str(caught.value)
    assert message in text
    assert f"sources file {path}: [sources.site]" in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[source.x]\nstart_urls = []\n", "unknown table or key 'source' (did you mean sources?)"),
        ("[sources.Bad_Name]\nstart_urls = ['https://a.example/']\n", "the name must be"),
        ("[sources\n", "sources file"),
    ],
)
def test_file_mistakes(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SourcesError, match=re.escape(message)):
        load_sources(write(tmp_path, text))


def test_to_toml_reads_back_as_the_same_entry(tmp_path: Path) -> None:
    harbor, _ = load_sources(write(tmp_path, GOOD))
    again = parse_entry("harborpost", tomllib.loads(harbor.to_toml())["sources"]["harborpost"], "x")
    assert again == harbor


def test_add_entry_appends_and_refuses_a_taken_name(tmp_path: Path) -> None:
    path = write(tmp_path, "# the operator's comment\n" + GOOD)
    entry = SourceEntry(
        name="coastaldaily",
        start_urls=("https://news.coastaldaily.example/",),
        hosts=("news.coastaldaily.example",),
        sitemaps=("https://news.coastaldaily.example/sitemap-news.xml",),
    )
    add_entry(path, entry)
    text = path.read_text()
    assert text.startswith("# the operator's comment\n")
    assert [e.name for e in load_sources(path)] == ["harborpost", "valleytimes", "coastaldaily"]
    for taken, names in (
        (entry, ()),
        (SourceEntry("tdi", entry.start_urls, entry.hosts), ("tdi",)),
    ):
        with pytest.raises(SourcesError, match="exists already"):
            add_entry(path, taken, names)
        assert path.read_text() == text  # nothing written
    fresh = tmp_path / "new" / "sources.toml"
    add_entry(fresh, entry)
    assert [e.name for e in load_sources(fresh)] == ["coastaldaily"]


def test_where_the_file_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCHIVE_SOURCES_FILE", raising=False)
    monkeypatch.delenv("ARCHIVE_SCHEDULE_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_sources_file(Settings()) == Path("sources.toml")
    assert configured_sources(Settings()) == []  # none in place: no sources
    schedule = tmp_path / "etc" / "schedule.toml"
    settings = Settings({"ARCHIVE_SCHEDULE_FILE": str(schedule)})
    assert default_sources_file(settings) == tmp_path / "etc" / "sources.toml"
    missing = Settings({"ARCHIVE_SOURCES_FILE": str(tmp_path / "typo.toml")})
    # A file named on purpose that is not there is an error, never "no sources".
    with pytest.raises(SourcesError, match="does not exist"):
        configured_sources(missing)
    monkeypatch.setenv("ARCHIVE_SOURCES_FILE", str(write(tmp_path, GOOD)))
    assert [e.name for e in configured_sources(Settings())] == ["harborpost", "valleytimes"]


def test_the_loader_adds_a_generic_spider_per_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVE_SOURCES_FILE", str(write(tmp_path, GOOD)))
    loader = SourcesSpiderLoader(Settings({"SPIDER_MODULES": ["spiders"]}))
    names = sorted(loader.list())
    assert names == sorted(
        ["almasirah", "irna", "president", "presstv", "tdi", "harborpost", "valleytimes"]
    )
    cls = loader.load("harborpost")
    assert issubclass(cls, GenericNewsSpider)
    assert cls.name == "harborpost"
    assert cls.feeds == ("https://www.harborpost.example/feed/",)
    assert cls.custom_settings == {"DOWNLOAD_DELAY": 2.0, "CONCURRENT_REQUESTS_PER_DOMAIN": 1}
    assert loader.load("tdi").__module__ == "spiders.tdi"
    clash = write(tmp_path, '[sources.tdi]\nstart_urls = ["https://a.example/"]\n')
    monkeypatch.setenv("ARCHIVE_SOURCES_FILE", str(clash))
    with pytest.raises(SourcesError, match="built-in spider"):
        SourcesSpiderLoader(Settings({"SPIDER_MODULES": ["spiders"]}))


def test_generic_spider_article_rule(tmp_path: Path) -> None:
    harbor, valley = load_sources(write(tmp_path, GOOD))
    spider = generic_spider(harbor)()
    assert spider.article_key("https://harborpost.example/2025/06/11/a-story/") == (
        "2025/06/11/a-story"
    )
    assert spider.article_key("https://www.harborpost.example/category/politics/") is None
    assert spider.article_key("https://elsewhere.example/2025/06/11/a-story/") is None
    assert getattr(spider, "rules", None) is not None
    auto = generic_spider(valley)()
    assert getattr(auto, "rules", None) is None  # the generic extractor
    assert auto.article_key("https://www.valleytimes.example/stories/a-story-80501.html")
    assert auto.article_key("https://www.valleytimes.example/local/") is None


def test_a_sources_schedule_reaches_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crawler.ops.schedule import ScheduleConfig, ScheduleError

    monkeypatch.setenv("ARCHIVE_SOURCES_FILE", str(write(tmp_path, GOOD)))
    sites = ["tdi", "harborpost", "valleytimes"]
    from crawler.options import archive_defaults

    settings = Settings(archive_defaults())
    config = ScheduleConfig.from_settings(settings, sites)
    assert config.site("harborpost").crawl == "15 */4 * * *"
    assert config.site("valleytimes").crawl == "0 */2 * * *"
    # ARCHIVE_SCHEDULE still wins over the source's own.
    settings = Settings({**archive_defaults(), "ARCHIVE_SCHEDULE": {"harborpost": "5 * * * *"}})
    assert ScheduleConfig.from_settings(settings, sites).site("harborpost").crawl == "5 * * * *"
    bad = write(
        tmp_path, '[sources.x]\nstart_urls = ["https://a.example/"]\nschedule = "99 * * * *"\n'
    )
    monkeypatch.setenv("ARCHIVE_SOURCES_FILE", str(bad))
    with pytest.raises(ScheduleError, match=r"\[sources.x\] schedule"):
        ScheduleConfig.from_settings(Settings(archive_defaults()), ["x"])


def test_crawl_with_a_bad_sources_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[sources.x]\nstart_url = ["https://a.example/"]\n')
    monkeypatch.setenv("ARCHIVE_SOURCES_FILE", str(path))
    assert cli.main(["crawl", "x", "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: sources file {path}: [sources.x]: unknown key 'start_url' (did you mean "
        "start_urls?) (keys: start_urls, hosts, feeds, sitemaps, listings, discover, articles, "
        "listing_pages, render, delay, concurrency, schedule, selectors)"
    )
    assert not (tmp_path / "store").exists()


# ------------------------------------------------------------------ the egress guard's decision


class NoSockets:
    """Fails the test if anything opens an internet socket (asyncio's own AF_UNIX pair is
    allowed); ``install`` puts it in place of ``socket.socket``."""

    def __init__(self) -> None:
        self.opened: list[Any] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        opened = self.opened
        internet = (socket.AF_INET, socket.AF_INET6, -1)

        class Guarded(socket.socket):
            def __init__(
                self, family: Any = -1, type: Any = -1, proto: Any = -1, fileno: Any = None
            ) -> None:
                if fileno is None and family in internet:
                    opened.append((family, type))
                    raise AssertionError("an internet socket was opened")
                super().__init__(family, type, proto, fileno)

        monkeypatch.setattr(socket, "socket", Guarded)


async def private_resolver(host: str) -> list[str]:
    return {"intranet.news.example": ["10.0.0.1"]}.get(host, ["93.184.215.14"])


def test_guard_refuses_a_private_address_without_a_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crawler.ops.common import archive_settings

    settings = archive_settings(["ARCHIVE_PROXY="])
    no_sockets = NoSockets()
    no_sockets.install(monkeypatch)
    refusal = ops_sources.guard_refusal(
        "https://intranet.news.example/", settings, private_resolver
    )
    assert (
        refusal
        == "intranet.news.example is 10.0.0.1, a private address (not in ARCHIVE_NETGUARD_ALLOW)"
    )
    assert ops_sources.guard_refusal("https://public.example/", settings, private_resolver) is None
    assert ops_sources.guard_refusal("http://127.0.0.1:8080/", settings, private_resolver) == (
        "127.0.0.1 a loopback address (not in ARCHIVE_NETGUARD_ALLOW)"
    )
    assert no_sockets.opened == []


def test_sources_add_on_a_private_host_is_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    file = tmp_path / "sources.toml"
    monkeypatch.setenv("ARCHIVE_SOURCES_FILE", str(file))
    monkeypatch.delenv("ARCHIVE_PROXY", raising=False)
    probes: list[Any] = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: probes.append(a))
    no_sockets = NoSockets()
    no_sockets.install(monkeypatch)
    parser = cli.build_parser()
    ns = parser.parse_args(["sources", "add", "https://intranet.news.example/"])
    assert ops_sources.cmd_add(ns, resolve=private_resolver) == 2
    out = capsys.readouterr()
    assert out.err == (
        "error: https://intranet.news.example/: refused by the egress guard: "
        "intranet.news.example is 10.0.0.1, a private address (not in ARCHIVE_NETGUARD_ALLOW)\n"
    )
    assert out.out == ""
    assert probes == [] and no_sockets.opened == []
    assert not file.exists()


@pytest.mark.parametrize(
    ("url", "owner"),
    [
        ("https://thediplomaticinsight.com/", "tdi"),
        ("https://www.presstv.co.uk/", "presstv"),
        ("https://news.harborpost.example/", "harborpost"),
    ],
)
def test_sources_add_refuses_a_site_crawled_already(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    owner: str,
) -> None:
    import subprocess

    file = write(tmp_path, GOOD)
    before = file.read_text()
    monkeypatch.setenv("ARCHIVE_SOURCES_FILE", str(file))
    probes: list[Any] = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: probes.append(a))
    ns = cli.build_parser().parse_args(["sources", "add", url, "--name", "other"])
    assert ops_sources.cmd_add(ns, resolve=private_resolver) == 2
    host = url.split("/")[2]
    assert capsys.readouterr().err == (
        f"error: {url}: {owner} crawls {host} already; nothing written\n"
    )
    assert probes == [] and file.read_text() == before


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://www.harborpost.example/", "harborpost"),
        ("https://news.coastaldaily.example/x", "coastaldaily"),
        ("https://english.almasirah.net.ye/", "almasirah-net"),
        ("https://loop.plain-page.example/", "loop-plain-page"),
        ("http://localhost:8080/", "localhost"),
    ],
)
def test_name_from_the_host(url: str, name: str) -> None:
    assert ops_sources.name_for(url) == name


def test_not_news() -> None:
    assert ops_sources.not_news({"error": "HTTP 404 (no page at this URL)"}) == (
        "HTTP 404 (no page at this URL)"
    )
    assert "no feed, no sitemap" in str(ops_sources.not_news({"articles": {}}))
    found: dict[str, Any] = {
        "articles": {"https://a.example/2025/01/01/x-y-z-w/": "listing"},
        "samples": [{"url": "u", "article": False, "error": None, "words": 10}],
    }
    assert "none of the 1 pages it links as articles reads as one" in str(
        ops_sources.not_news(found)
    )
    found["samples"][0]["article"] = True
    assert ops_sources.not_news(found) is None


# ------------------------------------------------------------------ help


def _subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize(
    ("path", "example"),
    [
        (("sources",), "newsarchive sources add https://"),
        (("sources", "add"), "newsarchive sources add https://"),
        (("sources", "test"), "newsarchive sources test harborpost"),
        (("sources", "list"), "newsarchive sources list"),
    ],
)
def test_help_has_an_example(path: tuple[str, ...], example: str) -> None:
    text = _subparser(cli.build_parser(), *path).format_help()
    assert "examples:" in text
    assert example in text
