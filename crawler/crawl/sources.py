"""Sources as data: the ``sources.toml`` file and each entry checked (crawler/crawl/generic.py
makes every entry a spider beside the built-in ones in ``spiders/``).

The file (``ARCHIVE_SOURCES_FILE``; empty = ``sources.toml`` beside the schedule file when
``ARCHIVE_SCHEDULE_FILE`` names one, else ``./sources.toml`` when it is there) holds one table
per source::

    [sources.harborpost]
    start_urls = ["https://news.harborpost.example/"]
    hosts = ["news.harborpost.example"]         # default: the start URLs' hosts
    feeds = ["https://news.harborpost.example/feed/"]
    sitemaps = ["https://news.harborpost.example/sitemap.xml"]
    listings = []                               # pages whose links are articles
    discover = false     # true: also find feeds and sitemaps at each crawl's start
    articles = "auto"    # or regexes over the URL's path, e.g. ['^/\\d{4}/\\d\\d/\\d\\d/[^/]+/$']
    listing_pages = 3    # listing pages followed through their "next" link
    render = false       # true: pages rendered in Chromium
    delay = 1.0          # seconds between requests to the site (DOWNLOAD_DELAY)
    concurrency = 2      # requests at once to the site (CONCURRENT_REQUESTS_PER_DOMAIN)
    schedule = "0 */4 * * *"   # its crawl schedule (the schedule file still wins)

    [sources.harborpost.selectors]              # optional: the generic extractor otherwise
    headline = "h1.entry-title"
    body = "div.entry-content"
    date = "time.published"
    author = "a.author"

Every mistake is one line naming the file, the source and the key (a misspelt key with a "did
you mean"); a name already taken by a built-in spider is refused. Nothing here fetches.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from crawler.util import read_toml

if TYPE_CHECKING:
    from crawler.text.extract import SiteRules

SOURCES_FILE_NAME = "sources.toml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_HOST = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
ENTRY_KEYS = (
    "start_urls",
    "hosts",
    "feeds",
    "sitemaps",
    "listings",
    "discover",
    "articles",
    "listing_pages",
    "render",
    "delay",
    "concurrency",
    "schedule",
    "selectors",
)
# Selector keys and the SiteRules field each fills.
SELECTOR_KEYS = {
    "headline": "title",
    "body": "body",
    "date": "published",
    "modified": "modified",
    "author": "authors",
    "tags": "tags",
    "section": "section",
    "lead": "lead",
    "drop": "drop",
    "drop_text": "drop_text",
    "timezone": "timezone",
}


class SourcesError(ValueError):
    """A sources file that cannot be used; the message names the file, the source and the key."""


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One configured news source, checked."""

    name: str
    start_urls: tuple[str, ...]
    hosts: tuple[str, ...]
    feeds: tuple[str, ...] = ()
    sitemaps: tuple[str, ...] = ()
    listings: tuple[str, ...] = ()
    discover: bool = False
    articles: tuple[str, ...] = ()  # regexes; empty: "auto"
    listing_pages: int = 3
    render: bool = False
    delay: float | None = None
    concurrency: int | None = None
    schedule: str | None = None
    selectors: Mapping[str, Any] = field(default_factory=dict)

    @property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p) for p in self.articles)

    def rules(self) -> SiteRules | None:
        """The entry's selectors as site rules; None: the generic extractor reads the page."""
        if not self.selectors:
            return None
        from crawler.text.extract import SiteRules

        kwargs: dict[str, Any] = {}
        for key, value in self.selectors.items():
            target = SELECTOR_KEYS[key]
            kwargs[target] = value if key == "timezone" else tuple(value)
        kwargs.setdefault("title", ("h1",))
        return SiteRules(**kwargs)

    def to_toml(self) -> str:
        """The entry as a TOML table (what ``sources add`` appends to the file)."""
        lines = [f"[sources.{self.name}]"]

        def strings(values: Sequence[str]) -> str:
            if not values:
                return "[]"
            inner = "".join(f"\n    {_toml_string(v)}," for v in values)
            return f"[{inner}\n]"

        lines.append(f"start_urls = {strings(self.start_urls)}")
        lines.append(f"hosts = {strings(self.hosts)}")
        lines.append(f"feeds = {strings(self.feeds)}")
        lines.append(f"sitemaps = {strings(self.sitemaps)}")
        lines.append(f"listings = {strings(self.listings)}")
        if self.discover:
            lines.append("discover = true")
        articles = strings(self.articles) if self.articles else '"auto"'
        lines.append(f"articles = {articles}")
        lines.append(f"listing_pages = {self.listing_pages}")
        lines.append(f"render = {'true' if self.render else 'false'}")
        if self.delay is not None:
            lines.append(f"delay = {self.delay}")
        if self.concurrency is not None:
            lines.append(f"concurrency = {self.concurrency}")
        if self.schedule:
            lines.append(f"schedule = {_toml_string(self.schedule)}")
        if self.selectors:
            lines.append(f"\n[sources.{self.name}.selectors]")
            for key, value in self.selectors.items():
                shown = _toml_string(value) if isinstance(value, str) else strings(value)
                lines.append(f"{key} = {shown}")
        return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string (the same escapes); no \/ is ever written.
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- the file


