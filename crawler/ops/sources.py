"""``newsarchive sources add | test | list``: onboarding a news site as data, no code.

``add URL`` probes the site (crawler/crawl/probe.py: robots.txt obeyed, every request through
the crawl's egress guard and proxy, nothing archived), prints the feeds, sitemaps and listing
pages it found, how many article URLs, and five sample articles as the generic extractor reads
them, then appends the entry to the sources file. A URL that is no news site (no page, a
redirect loop, a private address, no feed, sitemap or article links) is one line, exit 2, and
nothing is written. ``test NAME`` crawls a few of the source's articles into a scratch store
and reports each one's extraction; ``list`` shows the configured sources.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.constants import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from crawler.crawl.sources import (
    SourceEntry,
    SourcesError,
    add_entry,
    configured_sources,
    default_sources_file,
    sources_file,
)

Resolver = Callable[[str], Awaitable[list[str]]]
# A text under this many words (headline left out) is no article's text: a teaser, a caption,
# a paywall stub or a page of links.
MIN_WORDS = 50
PROBE_TIMEOUT = 180.0
_LABELS_DROPPED = frozenset({"www", "m", "en", "english", "news", "amp", "mobile"})


async def system_resolve(host: str) -> list[str]:
    """The host's addresses, as the operating system's resolver gives them."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None)
    return sorted({str(info[4][0]) for info in infos})


def guard_refusal(url: str, settings: Any, resolve: Resolver = system_resolve) -> str | None:
    """Why the egress guard refuses ``url`` (its host is a private address, ...), or None.

    The same decision as the crawl's (``NetGuard.vet``); made before the probe starts, so a
    refused host gets no packet at all. Through a proxy the target's name is not resolved here
    (the proxy resolves it), as for the crawl's proxied requests.
    """
    from crawler.fetch.netguard import NetGuard, NetGuardConfig

    config = NetGuardConfig.from_settings(settings)
    guard = NetGuard(config, resolve)
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    verdict = asyncio.run(guard.vet(host, proxied=bool(config.proxy)))
    return verdict.reason() if verdict.refused else None


def name_for(url: str) -> str:
    """A source name from a URL's host: ``news.harborpost.example`` gives ``harborpost``."""
    labels = (urlsplit(url).hostname or "").lower().rstrip(".").split(".")
    while len(labels) > 2 and labels[0] in _LABELS_DROPPED:
        labels.pop(0)
    kept = labels[:-1] if len(labels) > 1 else labels
    name = re.sub(r"[^a-z0-9_-]+", "-", "-".join(kept)).strip("-_")
    return name[:63] or "source"


