"""The researcher's questions across the archive: search, the same story elsewhere, what
changed between versions.

``newsarchive search`` runs the catalog's full-text index (catalog/search.py); ``related`` lists
the links made between articles of different sites as their texts were recorded
(access/stories.py); ``diff`` shows the word-level changes between two text versions.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select

from crawler.access.query import (
    AccessError,
    Archive,
    UnknownSite,
    parse_time,
    publication_day,
)
from crawler.catalog.db import Capture, captures, texts
from crawler.catalog.search import MARK_END, MARK_START, Hit, SearchError, SearchQuery, search
from crawler.constants import EXIT_FAILED, EXIT_OK
from crawler.options import not_negative_arg, positive_arg

_BOLD, _RESET = "\x1b[1;33m", "\x1b[0m"
EXPORT_LIMIT = 1_000_000  # hits an export takes when no --limit is given


def site_list(archive: Archive, given: list[str] | None) -> tuple[str, ...]:
    """The sites named (repeated or comma-separated), each checked against the catalog."""
    names = [n.strip() for item in given or [] for n in item.split(",") if n.strip()]
    archive.check_sites(names)
    return tuple(dict.fromkeys(names))


def marked(snippet: str, style: str) -> str:
    """A snippet's matches shown for ``style``: ansi, plain (``**word**``), html or none."""
    if style == "html":
        out = html.escape(snippet)
        return out.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
    start, end = {"ansi": (_BOLD, _RESET), "plain": ("**", "**")}.get(style, ("", ""))
    return snippet.replace(MARK_START, start).replace(MARK_END, end)


def hit_json(hit: Hit) -> dict[str, Any]:
    out = asdict(hit)
    out["snippet"] = marked(hit.snippet, "none")
    out["snippet_html"] = marked(hit.snippet, "html")
    out["score"] = round(hit.score, 6)
    return out


def cmd_search(ns: argparse.Namespace) -> int:
    archive: Archive = ns.open_archive(ns, resolver=False)
    archive.check_not_empty()
    if archive.catalog.texts_count() == 0:
        raise AccessError(
            f"the catalog {archive.catalog.url} has captures but no text in its search index "
            f"(made by an older newsarchive): run `newsarchive reindex --store "
            f"{archive.store.uri}` once"
        )
    if ns.export:
        from crawler.access.export import OutputError, check_dest, format_for

        try:  # before the search: a refused output costs nothing
            check_dest(Path(ns.export), format_for(ns.export, ns.format), force=ns.force)
        except OutputError as exc:
            raise UnknownSite(str(exc)) from None  # a usage error: exit 2
    query = SearchQuery(
        text=" ".join(ns.words),
        sites=site_list(archive, ns.site),
        published_from=publication_day(ns.published_from),
        published_until=publication_day(ns.published_to, end=True),
        captured_from=None if ns.since is None else parse_time(ns.since),
        captured_until=None if ns.until is None else parse_time(ns.until, end=True),
        language=ns.language,
        limit=ns.limit or (EXPORT_LIMIT if ns.export else 20),
        offset=ns.offset,
        all_versions=ns.all_versions,
    )
    try:
        hits = search(archive.catalog, query)
    except SearchError as exc:
        raise AccessError(str(exc)) from None
    if ns.export:
        return export_hits(archive, hits, query, ns)
    if ns.json:
        for hit in hits:
            print(json.dumps(hit_json(hit), ensure_ascii=False))
        return EXIT_OK
    print_hits(hits, query, sys.stdout)
    return EXIT_OK if hits else EXIT_FAILED


def export_hits(
    archive: Archive, hits: list[Hit], query: SearchQuery, ns: argparse.Namespace
) -> int:
    """The hits' captures (each text's first) as an export: Parquet, JSON lines, text, WARC."""
    from crawler.access.export import Export, format_for

    if not hits:
        print(f"no archived text matches {query.text!r}: nothing exported", file=sys.stderr)
        return EXIT_FAILED
    chosen = [capture for hit in hits if (capture := _first_capture(archive, hit)) is not None]
    fmt = format_for(ns.export, ns.format)
    sites = sorted({c.site for c in chosen})
    with Export(archive, fmt, Path(ns.export), sites=sites) as out:
        summary = out.captures(chosen)
    print(summary.line(f"search {query.text!r} ({len(chosen)} hits)", ns.export))
    return EXIT_OK