def sources_file(settings: Any) -> tuple[Path | None, bool]:
    """(path, named): the sources file these settings name, and whether they name it
    explicitly (then it must exist). (None, False): none configured and none in place."""
    configured = _setting(settings, "ARCHIVE_SOURCES_FILE")
    if configured:
        return Path(configured).expanduser(), True
    default = default_sources_file(settings)
    return (default, False) if default.is_file() else (None, False)


def default_sources_file(settings: Any) -> Path:
    """Where the sources file is, or is made: ``ARCHIVE_SOURCES_FILE``, else beside the
    schedule file, else ``./sources.toml``."""
    configured = _setting(settings, "ARCHIVE_SOURCES_FILE")
    if configured:
        return Path(configured).expanduser()
    schedule = _setting(settings, "ARCHIVE_SCHEDULE_FILE")
    if schedule:
        return Path(schedule).expanduser().parent / SOURCES_FILE_NAME
    return Path(SOURCES_FILE_NAME)


def _setting(settings: Any, name: str) -> str:
    # The spider loader gets the project settings without the add-on, which applies the
    # environment: read the variable here too (a -s value still wins).
    value = settings.get(name) if settings is not None else None
    if value in (None, ""):
        value = os.environ.get(name, "")
    return str(value or "").strip()


def configured_sources(settings: Any) -> list[SourceEntry]:
    """The entries of the sources file these settings name (none: no file)."""
    path, named = sources_file(settings)
    if path is None:
        return []
    if not path.is_file():
        if named:
            raise SourcesError(
                f"ARCHIVE_SOURCES_FILE: {path} does not exist "
                "(`newsarchive sources add URL` makes it)"
            )
        return []
    return load_sources(path)


def load_sources(path: Path) -> list[SourceEntry]:
    """Every entry of a sources file, each checked; SourcesError names the first mistake."""
    try:
        data = read_toml(path, "sources file")
    except ValueError as exc:
        raise SourcesError(str(exc)) from exc
    return parse_sources(data, str(path))


def parse_sources(data: Mapping[str, Any], where: str) -> list[SourceEntry]:
    unknown = sorted(set(data) - {"sources"})
    if unknown:
        raise SourcesError(
            f"sources file {where}: unknown table or key {unknown[0]!r}"
            f"{_hint(unknown[0], ['sources'])} (expected [sources.<name>] tables)"
        )
    table = data.get("sources", {})
    if not isinstance(table, dict):
        raise SourcesError(f"sources file {where}: [sources] must hold [sources.<name>] tables")
    return [parse_entry(name, entry, f"sources file {where}") for name, entry in table.items()]


