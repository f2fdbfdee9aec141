"""The researcher commands: snapshots, get, export, reindex, serve."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from crawler.constants import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from crawler.options import positive_arg

# URL -> [(site, article key)] by each site's own rule (host aliases, slugs). The crawl side
# (ops/cli.py) supplies it from the spiders; without them, exact URLs and site:key still work.
Resolver = Callable[[str], list[tuple[str, str]]]
ResolverFactory = Callable[[], "Resolver | None"]

STORE_HELP = "store URI or path (default: $NEWSARCHIVE_STORE or ./archive)"
CATALOG_HELP = (
    "catalog SQLAlchemy URL (default: $ARCHIVE_CATALOG_URL, else the one the crawls use: "
    "<store>/.catalog.sqlite, or catalog.sqlite in the spool for S3)"
)


class UsageError(Exception):
    """Bad input on the command line: said in one line, exit 2."""


def open_named_store(ns: argparse.Namespace) -> tuple[Any, Any]:
    """The settings and the store the options name (``--store``, else ``ARCHIVE_STORE_URI``);
    a store that cannot be opened, or a local one that is not there, is a UsageError."""
    from crawler.options import load_options
    from crawler.store.base import LocalStore, StoreError, store_options
    from crawler.store.uri import open_store

    settings = load_options(ns.settings)
    uri = ns.store or str(settings.get("ARCHIVE_STORE_URI") or "")
    try:
        store = open_store(uri, store_options(settings))
    except StoreError as exc:
        raise UsageError(str(exc)) from exc
    if isinstance(store, LocalStore) and not store.root.is_dir():
        raise UsageError(f"no store at {store.root} (give --store or set NEWSARCHIVE_STORE)")
    return settings, store


def open_archive(ns: argparse.Namespace, *, resolver: bool = True, create: bool = False) -> Any:
    """The store and catalog the options name. Only ``create`` (reindex) makes a catalog (and
    a spool for it) where there is none: a read command never writes into a store."""
    from crawler.access.query import Archive
    from crawler.catalog.db import Catalog, CatalogMismatch
    from crawler.layout import default_catalog_url, spool_dir_for
    from crawler.store.base import (
        local_root,
        store_identity,
    )

    settings, store = open_named_store(ns)
    url = ns.catalog or str(settings.get("ARCHIVE_CATALOG_URL") or "")
    if not url:
        spool = str(settings.get("ARCHIVE_SPOOL_DIR") or "")
        spool_dir = spool_dir_for(local_root(store), Path(spool).expanduser() if spool else None)
        url = default_catalog_url(local_root(store), spool_dir, store.uri)
        path = Path(url.removeprefix("sqlite:///"))
        if not create and not path.exists():
            raise UsageError(
                f"no catalog at {path}: run `newsarchive reindex --store {store.uri}` to build "
                "one from the store (or crawl into it first)"
            )
        spool_dir.mkdir(parents=True, exist_ok=True)
    try:
        catalog = Catalog(url)
    except Exception as exc:  # any database error: one line, not a traceback
        raise UsageError(f"cannot open the catalog {url}: {exc.__class__.__name__}: {exc}") from exc
    try:
        if catalog.store_binding() is not None:
            catalog.check_store(store_identity(store, create=False), store.uri)
    except CatalogMismatch as exc:
        catalog.close()
        raise UsageError(
            f"{exc} (--catalog), or `newsarchive reindex` to build one from the store"
        ) from None
    vars(ns).setdefault("opened_catalogs", []).append(catalog)  # closed by _run
    factory: ResolverFactory | None = getattr(ns, "resolver_factory", None)
    return Archive(store, catalog, _lazy(factory) if resolver and factory is not None else None)


def _lazy(factory: ResolverFactory) -> Resolver:
    """The resolver made on first use: most lookups (exact URLs, site:key) never need it."""
    made: list[Resolver | None] = []

    def resolve(url: str) -> list[tuple[str, str]]:
        if not made:
            made.append(factory())
        rule = made[0]
        return rule(url) if rule is not None else []

    return resolve


def _time(value: str | None, *, end: bool = False) -> str | None:
    from crawler.access.query import parse_time

    return None if value is None else parse_time(value, end=end)


# -- commands ------------------------------------------------------------------------------------
def _site_names(values: list[str] | None) -> list[str]:
    """``--site a --site b,c`` as [a, b, c], each once, in the order given."""
    names: list[str] = []
    for value in values or []:
        for name in value.split(","):
            if name.strip() and name.strip() not in names:
                names.append(name.strip())
    return names


def _check_sites(archive: Any, names: list[str]) -> None:
    """An unknown site name is a usage error that names the sites the catalog holds."""
    from crawler.access.query import UnknownSite

    try:
        archive.check_sites(names)
    except UnknownSite as exc:
        raise UsageError(str(exc)) from None


def _range(ns: argparse.Namespace) -> tuple[str | None, str | None]:
    """--from/--to, or --day (a day, a month or a year: the whole of it)."""
    day = getattr(ns, "day", None)
    if day is not None:
        if ns.since is not None or ns.until is not None:
            raise UsageError("--day or --from/--to, not both")
        return _time(day), _time(day, end=True)
    return _time(ns.since), _time(ns.until, end=True)


def _is_listing(ns: argparse.Namespace) -> bool:
    return ns.ref is None or ns.ref.strip().endswith("*")


def _published(ns: argparse.Namespace) -> tuple[str | None, str | None]:
    """--published-from/--published-to as publication days (the second exclusive)."""
    from crawler.access.query import publication_day

    return (
        publication_day(ns.published_from),
        publication_day(ns.published_to, end=True),
    )


def _add_published(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--published-from",
        default=None,
        help="published on or after this day (2025, 2025-06, 2025-06-11: the publisher's date)",
    )
    parser.add_argument(
        "--published-to",
        default=None,
        help="published up to this day (inclusive: 2025-06 is all of June)",
    )


def cmd_snapshots(ns: argparse.Namespace) -> int:
    if _is_listing(ns):
        return _listing(ns)
    if ns.site or ns.crawl or ns.published_from or ns.published_to:
        raise UsageError(
            f"--site, --crawl and --published-* list captures; {ns.ref!r} names one article "
            "(for a URL prefix, end it in *; for one site's article, site:key)"
        )
    archive = open_archive(ns)
    archive.check_not_empty()
    since, until = _range(ns)
    target, found = archive.snapshots(ns.ref, since, until)
    if ns.limit is not None:
        found = found[: ns.limit]
    if ns.json:
        print(json.dumps([asdict(f) for f in found], indent=2))
        return EXIT_OK
    print(f"{target.describe()}: {len(found)} captures")
    print(f"{'captured':20}  status  {'type':9}  ver  text  {'payload digest':38}  url")
    for f in found:
        print(
            f"{f.capture_time:20}  {f.status:6}  {f.record_type:9}  {f.version or '-':>3}  "
            f"{'yes' if f.text_key else 'no':4}  {f.payload_digest or '-':38}  {f.url}"
        )
    return EXIT_OK


def _listing(ns: argparse.Namespace) -> int:
    """The captures of a site, a URL prefix, a day or a crawl, streamed from the catalog."""
    from crawler.access.query import Listing

    prefix = ns.ref.strip()[:-1] if ns.ref is not None else None
    if prefix is not None and "*" in prefix:
        raise UsageError(f"{ns.ref!r}: only a trailing * (a URL prefix) is understood")
    since, until = _range(ns)
    published = _published(ns)
    if ns.ref is None and not (ns.site or ns.crawl or since or until or any(published)):
        raise UsageError(
            "say what to list: an article (URL, site:key or key), a URL prefix ending in *, "
            "--site, --crawl, --day/--from/--to or --published-from/--published-to"
        )
    archive = open_archive(ns, resolver=False)
    archive.check_not_empty()
    sites = _site_names(ns.site)
    _check_sites(archive, sites)
    if ns.crawl and not archive.crawl_known(ns.crawl):
        latest = archive.latest_crawls()
        raise UsageError(f"no crawl {ns.crawl!r} in the catalog; the latest: {', '.join(latest)}")
    listing = Listing(tuple(sites), prefix or None, ns.crawl, since, until, ns.limit, published)
    count = 0
    try:
        if not ns.json:
            print(f"captures of {listing.describe()} (oldest first):")
            print(f"{'captured':20}  status  {'type':9}  ver  text  {'article':32}  url")
        for f in archive.list_captures(listing):
            count += 1
            if ns.json:
                print(json.dumps(asdict(f), ensure_ascii=False))
                continue
            article = f"{f.site}:{f.article_key}" if f.article_key else "-"
            print(
                f"{f.capture_time:20}  {f.status:6}  {f.record_type:9}  {f.version or '-':>3}  "
                f"{'yes' if f.text_key else 'no':4}  {article:32}  {f.url}"
            )
        if not ns.json:
            more = " (--limit reached)" if ns.limit is not None and count >= ns.limit else ""
            print(f"{count} captures{more}")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped (`| head`): that is no error; stdout is gone, so quiet the exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    if count == 0:
        print(f"no capture of {listing.describe()}", file=sys.stderr)
    return EXIT_OK


def _check_output(path: Path, *, force: bool) -> None:
    """Refuse, before the archive is read, an output file ``get -o`` cannot or must not write."""
    if path.is_dir():
        raise UsageError(f"-o {path} is a directory: give a file name")
    if path.exists() and not force:
        raise UsageError(f"-o {path} exists: it is kept unless --force is given")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write -o {path}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write -o {path}: {parent} is not writable")


def cmd_get(ns: argparse.Namespace) -> int:
    output = Path(ns.output) if ns.output else None
    if output is None and ns.kind == "warc" and sys.stdout.isatty():
        raise UsageError(
            "--as warc writes binary WARC data, not for a terminal: give -o FILE "
            "(e.g. -o capture.warc.gz), or send stdout to a file or a pipe"
        )
    if output is not None:
        _check_output(output, force=ns.force)
    archive = open_archive(ns)
    archive.check_not_empty()
    landing = archive.land(
        ns.ref, _time(ns.at), need_text=ns.kind in ("text", "json"), follow=not ns.no_follow
    )
    print(landing.describe(ns.at), file=sys.stderr)
    capture = landing.capture
    data: bytes
    if ns.kind == "text":
        data = archive.text(capture)
    elif ns.kind == "json":
        car = archive.sidecar(capture)
        car["capture"] = asdict(capture)
        if landing.redirects:
            car["redirected_from"] = [asdict(r) for r in landing.redirects]
        data = json.dumps(car, indent=2, ensure_ascii=False).encode() + b"\n"
    elif ns.kind == "html":
        data = archive.html(capture)[0].encode("utf-8")
    else:
        query = f"get {ns.ref} --at {ns.at or 'latest'}: the capture closest to that time"
        if landing.redirects:
            query += ", through the redirect from " + " -> ".join(r.url for r in landing.redirects)
        data = archive.warc(capture, query=query)
        if output is not None and output.name.lower().endswith(".warc"):
            data = gzip.decompress(data)  # a plain .warc: the records as they are, unzipped
    if output is not None:
        try:
            with output.open("wb" if ns.force else "xb") as fh:
                fh.write(data)
        except FileExistsError:
            raise UsageError(f"-o {output} exists: it is kept unless --force is given") from None
        except OSError as exc:
            raise UsageError(f"cannot write -o {output}: {exc.strerror or exc}") from None
        print(f"{capture.url} captured {capture.capture_time}: {len(data):,} bytes to {output}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def cmd_export(ns: argparse.Namespace) -> int:
    from crawler.access.export import (
        Export,
        OutputError,
        Progress,
        Summary,
        check_dest,
        count_rows,
        format_for,
    )
    from crawler.access.query import describe_published

    names = _site_names(ns.site)
    if ns.all and names:
        raise UsageError("--all or --site, not both")
    if not ns.all and not names:
        raise UsageError("say which sites: --site NAME (again, or a comma list), or --all")
    dest = Path(ns.dest)
    try:
        fmt = format_for(ns.dest, ns.format)
        check_dest(dest, fmt, force=ns.force)
    except OutputError as exc:
        raise UsageError(str(exc)) from None
    archive = open_archive(ns, resolver=False)
    archive.check_not_empty()
    _check_sites(archive, names)
    sites = archive.known_sites() if ns.all else names
    since, until = _time(ns.since), _time(ns.until, end=True)
    published = _published(ns)
    span = f"{since or 'start'} .. {until or 'now'}"
    if any(published):
        span += f", {describe_published(published)}"
    totals = {site: count_rows(archive, site, since, until, published) for site in sites}
    taken = [site for site in sites if totals[site]]
    if not taken:
        which = " or ".join(repr(s) for s in sites) if len(sites) < 4 else "any site"
        print(
            f"error: no archived article of {which} in that range (captured {span})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    for site in sites:
        if not totals[site]:
            print(
                f"no archived article of {site!r} in that range (captured {span})", file=sys.stderr
            )
    grand = Summary()
    try:
        with Export(
            archive, fmt, dest, sites=taken, since=since, until=until, published=published
        ) as out:
            for site in taken:
                bar = Progress(totals[site], label=site if len(taken) > 1 else "")
                summary = out.site(site, bar.update)
                bar.close()
                print(summary.line(f"{site} {span}", ns.dest))
                grand.add(summary)
    except OSError as exc:
        print(f"error: the export to {ns.dest} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if len(taken) > 1:
        print("in all: " + grand.line(f"{len(taken)} sites ({', '.join(taken)}) {span}", ns.dest))
    if grand.corrupt:
        for line in grand.corrupt:
            print(f"skipped: {line}", file=sys.stderr)
        print(
            f"error: {len(grand.corrupt)} records failed their check and were left out of "
            f"{ns.dest} (`newsarchive verify` lists every corrupt object)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def cmd_reindex(ns: argparse.Namespace) -> int:
    from crawler.access.reindex import reindex

    archive = open_archive(ns, resolver=False, create=True)
    summary = reindex(archive.store, archive.catalog, None if ns.quiet else print)
    for name in summary.missing:
        print(f"missing: {name}", file=sys.stderr)
    print(
        f"reindexed {summary.crawls} crawls ({summary.from_parquet} from their Parquet index, "
        f"{summary.from_warcs} from their WARC files): {summary.captures} captures "
        f"({summary.added} new), {summary.articles} articles, into {archive.catalog.url}; "
        f"{summary.texts} text versions newly searchable, {summary.links} new links between "
        "sites' stories"
        + (
            f"; {len(summary.missing)} objects the manifests list are not in the store "
            "(`newsarchive verify` checks every object)"
            if summary.missing
            else ""
        )
    )
    return EXIT_OK


def cmd_serve(ns: argparse.Namespace) -> int:
    from crawler.access.guard import hash_token, new_token
    from crawler.access.httpd import ServerConfig
    from crawler.access.query import AccessError
    from crawler.access.serve import access_options, check_bind, hash_password_line, serve

    if ns.hash_password is not None:
        print(hash_password_line(ns.hash_password, _read_secret()))
        return EXIT_OK
    if ns.new_token:
        token = new_token()
        print(
            f"{ns.new_token}'s token (shown once; send 'Authorization: Bearer <token>'): {token}",
            file=sys.stderr,
        )
        print(f"{ns.new_token}:{hash_token(token)}")
        return EXIT_OK
    if not ns.allow_remote:  # checked before the store is opened (serve logs the rest)
        check_bind(ns.host, allow_remote=False)
    try:
        access = access_options(
            ns.host,
            allow_remote=ns.allow_remote,
            auth_file=ns.auth_file,
            no_auth=ns.no_auth,
            allowed_host=ns.allowed_host,
            access_file=ns.access_file,
            withhold_credentials=ns.withhold_credentials,
            cdx_paged=ns.cdx_paged,
            cdx_budget=ns.cdx_budget or None,
        )
        config = ServerConfig(threads=ns.threads, idle_timeout=ns.idle_timeout)
    except (AccessError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    archive = open_archive(ns)
    if ns.query_budget:
        archive.catalog.bound_queries(ns.query_budget)
    serve(
        archive,
        ns.host,
        ns.port,
        replay=ns.replay,
        replaywebpage=ns.replaywebpage,
        allow_remote=ns.allow_remote,
        access=access,
        server=config,
    )
    return EXIT_OK


def _read_secret() -> str:
    """A password from the terminal (asked twice, not echoed) or one line of stdin."""
    import getpass

    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("the two passwords differ")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    if len(first) < 8:
        raise UsageError("a password of at least 8 characters")
    return first


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {value!r}")
    return int(value)


def _run(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapped(ns: argparse.Namespace) -> int:
        from crawler.access.query import AccessError, BadInput
        from crawler.access.records import RecordError
        from crawler.store.base import StoreError

        try:
            return func(ns)
        except (UsageError, BadInput) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (AccessError, StoreError, RecordError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            for catalog in vars(ns).get("opened_catalogs", ()):
                catalog.close()  # a PostgreSQL connection is not left to the collector

    return wrapped


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, help=STORE_HELP)
    parser.add_argument("--catalog", default=None, help=CATALOG_HELP)
    parser.add_argument(
        "-s",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="AWS_* or ARCHIVE_* setting",
    )


def add_commands(sub: Any, resolver_factory: ResolverFactory | None = None) -> None:
    """Register the researcher commands on ``newsarchive``'s subparsers.

    ``resolver_factory`` gives the URL resolver of the sites' own rules, or None where the
    spiders cannot be loaded.
    """
    raw = argparse.RawDescriptionHelpFormatter
    snap = sub.add_parser(
        "snapshots",
        help="the captures of an article, or a listing: a site, a URL prefix, a day, a crawl",
        description="Every capture of the article behind a URL (any host alias or slug), a "
        "site:key, or a bare article key: time, status, version, digests, whether text exists. "
        "Or a listing, streamed oldest first: the captures of a URL prefix (a trailing *, "
        "matched against the URLs as captured; without a scheme, http and https), of --site, "
        "of --crawl, of --day or --from/--to, all of those given together. --json prints one "
        "JSON array for an article, JSON lines (one capture a line) for a listing.",
        epilog="examples:\n  newsarchive snapshots https://en.irna.ir/news/85859288/\n"
        "  newsarchive snapshots irna:85859288 --from 2025-06 --to 2025-06 --json\n"
        "  newsarchive snapshots --site irna --limit 20\n"
        "  newsarchive snapshots 'https://en.irna.ir/news/*' --json > irna-news.jsonl\n"
        "  newsarchive snapshots --site tdi --day 2026-12-06\n"
        "  newsarchive snapshots --crawl tdi-20261207T051615Z-b53dd4",
        formatter_class=raw,
    )
    snap.add_argument(
        "ref",
        nargs="?",
        default=None,
        help="article URL, site:key, or article key; or a URL prefix ending in * (a listing)",
    )
    snap.add_argument(
        "--site",
        action="append",
        default=None,
        help="list this site's captures (again, or a comma list, for several)",
    )
    snap.add_argument("--crawl", default=None, help="list the captures of this crawl id")
    snap.add_argument("--day", default=None, help="captured that day (or month, or year)")
    snap.add_argument("--from", dest="since", default=None, help="captured at or after (ISO date)")
    snap.add_argument("--to", dest="until", default=None, help="captured up to (inclusive)")
    snap.add_argument("--limit", type=positive_arg, default=None, help="at most this many captures")
    _add_published(snap)
    snap.add_argument(
        "--json",
        action="store_true",
        help="JSON instead of a table (an array for an article, JSON lines for a listing)",
    )
    _common(snap)
    snap.set_defaults(func=_run(cmd_snapshots), resolver_factory=resolver_factory)

    get = sub.add_parser(
        "get",
        help="one capture: cleaned text, archived HTML, sidecar, or its WARC records",
        description="The capture closest to --at (default: the latest): its cleaned text, the "
        "archived HTML payload (decoded), the JSON sidecar, or a small WARC holding exactly "
        "that capture's response, request, metadata and conversion records, read from the "
        "store by byte range. When that capture is a redirect, the capture of its Location "
        "nearest in time is taken instead, as a replay follows it (--no-follow: the redirect "
        "itself). stderr says which capture was used and how far it is from --at.",
        epilog="examples:\n  newsarchive get https://en.irna.ir/news/85859288/ --as text\n"
        "  newsarchive get tdi:world-polio-day-2023 --at 2025-06-30 --as warc -o capture.warc.gz\n"
        "  newsarchive get tdi:world-polio-day-2023 --as warc | warcio index -",
        formatter_class=raw,
    )
    get.add_argument("ref", help="article URL, site:key, or article key")
    get.add_argument("--at", default=None, help="the capture closest to this time (ISO)")
    get.add_argument("--as", dest="kind", choices=("text", "html", "json", "warc"), default="text")
    get.add_argument(
        "-o",
        "--output",
        default=None,
        help="write to this file, not stdout (a name ending in .warc: uncompressed records)",
    )
    get.add_argument("--force", action="store_true", help="replace the -o file if it exists")
    get.add_argument(
        "--no-follow", action="store_true", help="a redirect capture as it is, not followed"
    )
    _common(get)
    get.set_defaults(func=_run(cmd_get), resolver_factory=resolver_factory)

    exp = sub.add_parser(
        "export",
        help="archived articles of sites over a time range: text, JSONL, Parquet or WARC",
        description="Stream the archived articles of one site, several or all (each text "
        "version once, by capture time, site after site) from the store into one output: "
        "text files (a directory: a name ending in /), JSON lines (.jsonl, .ndjson or .json: "
        "sidecar + text), a Parquet table (.parquet: capture index plus text; DuckDB and "
        "pandas open it), or a WARC subset (.warc.gz; .warc uncompressed). The format comes "
        "from the destination's name; --format is needed only for a name that says none. An "
        "existing file is kept unless --force; a file export appears only when complete.",
        epilog="examples:\n  newsarchive export --site irna --from 2025-06 --to 2025-06 "
        "irna-june.parquet\n  newsarchive export --site tdi tdi-texts/\n"
        "  newsarchive export --site irna,presstv --from 2026-01 corpus.jsonl\n"
        "  newsarchive export --all --force everything.warc.gz",
        formatter_class=raw,
    )
    exp.add_argument(
        "--site",
        action="append",
        default=None,
        help="a site to export (again, or a comma list, for several)",
    )
    exp.add_argument("--all", action="store_true", help="every site in the catalog")
    exp.add_argument("--from", dest="since", default=None, help="captured at or after (ISO date)")
    exp.add_argument("--to", dest="until", default=None, help="captured up to (inclusive)")
    exp.add_argument(
        "--format",
        choices=("text", "jsonl", "parquet", "warc"),
        default=None,
        help="only for a destination whose name says no format; must agree with it otherwise",
    )
    exp.add_argument("--force", action="store_true", help="replace an existing output")
    _add_published(exp)
    exp.add_argument(
        "dest", help="a file (.jsonl, .parquet, .warc.gz, .warc) or a directory/ (text)"
    )
    _common(exp)
    exp.set_defaults(func=_run(cmd_export), resolver_factory=resolver_factory)

    rei = sub.add_parser(
        "reindex",
        help="rebuild the catalog from the store (manifests, indexes, sidecars)",
        description="Rebuild the catalog from what is in the store, so a fresh machine pointed "
        "at an existing bucket gets full access. Safe to run again: nothing is added twice.",
        epilog="examples:\n  newsarchive reindex --store /var/lib/newsarchive\n"
        "  AWS_ENDPOINT_URL=http://127.0.0.1:8333 newsarchive reindex --store s3://archive/news",
        formatter_class=raw,
    )
    rei.add_argument("--quiet", action="store_true", help="only the summary line")
    _common(rei)
    rei.set_defaults(func=_run(cmd_reindex), resolver_factory=resolver_factory)

    srv = sub.add_parser(
        "serve",
        help="read-only HTTP service: CDX API, search, browse pages, diffs, WACZ, replay",
        description="A read-only HTTP service (loopback by default): a pywb-compatible CDX API "
        "at /cdx, /text/<record-id>, /sidecar/<record-id>, /warc/<record-id>, /html/<record-id> "
        "(the archived page, its scripts blocked); pages at /: full-text search (/search), each "
        "site's articles by publication day (/site/<site>) and capture day "
        "(/site/<site>/captured), an article with its captures, text versions and word diffs "
        "(/diff/<site>/<key>) and the same story on other sites; the crawl's WACZ by byte range "
        "(/wacz/<site>/<crawl-id>.wacz). With --replaywebpage, article pages link a replay in "
        "ReplayWeb.page that runs the page's own scripts from the WACZ, never the live site.",
        epilog="examples:\n  newsarchive serve --port 8080\n"
        "  newsarchive serve --replaywebpage ~/replaywebpage/package\n"
        "  newsarchive serve --replay http://127.0.0.1:8081/news\n"
        "  newsarchive serve --hash-password alice >> team.auth      # asks for the password\n"
        "  newsarchive serve --new-token ci >> team.auth             # prints the token once\n"
        "  newsarchive serve --host 0.0.0.0 --allow-remote --auth-file team.auth \\\n"
        "      --allowed-host archive.example.org --access-file takedowns.txt "
        "--withhold-credentials\n"
        "  newsarchive serve --cdx-paged   # pywb's page/pageSize/showNumPages (ZipNum)",
        formatter_class=raw,
    )
    srv.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    srv.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback (with --auth-file, or --no-auth)",
    )
    srv.add_argument("--port", type=_port, default=8080, help="port (default 8080, 0: any)")
    srv.add_argument(
        "--auth-file",
        metavar="FILE",
        default=None,
        help="who may read: 'name:scrypt$…' (--hash-password) or 'name:sha256$…' "
        "(--new-token) lines; default $NEWSARCHIVE_SERVE_AUTH (the same lines), else none",
    )
    srv.add_argument(
        "--no-auth", action="store_true", help="with --allow-remote: anyone who reaches it reads"
    )
    srv.add_argument(
        "--hash-password",
        metavar="NAME",
        nargs="?",
        const="",
        default=None,
        help="print NAME's --auth-file line for a password (asked, or one line of stdin); "
        "serves nothing",
    )
    srv.add_argument(
        "--new-token",
        metavar="NAME",
        default=None,
        help="make a bearer token: the token on stderr, NAME's --auth-file line on stdout",
    )
    srv.add_argument(
        "--allowed-host",
        metavar="NAME",
        action="append",
        default=[],
        help="a Host name to answer (repeatable; default the bound address and localhost; "
        "any other Host is a 400, against DNS rebinding)",
    )
    srv.add_argument(
        "--access-file",
        metavar="FILE",
        default=None,
        help="access rules, one a line: 'block|allow URL-prefix|*.host|SURT|site:NAME "
        "[until YYYY-MM-DD]'; read again when it changes",
    )
    srv.add_argument(
        "--withhold-credentials",
        action="store_true",
        help="serve request records without their Cookie and Authorization headers (marked "
        "WARC-Withheld-Headers); no WACZ then, since it holds them as captured",
    )
    srv.add_argument(
        "--cdx-paged",
        action="store_true",
        help="the CDX API pages as pywb over a ZipNum index (page, pageSize, showNumPages, "
        "showPagedIndex); without it, as pywb over plain CDXJ files",
    )
    srv.add_argument(
        "--cdx-budget",
        metavar="SECONDS",
        type=float,
        default=10.0,
        help="the most a CDX query may take (default 10; 0: no bound)",
    )
    srv.add_argument(
        "--query-budget",
        metavar="SECONDS",
        type=float,
        default=10.0,
        help="the most a catalog query may take (search, listings, diffs; default 10; 0: none)",
    )
    srv.add_argument("--threads", type=positive_arg, default=8, help="requests at once (default 8)")
    srv.add_argument(
        "--idle-timeout",
        metavar="SECONDS",
        type=positive_arg,
        default=30,
        help="an idle connection is closed after this long (default 30)",
    )
    srv.add_argument(
        "--replay",
        default=None,
        help="a pywb collection URL; article pages link to <replay>/<timestamp>/<url>",
    )
    srv.add_argument(
        "--replaywebpage",
        metavar="DIR",
        default=None,
        help="the unpacked npm package replaywebpage (ui.js, sw.js): served here, it replays "
        "a capture from its crawl's WACZ with the page's own scripts",
    )
    _common(srv)
    srv.set_defaults(func=_run(cmd_serve), resolver_factory=resolver_factory)

    from crawler.access.research import add_commands as add_research_commands

    add_research_commands(
        sub, resolver_factory, run=_run, common=_common, open_archive=open_archive
    )

    from crawler.access.verify import add_command as add_verify_command

    add_verify_command(sub, _run, _common, open_named_store, _site_names)