def _first_capture(archive: Archive, hit: Hit) -> Capture | None:
    c = captures.c
    with archive.catalog.engine.connect() as conn:
        row = (
            conn.execute(
                select(captures)
                .where(c.text_key == hit.text_key)
                .order_by(c.capture_time, c.id)
                .limit(1)
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    return Capture(**{name: row[name] for name in Capture.__dataclass_fields__})


def print_hits(hits: list[Hit], query: SearchQuery, out: IO[str]) -> None:
    style = "ansi" if out.isatty() else "plain"
    unit = "versions" if query.all_versions else "articles"
    if not hits:
        print(f"no archived text matches {query.text!r}", file=out)
        return
    first = query.offset + 1
    print(
        f"{unit} {first}-{query.offset + len(hits)} matching {query.text!r}, best first",
        file=out,
    )
    for number, hit in enumerate(hits, first):
        published = hit.published_date or "undated"
        title = hit.title or hit.url
        print(f"{number:3}. {hit.site:10} {published:10}  {title}", file=out)
        print(f"     {hit.url}  (v{hit.version}, captured {hit.captured})", file=out)
        print(f"     {marked(hit.snippet, style)}", file=out)


@dataclass(frozen=True, slots=True)
class Version:
    """One text version of an article: its number, key and first capture."""

    version: int
    text_key: str
    captured: str
    url: str


def text_versions(archive: Archive, site: str, article_key: str) -> list[Version]:
    """Every text version of an article, oldest first: from the captures that carry them (the
    texts table may lack versions recorded by an older newsarchive) and from the texts table
    (a version remade from the same capture by ``reextract`` replaces it on the capture)."""
    c = captures.c
    query = (
        select(c.version, c.text_key, func.min(c.capture_time), func.min(c.url))
        .where(c.site == site, c.article_key == article_key, c.text_key.is_not(None))
        .group_by(c.version, c.text_key)
        .order_by(c.version, func.min(c.capture_time))
    )
    t = texts.c
    recorded = select(t.version, t.text_key, t.captured, t.url).where(
        t.site == site, t.article_key == article_key
    )
    with archive.catalog.engine.connect() as conn:
        rows = [*conn.execute(query).all(), *conn.execute(recorded).all()]
    found: dict[int, Version] = {}
    for version, key, captured, url in rows:
        found.setdefault(int(version or 1), Version(int(version or 1), key, captured, url))
    return [found[v] for v in sorted(found)]


def version_text(archive: Archive, version: Version) -> str:
    """A version's words: from the catalog's texts when there, else from the store."""
    with archive.catalog.engine.connect() as conn:
        body = conn.execute(select(texts.c.body).where(texts.c.text_key == version.text_key))
        found = body.scalar()
    if found is not None:
        return str(found)
    return archive.text(_capture_like(archive, version)).decode("utf-8", "replace")


def _capture_like(archive: Archive, version: Version) -> Capture:
    c = captures.c
    with archive.catalog.engine.connect() as conn:
        row = conn.execute(select(captures).where(c.text_key == version.text_key).limit(1))
        mapping = row.mappings().first()
    if mapping is None:
        raise AccessError(f"no capture carries the text {version.text_key}")
    return Capture(**{name: mapping[name] for name in Capture.__dataclass_fields__})


def _pick(versions: list[Version], number: int | None, default: int, what: str) -> Version:
    if number is None:
        return versions[default]
    for version in versions:
        if version.version == number:
            return version
    have = ", ".join(str(v.version) for v in versions)
    raise AccessError(f"{what} {number}: the article has the versions {have}")


def cmd_diff(ns: argparse.Namespace) -> int:
    from crawler.text.diff import render_html, render_plain, summary, word_diff

    archive: Archive = ns.open_archive(ns)
    archive.check_not_empty()
    target = archive.target(ns.ref)
    if target.article_key is None or target.site is None:
        raise AccessError(f"{ns.ref} is not an article with archived text: nothing to compare")
    versions = text_versions(archive, target.site, target.article_key)
    if not versions:
        raise AccessError(f"{target.describe()} was captured, but no text was archived")
    if len(versions) == 1 and ns.old is None and ns.new is None:
        only = versions[0]
        print(f"{target.describe()} has one text version (v1, captured {only.captured})")
        return EXIT_OK
    old = _pick(versions, ns.old, -2, "--from")
    new = _pick(versions, ns.new, -1, "--to")
    ops = word_diff(version_text(archive, old), version_text(archive, new))
    context = None if ns.context < 0 else ns.context
    head = (
        f"{target.describe()}: v{old.version} (captured {old.captured}) -> v{new.version} "
        f"(captured {new.captured}): {summary(ops)}"
    )
    if ns.html:
        body = render_html(ops, context=context)
        print(
            "<!doctype html><meta charset=utf-8><title>"
            + html.escape(head)
            + "</title><style>del{background:#fdd}ins{background:#dfd}</style>"
            + f"<h1>{html.escape(head)}</h1>\n{body}"
        )
        return EXIT_OK
    color = ns.color == "always" or (ns.color == "auto" and sys.stdout.isatty())
    print(head)
    shown = render_plain(ops, color=color, context=context)
    if shown:
        print()
        print(shown, end="")
    return EXIT_OK


def cmd_related(ns: argparse.Namespace) -> int:
    from crawler.catalog.stories import article_links, story_ids

    archive: Archive = ns.open_archive(ns)
    archive.check_not_empty()
    target = archive.target(ns.ref)
    if target.article_key is None or target.site is None:
        raise AccessError(f"{ns.ref} is not an article with archived text: it has no story")
    links = article_links(archive.catalog, target.site, target.article_key)
    story = story_ids(archive.catalog).get((target.site, target.article_key))
    if ns.json:
        for link in links:
            other = link.other
            print(
                json.dumps(
                    {
                        "kind": link.kind,
                        "score": round(link.score, 4),
                        "site": other.site,
                        "article_key": other.article_key,
                        "url": other.url,
                        "title": other.title,
                        "published_date": other.published_date,
                        "version": other.version,
                        "story_id": story,
                    },
                    ensure_ascii=False,
                )
            )
        return EXIT_OK
    if not links:
        print(f"{target.describe()}: no article of another site is linked to it")
        return EXIT_OK
    print(
        f"{target.describe()}: {len(links)} article{'s' if len(links) != 1 else ''} of other "
        f"sites tell the same story (story {story})"
    )
    print(f"  {'link':14} {'score':>5}  {'site':10} {'published':10}  title / url")
    for link in links:
        other = link.other
        print(
            f"  {link.kind:14} {link.score:5.2f}  {other.site:10} "
            f"{other.published_date or 'undated':10}  {other.title or other.url}"
        )
        print(f"  {'':14} {'':5}  {other.url}")
    return EXIT_OK


Command = Callable[[argparse.Namespace], int]


def add_commands(
    sub: Any,
    resolver_factory: Any,
    *,
    run: Callable[[Command], Command],
    common: Callable[[argparse.ArgumentParser], None],
    open_archive: Callable[..., Archive],
) -> None:
    """Register search, related and diff on ``newsarchive``'s subparsers: access/cli.py's
    ``add_commands`` calls it with its error handling (``run``), its common options and its
    way of opening the archive (so this module never imports that one)."""
    _common, _run = common, run
    defaults = {"resolver_factory": resolver_factory, "open_archive": open_archive}
    raw = argparse.RawDescriptionHelpFormatter
    parser = sub.add_parser(
        "search",
        help="full-text search over every archived text version, ranked, with snippets",
        description="Search the archived texts (every version of every article) for words "
        'and phrases: all words must occur; "a phrase" in quotes; -word excludes; a OR b. '
        "Words match as written (case and accents folded, no stemming). One line per article "
        "(its best version) unless --all-versions; best first, with a snippet.",
        epilog="examples:\n  newsarchive search Mezher\n"
        "  newsarchive search '\"Lebanese parliament\" Pezeshkian' --site irna,president\n"
        "  newsarchive search Gaza --published-from 2025-06 --published-to 2025-06 --json\n"
        "  newsarchive search Gaza -polio --language en --limit 50",
        formatter_class=raw,
    )
    parser.add_argument("words", nargs="+", help="words, quoted phrases, -excluded, OR")
    parser.add_argument(
        "--site", action="append", help="only these sites (repeat, or a comma list)"
    )
    parser.add_argument(
        "--published-from", default=None, help="published on or after (2025, 2025-06, 2025-06-11)"
    )
    parser.add_argument(
        "--published-to", default=None, help="published up to (inclusive: 2025-06 is all of June)"
    )
    parser.add_argument("--from", dest="since", default=None, help="captured at or after (ISO)")
    parser.add_argument("--to", dest="until", default=None, help="captured up to (inclusive)")
    parser.add_argument("--language", default=None, help="language code (en takes en-GB too)")
    parser.add_argument(
        "--limit",
        type=positive_arg,
        default=None,
        help="hits to show (default 20; every hit with --export)",
    )
    parser.add_argument("--offset", type=not_negative_arg, default=0, help="hits to skip (paging)")
    parser.add_argument(
        "--all-versions", action="store_true", help="every matching version, not one per article"
    )
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument(
        "--export",
        default=None,
        metavar="DEST",
        help="write the matching articles as an export instead (format from the name: "
        ".parquet, .jsonl, .warc.gz, dir/ for text)",
    )
    parser.add_argument("--format", default=None, help="the export's format, if DEST says none")
    parser.add_argument("--force", action="store_true", help="replace an existing export")
    _common(parser)
    parser.set_defaults(func=_run(cmd_search), **defaults)

    related = sub.add_parser(
        "related",
        help="the same story on other sites: republications, near-duplicates, same event",
        description="The articles of other sites linked to this one as its texts were "
        "recorded: a republication (it names the other as its source and copies it), a "
        "near-duplicate (most of the words the same), or the same event (a rewrite: shared "
        "phrases and names, published within three days). Strongest first, with the score "
        "that decided each link (containment, Jaccard, or shared 3-word phrases) and the "
        "story id the Parquet export carries.",
        epilog="examples:\n  newsarchive related https://en.irna.ir/news/85859288/\n"
        "  newsarchive related irna:85859288 --json",
        formatter_class=raw,
    )
    related.add_argument("ref", help="article URL, site:key, or article key")
    related.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _common(related)
    related.set_defaults(func=_run(cmd_related), **defaults)

    diff = sub.add_parser(
        "diff",
        help="what changed between two text versions of an article, word by word",
        description="The word-level changes between two archived text versions of an article "
        "(default: the last two): [-removed-]{+added+} marks, or red and green on a terminal; "
        "--html for a page with <del> and <ins>. Paragraphs far from any change are shown as "
        "'…'.",
        epilog="examples:\n  newsarchive diff https://en.irna.ir/news/85859288/\n"
        "  newsarchive diff tdi:world-polio-day-2023 --from 1 --to 3 --context 0\n"
        "  newsarchive diff irna:85859288 --html > changes.html",
        formatter_class=raw,
    )
    diff.add_argument("ref", help="article URL, site:key, or article key")
    diff.add_argument("--from", dest="old", type=positive_arg, default=None, help="old version")
    diff.add_argument("--to", dest="new", type=positive_arg, default=None, help="new version")
    diff.add_argument(
        "--context",
        type=int,
        default=1,
        help="unchanged paragraphs shown around a change (default 1; -1: the whole text)",
    )
    diff.add_argument("--html", action="store_true", help="an HTML page instead of plain text")
    diff.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="ANSI colours"
    )
    _common(diff)
    diff.set_defaults(func=_run(cmd_diff), **defaults)