def _hint(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _url_list(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SourcesError(f"{where}: {key} must be a list of URLs in quotes")
    out = []
    for url in value:
        url = url.strip()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise SourcesError(f"{where}: {key}: {url!r} is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourcesError(f"{where}: {key}: {url!r} is not an http(s) URL")
        out.append(url)
    return tuple(dict.fromkeys(out))


def _flag(value: Any, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise SourcesError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def parse_entry(name: str, entry: Any, file: str) -> SourceEntry:
    """One ``[sources.<name>]`` table, checked."""
    where = f"{file}: [sources.{name}]"
    if not _NAME.match(name):
        raise SourcesError(
            f"{where}: the name must be lower-case letters, digits, '-' or '_' "
            "(it names files and the spider)"
        )
    if not isinstance(entry, dict):
        raise SourcesError(f"{where} must be a table")
    for key in entry:
        if key not in ENTRY_KEYS:
            raise SourcesError(
                f"{where}: unknown key {key!r}{_hint(key, ENTRY_KEYS)} "
                f"(keys: {', '.join(ENTRY_KEYS)})"
            )
    if "start_urls" not in entry:
        raise SourcesError(f"{where}: start_urls is required (the site's home page)")
    start_urls = _url_list(entry["start_urls"], where, "start_urls")
    if not start_urls:
        raise SourcesError(f"{where}: start_urls must name at least one URL")
    hosts_raw = entry.get("hosts", [])
    if not isinstance(hosts_raw, list) or not all(isinstance(h, str) for h in hosts_raw):
        raise SourcesError(f"{where}: hosts must be a list of host names in quotes")
    hosts = [h.strip().rstrip(".").lower() for h in hosts_raw]
    for host in hosts:
        if not _HOST.match(host):
            raise SourcesError(f"{where}: hosts: {host!r} is not a host name")
    for url in start_urls:
        host = (urlsplit(url).hostname or "").lower()
        if host not in hosts:
            hosts.append(host)
    lists = {}
    for key in ("feeds", "sitemaps", "listings"):
        lists[key] = _url_list(entry.get(key, []), where, key)
        for url in lists[key]:
            if (urlsplit(url).hostname or "").lower() not in hosts:
                raise SourcesError(
                    f"{where}: {key}: {url} is not on the source's hosts ({', '.join(hosts)})"
                )
    discover = _flag(entry.get("discover", False), where, "discover")
    articles_raw = entry.get("articles", "auto")
    if articles_raw == "auto":
        articles: tuple[str, ...] = ()
    elif (
        isinstance(articles_raw, list)
        and articles_raw
        and all(isinstance(p, str) for p in articles_raw)
    ):
        for pattern in articles_raw:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise SourcesError(f"{where}: articles: bad regex {pattern!r}: {exc}") from None
        articles = tuple(articles_raw)
    else:
        raise SourcesError(
            f'{where}: articles must be "auto" or a list of regexes over the URL path, '
            f"got {articles_raw!r}"
        )
    pages = entry.get("listing_pages", 3)
    if isinstance(pages, bool) or not isinstance(pages, int) or not 1 <= pages <= 100:
        raise SourcesError(f"{where}: listing_pages must be a whole number 1-100, got {pages!r}")
    delay = entry.get("delay")
    if delay is not None and (
        isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0
    ):
        raise SourcesError(f"{where}: delay must be seconds (0 or more), got {delay!r}")
    concurrency = entry.get("concurrency")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise SourcesError(f"{where}: concurrency must be a whole number 1 or more")
    schedule = entry.get("schedule")
    if schedule is not None and (
        not isinstance(schedule, str) or len(schedule.split()) not in (5, 6)
    ):
        raise SourcesError(
            f"{where}: schedule must be a cron expression in quotes (minute hour day month "
            f"weekday), got {schedule!r}"
        )
    selectors = _selectors(entry.get("selectors", {}), where)
    if not (lists["feeds"] or lists["sitemaps"] or lists["listings"] or discover):
        # Nothing else to start from: the start pages are the listings.
        lists["listings"] = start_urls
    source = SourceEntry(
        name=name,
        start_urls=start_urls,
        hosts=tuple(hosts),
        feeds=lists["feeds"],
        sitemaps=lists["sitemaps"],
        listings=lists["listings"],
        discover=discover,
        articles=articles,
        listing_pages=pages,
        render=_flag(entry.get("render", False), where, "render"),
        delay=float(delay) if delay is not None else None,
        concurrency=concurrency,
        schedule=schedule.strip() if schedule else None,
        selectors=selectors,
    )
    try:
        source.rules()
    except (TypeError, ValueError, LookupError) as exc:
        raise SourcesError(f"{where}: selectors: {exc}") from None
    return source


def _selectors(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SourcesError(f"{where}: selectors must be a table")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in SELECTOR_KEYS:
            raise SourcesError(
                f"{where}: selectors: unknown key {key!r}{_hint(key, list(SELECTOR_KEYS))} "
                f"(keys: {', '.join(SELECTOR_KEYS)})"
            )
        if key == "timezone":
            if not isinstance(item, str):
                raise SourcesError(f"{where}: selectors: timezone must be a name like Asia/Tehran")
            out[key] = item
            continue
        items = [item] if isinstance(item, str) else item
        if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
            raise SourcesError(f"{where}: selectors: {key} must be a selector or a list of them")
        out[key] = items
    if out and "body" not in out:
        raise SourcesError(
            f"{where}: selectors: body is required with other selectors (the element that "
            "holds the article's paragraphs)"
        )
    return out


def add_entry(path: Path, entry: SourceEntry, taken: Sequence[str] = ()) -> None:
    """Append ``entry`` to the sources file (made if need be), checked as a whole first: on
    any mistake (its name taken, a bad file) nothing is written."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    existing = [e.name for e in parse_sources(tomllib.loads(old), str(path))] if old else []
    if entry.name in existing or entry.name in taken:
        raise SourcesError(
            f"a source or spider named {entry.name!r} exists already (choose one with --name)"
        )
    header = (
        ""
        if old
        else "# News sources crawled by the generic spider (newsarchive sources --help).\n"
    )
    new = old + ("\n" if old and not old.endswith("\n\n") else "") + header + entry.to_toml()
    parse_sources(tomllib.loads(new), str(path))  # what is written reads back
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)