def _check_url(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{url!r} is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL (give the site's home page, https://...)"
    return None


def run_probe(url: str, overrides: dict[str, str], *, verbose: bool = False) -> dict[str, Any]:
    """The probe crawl in its own process (a Twisted reactor runs once): what it found."""
    with tempfile.TemporaryDirectory(prefix="newsarchive-probe-") as tmp:
        out = Path(tmp) / "probe.json"
        cmd = [sys.executable, "-m", "crawler.crawl.probe", url, str(out)]
        for name, value in overrides.items():
            cmd += ["-s", f"{name}={value}"]
        proc = subprocess.run(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=None if verbose else subprocess.PIPE,
            text=True,
            timeout=PROBE_TIMEOUT,
            env={**os.environ, "SCRAPY_SETTINGS_MODULE": "settings"},
        )
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return {"error": f"the probe failed (exit {proc.returncode}): {tail[0][:300]}"}
        found: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return found


def not_news(found: dict[str, Any]) -> str | None:
    """Why a probe's findings are no news site, or None."""
    if found.get("error"):
        return str(found["error"])
    if not found.get("articles"):
        return (
            "not a news site: no feed, no sitemap and no links to article pages found "
            "(give the home page of a news site)"
        )
    samples = found.get("samples") or []
    good = [s for s in samples if s.get("article") and not s.get("error") and s.get("words")]
    if not good:
        causes = sorted({str(s.get("error") or "not an article page") for s in samples})
        return (
            f"not a news site: none of the {len(samples)} pages it links as articles reads as "
            f"one ({', '.join(causes) or 'none fetched'})"
        )
    return None


def entry_from(name: str, url: str, found: dict[str, Any]) -> SourceEntry:
    """The sources entry for what a probe found."""
    from crawler.text.discover import common_pattern

    start = str(found.get("final_url") or url)
    articles = list(found.get("articles") or {})
    pattern = common_pattern(articles, share=0.9)
    return SourceEntry(
        name=name,
        start_urls=(start,),
        hosts=tuple(found.get("hosts") or [urlsplit(start).hostname or ""]),
        feeds=tuple(found.get("feeds") or {}),
        sitemaps=tuple(found.get("sitemaps") or {}),
        listings=tuple(found.get("listings") or {}),
        articles=(pattern,) if pattern else (),
    )


def print_findings(entry: SourceEntry, found: dict[str, Any]) -> None:
    def show(label: str, items: dict[str, int], unit: str = "article links") -> None:
        if not items:
            print(f"  {label:10} none")
            return
        for i, (url, count) in enumerate(items.items()):
            print(f"  {label if i == 0 else '':10} {url} ({count} {unit})")

    print(f"{entry.name}: {entry.start_urls[0]}")
    show("feeds:", found.get("feeds") or {})
    sitemaps = found.get("sitemaps") or {}
    news = set(found.get("news_sitemaps") or [])
    show("sitemaps:", sitemaps, "article URLs" + (", Google News sitemap" if news else ""))
    show("listings:", found.get("listings") or {})
    rule = entry.articles[0] if entry.articles else "auto (URL and page tests)"
    print(f"  {'articles:':10} {len(found.get('articles') or {})} article URLs; rule: {rule}")
    samples = [s for s in found.get("samples") or [] if not s.get("error")][:5]
    others = [s for s in found.get("samples") or [] if s.get("error")]
    print(f"  samples, as the generic extractor reads them ({len(samples)}):")
    for i, sample in enumerate(samples, 1):
        flags = _flags(sample.get("words") or 0, sample.get("published"), sample.get("title"))
        first = str(sample.get("first_line") or "")
        first = first if len(first) <= 110 else first[:107] + "..."
        print(f"   {i}. {sample.get('title') or '(no headline)'}")
        print(
            f"      {sample.get('published') or 'no date'} · {sample.get('words')} words"
            + (f" · {', '.join(flags)}" if flags else "")
        )
        print(f"      {first}")
        print(f"      {sample['url']}")
    for sample in others:
        print(f"   -  {sample['url']}: {sample['error']}")


def _flags(words: int, published: Any, title: Any) -> list[str]:
    flags = []
    if words == 0:
        flags.append("empty")
    elif words < MIN_WORDS:
        flags.append("degenerate")
    if not published:
        flags.append("no-date")
    if not title:
        flags.append("no-headline")
    return flags


def _overrides(ns: argparse.Namespace) -> dict[str, str]:
    from crawler.options import parse_pairs

    overrides = parse_pairs(list(ns.settings), "-s")
    if getattr(ns, "proxy", None):
        overrides["ARCHIVE_PROXY"] = ns.proxy
    return overrides


def _sources_path(ns: argparse.Namespace, settings: Any) -> Path:
    if getattr(ns, "file", None):
        return Path(ns.file).expanduser()
    return default_sources_file(settings)


def crawled_by(url: str, entries: list[SourceEntry]) -> str | None:
    """The built-in spider or source that crawls ``url``'s host already, or None."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    from scrapy.spiderloader import SpiderLoader
    from scrapy.utils.project import get_project_settings

    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    loader = SpiderLoader(get_project_settings())
    owners = [
        (name, list(getattr(loader.load(name), "allowed_domains", []) or []))
        for name in loader.list()
    ]
    owners += [(entry.name, list(entry.hosts)) for entry in entries]
    for name, domains in sorted(owners):
        for domain in domains:
            domain = domain.lower().removeprefix("www.")
            if host.removeprefix("www.") == domain or host.endswith("." + domain):
                return name
    return None


def builtin_spiders() -> list[str]:
    """The spiders of ``spiders/`` (their names are taken), without the sources file's."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    from scrapy.spiderloader import SpiderLoader
    from scrapy.utils.project import get_project_settings

    return sorted(SpiderLoader(get_project_settings()).list())


def cmd_add(ns: argparse.Namespace, resolve: Resolver = system_resolve) -> int:
    from crawler.ops.common import archive_settings

    url = ns.url.strip()
    if problem := _check_url(url):
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    overrides = _overrides(ns)
    settings = archive_settings([f"{k}={v}" for k, v in overrides.items()])
    path = _sources_path(ns, settings)
    name = ns.name or name_for(url)
    try:
        taken = builtin_spiders()
        entries: list[SourceEntry] = []
        if path.is_file():
            from crawler.crawl.sources import load_sources

            entries = load_sources(path)
            taken += [e.name for e in entries]
    except SourcesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if name in taken:
        print(
            f"error: a source or spider named {name!r} exists already (choose one with --name)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if owner := crawled_by(url, entries):
        # Two spiders on one site would archive every article twice, under two names.
        print(
            f"error: {url}: {owner} crawls {urlsplit(url).hostname} already; nothing written",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        refused = guard_refusal(url, settings, resolve)
    except ValueError as exc:  # ARCHIVE_NETGUARD_ALLOW that is no list of networks
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if refused:
        print(f"error: {url}: refused by the egress guard: {refused}", file=sys.stderr)
        return EXIT_USAGE
    print(f"probing {url} (robots.txt obeyed) ...", flush=True)
    found = run_probe(url, overrides, verbose=ns.verbose)
    if problem := not_news(found):
        print(f"error: {url}: {problem}; nothing written", file=sys.stderr)
        return EXIT_USAGE
    entry = entry_from(name, url, found)
    print_findings(entry, found)
    if ns.dry_run:
        print(f"not written (--dry-run); the entry would be:\n\n{entry.to_toml()}")
        return EXIT_OK
    try:
        add_entry(path, entry, taken)
    except SourcesError as exc:
        print(f"error: {exc}; nothing written", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: cannot write {path}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"wrote [sources.{name}] to {path}; next: `newsarchive sources test {name}`, "
        f"then `newsarchive crawl {name}`"
    )
    return EXIT_OK


def _entry(name: str, settings: Any, ns: argparse.Namespace) -> SourceEntry | str:
    try:
        entries = _load(ns, settings)
    except SourcesError as exc:
        return str(exc)
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in entries) or "none"
    return f"no source named {name!r} in the sources file (sources: {known})"


def _load(ns: argparse.Namespace, settings: Any) -> list[SourceEntry]:
    if getattr(ns, "file", None):
        from crawler.crawl.sources import load_sources

        path = Path(ns.file).expanduser()
        if not path.is_file():
            raise SourcesError(f"sources file {path} does not exist")
        return load_sources(path)
    return configured_sources(settings)


def test_source(
    name: str, overrides: dict[str, str], articles: int, workdir: Path
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str]:
    """One crawl of ``name`` (at most ``articles`` articles) into a scratch store under
    ``workdir``: (its report, each archived article's findings, the crawl's stderr)."""
    store = workdir / "store"
    report_file = workdir / "report.json"
    settings = {
        "ARCHIVE_STORE_URI": str(store),
        # What the site lists now, whatever its date: the test is of extraction.
        "ARCHIVE_DISCOVERY_WINDOW_DAYS": "0",
        # Its own catalog, never the archive's (an ARCHIVE_CATALOG_URL in the environment).
        "ARCHIVE_CATALOG_URL": f"sqlite:///{workdir / 'catalog.sqlite'}",
        "ARCHIVE_SPOOL_DIR": "",
        "ARCHIVE_LOG_DIR": str(workdir / "logs"),
        **overrides,
    }
    cmd = [sys.executable, "-m", "crawler.crawl.runner", name, "--terminal-level", "NONE"]
    cmd += ["--report-file", str(report_file), "-a", f"max_articles={articles}"]
    for key, value in settings.items():
        cmd += ["-s", f"{key}={value}"]
    proc = subprocess.run(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SCRAPY_SETTINGS_MODULE": "settings"},
        timeout=3600,
    )
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    return report, article_findings(store, name), proc.stderr


def article_findings(store: Path, site: str) -> list[dict[str, Any]]:
    """Each archived text of ``site`` in a local store: its headline, date, words and flags
    (``empty``, ``degenerate``: under MIN_WORDS words or the same text as another article,
    ``no-date``, ``no-headline``)."""
    out = []
    digests: dict[str, int] = {}
    # Texts the crawl itself found degenerate are kept under flagged/, never as a version.
    sidecars = [
        *sorted((store / "text" / site).rglob("*.json")),
        *sorted((store / "flagged" / site).rglob("*.json")),
    ]
    for sidecar in sidecars:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        text_file = sidecar.with_suffix(".txt")
        text = text_file.read_text(encoding="utf-8") if text_file.exists() else ""
        title = data.get("title")
        body = text.split("\n\n", 1)[1] if title and "\n\n" in text else text
        words = len(body.split())
        digest = str(data.get("text_digest") or "")
        digests[digest] = digests.get(digest, 0) + 1
        out.append(
            {
                "url": data.get("url"),
                "title": title,
                "published": data.get("published"),
                "published_from": data.get("published_from"),
                "words": words,
                "digest": digest,
                "flags": _flags(words, data.get("published"), title),
            }
        )
        if data.get("quality") == "degenerate" and "degenerate" not in out[-1]["flags"]:
            out[-1]["flags"].append("degenerate")
    for finding in out:
        if digests.get(finding["digest"], 0) > 1 and "degenerate" not in finding["flags"]:
            finding["flags"].append("degenerate")  # one text for several pages: chrome
    return out


def cmd_test(ns: argparse.Namespace) -> int:
    from crawler.ops.common import archive_settings

    overrides = _overrides(ns)
    settings = archive_settings([f"{k}={v}" for k, v in overrides.items()])
    found = _entry(ns.name, settings, ns)
    if isinstance(found, str):
        print(f"error: {found}", file=sys.stderr)
        return EXIT_USAGE
    if ns.file:
        overrides["ARCHIVE_SOURCES_FILE"] = str(Path(ns.file).expanduser().resolve())
    elif (path := sources_file(settings)[0]) is not None:
        overrides.setdefault("ARCHIVE_SOURCES_FILE", str(path.resolve()))
    with tempfile.TemporaryDirectory(prefix="newsarchive-sources-test-") as tmp:
        print(
            f"testing {ns.name}: up to {ns.articles} articles into a scratch store ...", flush=True
        )
        report, articles, stderr = test_source(ns.name, overrides, ns.articles, Path(tmp))
    if report is None:
        lines = [line for line in stderr.splitlines() if line.strip()]
        print(f"error: {ns.name}: the crawl did not run: {lines[-1] if lines else ''}")
        return EXIT_FAILED
    ok = 0
    for finding in articles:
        flags = finding["flags"]
        ok += not flags
        label = ",".join(flags) or "ok"
        date = finding["published"] or "no date"
        print(f"  {label:11} {date:25} {finding['words']:5} words  {finding['title'] or '-'}")
        print(f"  {'':11} {finding['url']}")
    failures = (report.get("failures") or {}).get("urls") or []
    for failure in failures:
        print(f"  {'failed':11} {failure['stage']}/{failure['cause']}: {failure['url']}")
    total = len(articles) + len([f for f in failures if f["stage"] != "discovery"])
    print(
        f"{ns.name}: {ok} of {total} articles archived with a non-degenerate text and a date; "
        f"{len(articles) - ok} flagged, {len(failures)} failed URLs"
    )
    return EXIT_OK if ok == total and total > 0 else EXIT_FAILED


def cmd_list(ns: argparse.Namespace) -> int:
    from crawler.ops.common import archive_settings

    settings = archive_settings([f"{k}={v}" for k, v in _overrides(ns).items()])
    path = Path(ns.file) if ns.file else sources_file(settings)[0]
    if path is None or not path.is_file():
        print(
            f"no sources file at {path or default_sources_file(settings)} "
            "(ARCHIVE_SOURCES_FILE): `newsarchive sources add URL` makes it"
        )
        return EXIT_OK
    try:
        entries = _load(ns, settings)
    except SourcesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{path}: {len(entries)} source{'' if len(entries) == 1 else 's'}")
    for entry in entries:
        rule = "patterns" if entry.articles else "auto"
        extractor = "selectors" if entry.selectors else "generic"
        print(
            f"  {entry.name:16} {', '.join(entry.hosts)}: {len(entry.feeds)} feeds, "
            f"{len(entry.sitemaps)} sitemaps, {len(entry.listings)} listings; articles {rule}; "
            f"{extractor} extraction"
            + (", rendered" if entry.render else "")
            + (f"; schedule {entry.schedule}" if entry.schedule else "")
        )
    return EXIT_OK


def add_commands(sub: Any, settings_option: Callable[[argparse.ArgumentParser, str], None]) -> None:
    """Register ``sources add|test|list`` on the ``newsarchive`` subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    sources = sub.add_parser(
        "sources",
        help="news sources as data: add a site by its URL, test it, list them",
        description="Sources crawled by the generic spider, from the sources file "
        "(ARCHIVE_SOURCES_FILE; default sources.toml beside the schedule file, else "
        "./sources.toml). `newsarchive crawl NAME`, `crawl --all` and the daemon run them "
        "like the built-in sites.",
        epilog="examples:\n  newsarchive sources add https://www.harborpost.example/\n"
        "  newsarchive sources test harborpost\n  newsarchive sources list",
        formatter_class=raw,
    )
    commands = sources.add_subparsers(dest="sources_command", required=True, metavar="COMMAND")

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--file",
            default=None,
            metavar="TOML",
            help="the sources file (default: ARCHIVE_SOURCES_FILE, else sources.toml beside "
            "ARCHIVE_SCHEDULE_FILE, else ./sources.toml)",
        )
        parser.add_argument("--proxy", default=None, help="send every request through this proxy")
        settings_option(parser, "Scrapy or ARCHIVE_* setting")

    add = commands.add_parser(
        "add",
        help="probe a news site and add it to the sources file",
        description="Probe the site at URL (robots.txt obeyed, through the egress guard; "
        "nothing archived): print its feeds, sitemaps, listing pages, how many article URLs, "
        "and five sample articles (headline, date, first line) as the generic extractor "
        "reads them; then append [sources.NAME] to the sources file. A URL that is no news "
        "site gives one line, exit 2, and writes nothing.",
        epilog="examples:\n  newsarchive sources add https://www.harborpost.example/\n"
        "  newsarchive sources add https://news.coastaldaily.example/ --name coastal\n"
        "  newsarchive sources add https://www.valleytimes.example/ --dry-run",
        formatter_class=raw,
    )
    add.add_argument("url", help="the site's home page")
    add.add_argument("--name", default=None, help="the source's name (default: from the host)")
    add.add_argument("--dry-run", action="store_true", help="probe and print; write nothing")
    add.add_argument("-v", "--verbose", action="store_true", help="the probe's log on stderr")
    common(add)
    add.set_defaults(func=cmd_add)

    test = commands.add_parser(
        "test",
        help="crawl a few of a source's articles into a scratch store and check each text",
        description="Crawl up to --articles articles of the source into a scratch store "
        "(deleted afterwards; the archive is not touched) and report each article's "
        "extraction: headline, date, words, flagged empty, degenerate (under 50 words, or the "
        "same text as another page) or no-date; failed URLs with their cause. Exit 1 if any "
        "article is flagged or failed.",
        epilog="examples:\n  newsarchive sources test harborpost\n"
        "  newsarchive sources test harborpost --articles 20 --proxy http://127.0.0.1:8899",
        formatter_class=raw,
    )
    test.add_argument("name", help="a source of the sources file")
    test.add_argument("--articles", type=int, default=10, help="articles to crawl (default 10)")
    common(test)
    test.set_defaults(func=cmd_test)

    listing = commands.add_parser(
        "list",
        help="the configured sources",
        description="Every source of the sources file: hosts, feeds, sitemaps, listings, "
        "article rule, extraction, schedule.",
        epilog="examples:\n  newsarchive sources list\n  newsarchive sources list --file "
        "/etc/newsarchive/sources.toml",
        formatter_class=raw,
    )
    common(listing)
    listing.set_defaults(func=cmd_list)
