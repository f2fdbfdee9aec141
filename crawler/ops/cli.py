"""The ``newsarchive`` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler import __version__, layout
from crawler.constants import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from crawler.ops.common import archive_settings, settings_option, spider_names
from crawler.ops.terminal import Terminal, mode_of, window_of
from crawler.options import parse_pairs
from crawler.util import parse_duration

if TYPE_CHECKING:
    from crawler.ops.jobs import RunRecorder

DEMO_STORE = "./archive-demo"
# Crawl settings for the loopback mirror: no politeness delay against our own server.
DEMO_SETTINGS = {
    "DOWNLOAD_DELAY": "0",
    "AUTOTHROTTLE_ENABLED": "False",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "8",
    "RETRY_TIMES": "1",
    # The saved pages carry their real dates (2023-2025): no 30-day discovery window.
    "ARCHIVE_DISCOVERY_WINDOW_DAYS": "0",
}


def run_sites(
    sites: Sequence[str],
    *,
    store: str | None,
    settings: dict[str, str],
    spider_args: dict[str, str],
    jobs: int,
    time_limit: float | None = None,
    terminal: Terminal | None = None,
) -> tuple[int, dict[str, dict[str, Any] | None]]:
    """Each site's crawl in its own process (a Twisted reactor cannot restart).

    Each run is recorded in the catalog's job history. SIGTERM or SIGINT (a cron container
    being stopped, Ctrl-C) starts no further site and sends each running crawl one SIGTERM,
    so it closes its WARCs and uploads; one still running after the grace is killed.
    """
    from crawler.ops.jobs import CrawlProcess, CrawlRequest, exit_code_of

    overrides = dict(settings)
    if store:
        overrides["ARCHIVE_STORE_URI"] = store
    configured = archive_settings([f"{k}={v}" for k, v in overrides.items()])
    grace = configured.getfloat("ARCHIVE_SCHEDULE_GRACE", 120)
    terminal = terminal or Terminal()
    # The summary explains the discovery window these settings give.
    terminal.window_days, terminal.since_given = window_of(configured, spider_args)
    # The crawls' whole logs go to their files: only their errors reach this terminal, or
    # every line at LOG_LEVEL with -v.
    terminal_level = "DEBUG" if terminal.mode == "verbose" else "ERROR"
    # A replay of the archive writes nothing, not even its run in the job history.
    recorder = None if configured.getbool("ARCHIVE_REPLAY_ENABLED") else _run_recorder(configured)
    reports: dict[str, dict[str, Any] | None] = {}
    worst = EXIT_OK
    pending = list(sites)
    running: list[CrawlProcess] = []
    stopping = threading.Event()
    restore = _forward_stop_signals(stopping)
    try:
        with tempfile.TemporaryDirectory(prefix="newsarchive-") as tmp:
            while (pending and not stopping.is_set()) or running:
                while pending and len(running) < jobs and not stopping.is_set():
                    site = pending.pop(0)
                    request = CrawlRequest(
                        site,
                        settings=overrides,
                        spider_args=spider_args,
                        time_limit=time_limit,
                        grace=grace,
                        terminal_level=terminal_level,
                    )
                    crawl = CrawlProcess(
                        request, Path(tmp) / f"{site}.json", Path(tmp) / f"{site}.progress"
                    )
                    crawl.start()
                    terminal.started(site, crawl.crawl_id, crawl.progress_file)
                    if recorder is not None:
                        recorder.started(crawl)
                    running.append(crawl)
                for crawl in list(running):
                    if stopping.is_set():
                        crawl.stop()
                    if crawl.poll() is None:
                        continue
                    running.remove(crawl)
                    outcome = crawl.outcome()
                    if recorder is not None:
                        recorder.finished(outcome)
                    reports[crawl.request.site] = outcome.report
                    if outcome.result == "skipped":  # its lease is held by another crawl
                        terminal.busy(crawl.request.site, outcome.failure or "")
                    else:
                        terminal.finished(
                            crawl.request.site,
                            outcome.ok,
                            outcome.report,
                            crawl.elapsed,
                            outcome.failure,
                        )
                    worst = _worse(worst, exit_code_of(outcome))
                terminal.tick()
                time.sleep(0.2)
    finally:
        restore()
        if recorder is not None:
            recorder.close()
    for site in pending:
        terminal.not_started(site, "stopped by a signal")
        worst = _worse(worst, EXIT_FAILED)
    terminal.total()
    return worst, reports


def _worse(code: int, other: int) -> int:
    """A failure (1, 2) outranks a site left to another crawl (3), which outranks ok (0)."""
    rank = {EXIT_OK: 0, EXIT_BUSY: 1, EXIT_FAILED: 2, EXIT_USAGE: 3}
    return max(code, other, key=lambda c: rank.get(c, 2))


def _run_recorder(configured: Any) -> RunRecorder | None:
    from crawler.crawl.runner import locations
    from crawler.ops.jobs import RunRecorder
    from crawler.store.base import StoreError

    try:
        url = locations(configured).catalog_url
    except StoreError:
        return None  # the crawl itself reports the unusable store, as one line
    return RunRecorder(url) if url else None


def _forward_stop_signals(stopping: threading.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set ``stopping`` instead of killing this process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_signal(signum: int, _frame: object) -> None:
        if not stopping.is_set():
            print(
                f"{signal.Signals(signum).name}: stopping the running crawls (no new ones)",
                file=sys.stderr,
                flush=True,
            )
        stopping.set()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore


def cmd_crawl(ns: argparse.Namespace) -> int:
    known = spider_names()
    if ns.all:
        if ns.sites:
            print("error: give site names or --all, not both", file=sys.stderr)
            return EXIT_USAGE
        sites = known
    else:
        sites = ns.sites
    if not sites:
        print(
            "error: name at least one site, or --all (sites: " + ", ".join(known) + ")",
            file=sys.stderr,
        )
        return EXIT_USAGE
    unknown = [s for s in sites if s not in known]
    if unknown:
        print(
            f"error: unknown site(s) {', '.join(unknown)} (sites: {', '.join(known)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    settings = parse_pairs(ns.settings, "-s")
    if ns.proxy:
        settings["ARCHIVE_PROXY"] = ns.proxy
    replay_error = _replay_options(ns, settings)
    if replay_error:
        print(f"error: {replay_error}", file=sys.stderr)
        return EXIT_USAGE
    spider_args = parse_pairs(ns.args, "-a")
    # Every input checked once, before the first site starts (not once per site process).
    errors = _output_errors(ns, settings)
    errors += _crawl_input_errors(settings, ns.store, spider_args, sites)
    time_limit = None
    if ns.time_limit is not None:
        try:
            seconds = parse_duration(ns.time_limit, "--time-limit").total_seconds()
        except ValueError as exc:
            errors.append(str(exc))
        else:
            time_limit = seconds or None  # 0: no limit
    if errors:
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if ns.dry_run:
        return print_plan(sites, ns.store, settings, spider_args, time_limit)
    code, reports = run_sites(
        sites,
        store=ns.store,
        settings=settings,
        spider_args=spider_args,
        jobs=ns.jobs,
        time_limit=time_limit,
        terminal=_terminal(ns),
    )
    if getattr(ns, "write", False):
        from crawler.ops.reextract import write_replayed

        code = max(code, write_replayed(reports, store=ns.store, settings=settings))
    return code


def _replay_options(ns: argparse.Namespace, settings: dict[str, str]) -> str | None:
    """--from-archive and --crawl-id as the crawl's settings; an error, or None."""
    crawl_id = getattr(ns, "crawl_id", None)
    if not getattr(ns, "from_archive", False):
        if getattr(ns, "write", False):
            return "--write needs --from-archive"
        return "--crawl-id needs --from-archive" if crawl_id else None
    settings["ARCHIVE_REPLAY_ENABLED"] = "True"
    if crawl_id:
        settings["ARCHIVE_REPLAY_CRAWL_ID"] = crawl_id
    return None


def cmd_check(ns: argparse.Namespace) -> int:
    """``newsarchive check``: ``crawl --dry-run`` under its own name."""
    ns.dry_run = True
    ns.jobs = 1
    ns.log_level = None
    return cmd_crawl(ns)


def print_plan(
    sites: list[str],
    store: str | None,
    settings: dict[str, str],
    spider_args: dict[str, str],
    time_limit: float | None,
) -> int:
    """What a crawl with these inputs would do, and whether its catalog answers; exit 1 if not.

    The inputs are checked already (the store for real: bucket, credentials, a write).
    """
    from scrapy.spiderloader import get_spider_loader

    from crawler.crawl.runner import locations
    from crawler.util import without_password

    overrides = dict(settings)
    if store:
        overrides["ARCHIVE_STORE_URI"] = store
    configured = archive_settings([f"{k}={v}" for k, v in overrides.items()])
    where = locations(configured)
    replay = configured.getbool("ARCHIVE_REPLAY_ENABLED")
    print(f"store:    {where.store_uri} ({'read only: a replay' if replay else 'writable'})")
    print(f"spool:    {where.spool}")
    logs = (
        f"{where.log_dir}/replay/<site>/<crawl id>.log (+ .json)"
        if replay
        else (f"{where.log_dir}/<site>/<crawl id>.log")
    )
    print(f"logs:     {logs}")
    code = EXIT_OK
    if where.catalog_url is None:
        print("catalog:  off (ARCHIVE_CATALOG_ENABLED): every article is fetched every time")
    else:
        shown = without_password(where.catalog_url)
        sqlite = where.catalog_url.startswith("sqlite:///")
        fresh = sqlite and not Path(where.catalog_url.removeprefix("sqlite:///")).exists()
        problem = None if fresh else _catalog_problem(where.catalog_url)
        if fresh:
            print(f"catalog:  {shown} (none yet: the first crawl makes it)")
        elif problem:
            print(f"catalog:  {shown}: {problem}")
            code = EXIT_FAILED
        else:
            print(f"catalog:  {shown}")
    days = configured.getint("ARCHIVE_DISCOVERY_WINDOW_DAYS")
    window = (
        f"since {spider_args['since']}"
        if spider_args.get("since")
        else f"the last {days} days"
        if days
        else "no date limit"
    )
    print(f"text:     {configured.get('ARCHIVE_TEXT_MODE')} mode; articles from {window}")
    print(f"proxy:    {configured.get('ARCHIVE_PROXY') or 'none (direct connections)'}")
    print(f"limit:    {f'{time_limit:.0f}s per site' if time_limit else 'no time limit'}")
    if spider_args:
        print("args:     " + ", ".join(f"{k}={v}" for k, v in spider_args.items()))
    loader = get_spider_loader(configured)
    for site in sites:
        cls = loader.load(site)
        sources = [
            f"{n} {kind[:-1] if n == 1 else kind}"
            for kind in ("feeds", "sitemaps", "listings")
            if (n := len(getattr(cls, kind, ())))
        ]
        render = ", rendered in Chromium" if getattr(cls, "render_pages", False) else ""
        if replay:  # answered from the archive: the DOM a browser made, when archived
            render = render and ", rendered pages as the browser made them"
        verb = "would replay" if replay else "would crawl"
        print(f"  {site:10} {verb} {', '.join(sources) or 'its start URLs'}{render}")
    print("ok: a crawl would start" if code == EXIT_OK else "not ok: see above")
    return code


def _catalog_problem(url: str) -> str | None:
    """None when the catalog answers (or is a SQLite file the first crawl will make)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError, ValueError) as exc:
        return f"does not answer: {str(exc).splitlines()[0][:300]}"
    return None


def output_options(parser: argparse.ArgumentParser) -> None:
    """-q, -v, --log-level and --progress: what a crawl command prints."""
    group = parser.add_argument_group("output")
    loud = group.add_mutually_exclusive_group()
    loud.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="only problems: nothing at all when every site is ok (for cron)",
    )
    loud.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="the crawls' whole log (Scrapy's included) on stderr as well",
    )
    group.add_argument(
        "--log-level",
        default=None,
        metavar="LEVEL",
        help="DEBUG, INFO (default), WARNING or ERROR: the crawl log's level (Scrapy's "
        "LOG_LEVEL); each crawl's log is in <store>/.logs/<site>/ (ARCHIVE_LOG_DIR)",
    )
    group.add_argument(
        "--progress",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="when not on a terminal, a progress line per site this often (default 60; 0: "
        "none); on a terminal the progress line is live",
    )


def _output_errors(ns: argparse.Namespace, settings: dict[str, str]) -> list[str]:
    """--log-level checked and handed to the crawls as LOG_LEVEL."""
    from crawler.logs import log_level

    if ns.log_level is None:
        return []
    try:
        log_level(ns.log_level)
    except ValueError as exc:
        return [str(exc)]
    settings["LOG_LEVEL"] = ns.log_level.upper()
    return []


def _terminal(ns: argparse.Namespace) -> Terminal:
    return Terminal(mode_of(ns.quiet, ns.verbose), every=ns.progress)


def _crawl_input_errors(
    settings: dict[str, str], store: str | None, spider_args: dict[str, str], sites: list[str]
) -> list[str]:
    """The settings (names and values, the store's and catalog's URLs) and the spider
    arguments of a crawl, as each site's process would check them; one sentence each."""
    from crawler.crawl.config import check_settings
    from crawler.crawl.runner import replay_errors
    from crawler.crawl.spider import CrawlArgs

    overrides = dict(settings)
    if store:
        overrides["ARCHIVE_STORE_URI"] = store
    configured = archive_settings([f"{k}={v}" for k, v in overrides.items()])
    errors = check_settings(configured)
    try:
        CrawlArgs.check(spider_args, own=_own_arguments(sites, spider_args))
    except ValueError as exc:
        errors.append(f"-a: {exc}")
    if not errors and configured.getbool("ARCHIVE_REPLAY_ENABLED"):
        # Read only, the store's binding included (opening a Catalog may upgrade it).
        errors += replay_errors(configured, sites)
    elif not errors:
        errors += _catalog_errors(configured)
    return errors


def _catalog_errors(configured: Any) -> list[str]:
    """A catalog that describes another store, said once (not by each site's crawl)."""
    from sqlalchemy.exc import SQLAlchemyError

    from crawler.crawl.catalog import catalog_mismatch
    from crawler.crawl.runner import locations
    from crawler.store.base import StoreError, store_options
    from crawler.store.uri import open_store

    try:
        where = locations(configured)
        if where.catalog_url is None:
            return []
        store = open_store(where.store_uri, store_options(configured))
        mismatch = catalog_mismatch(where.catalog_url, store)
    except (SQLAlchemyError, StoreError):
        return []  # a catalog or store that does not answer: the crawl says so itself
    return [mismatch] if mismatch else []


def _own_arguments(sites: list[str], names: Iterable[str]) -> set[str]:
    """Of ``names``, those every one of these spiders declares itself (class attributes)."""
    from scrapy.spiderloader import get_spider_loader
    from scrapy.utils.project import get_project_settings

    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    loader = get_spider_loader(get_project_settings())
    classes = [loader.load(site) for site in sites]
    return {name for name in names if classes and all(hasattr(c, name) for c in classes)}


def spider_resolver() -> Callable[[str], list[tuple[str, str]]] | None:
    """URL -> (site, article key) by each spider's own rule (host aliases, slugs).

    None where Scrapy or the spiders cannot be loaded (a reader-only install): the researcher
    commands then find articles by exact URL and ``site:key``.
    """
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    try:
        from scrapy.spiderloader import get_spider_loader
        from scrapy.utils.project import get_project_settings
    except ImportError:
        return None

    loader = get_spider_loader(get_project_settings())
    rules: list[tuple[str, Callable[[str], str | None]]] = []
    for name in loader.list():
        try:
            spider = loader.load(name)()
        except (TypeError, ValueError):
            continue  # a spider that needs arguments has no URL rule to offer here
        rule = getattr(spider, "article_key", None)
        if callable(rule):
            rules.append((name, rule))

    def resolve(url: str) -> list[tuple[str, str]]:
        found = []
        for name, rule in rules:
            try:
                key = rule(url)
            except (NotImplementedError, ValueError):
                continue
            if key:
                found.append((name, key))
        return found

    return resolve


def cmd_demo(ns: argparse.Namespace) -> int:
    from crawler.mirror.server import MirrorServer
    from crawler.store.base import StoreError, store_options
    from crawler.store.uri import open_store

    configured = archive_settings(ns.settings)
    try:
        store = open_store(ns.store, store_options(configured))
        if configured.getbool("ARCHIVE_STORE_CHECK") or store.local_path("x") is not None:
            store.check_writable()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    known = spider_names()
    with MirrorServer() as mirror:
        sites = [s for s in known if s in mirror.sites] if not ns.sites else ns.sites
        missing = [s for s in sites if s not in mirror.sites or s not in known]
        if missing:
            print(f"error: no mirror or spider for {', '.join(missing)}", file=sys.stderr)
            return EXIT_USAGE
        if not ns.quiet:
            print(f"mirror of {', '.join(sorted(mirror.hosts))} on {mirror.proxy_url}", flush=True)
        settings = dict(DEMO_SETTINGS)
        settings["ARCHIVE_PROXY"] = mirror.proxy_url
        # The rendered pages (and challenges) accept the mirror's certificates, no others.
        settings["ARCHIVE_RENDER_TRUSTED_SPKI"] = mirror.spki_sha256
        settings.update(parse_pairs(ns.settings, "-s"))
        if errors := _output_errors(ns, settings):
            print(f"error: {errors[0]}", file=sys.stderr)
            return EXIT_USAGE
        code, reports = run_sites(
            sites,
            store=store.uri,
            settings=settings,
            spider_args={},
            jobs=1,
            terminal=_terminal(ns),
        )
    if not ns.quiet or code != EXIT_OK:
        print_outputs(store, reports)
    return code


def mirror_flags(proxy_url: str, spki: str) -> list[str]:
    """The options that point crawl and run at the loopback mirror."""
    settings = {
        # The saved pages carry their real dates (2023-2025): no 30-day discovery window.
        "ARCHIVE_DISCOVERY_WINDOW_DAYS": "0",
        # The mirror's certificates, trusted for the rendered pages (and only through it).
        "ARCHIVE_RENDER_TRUSTED_SPKI": spki,
    }
    return ["--proxy", proxy_url, *(x for k, v in settings.items() for x in ("-s", f"{k}={v}"))]


def cmd_mirror(ns: argparse.Namespace) -> int:
    import signal

    from crawler.mirror.server import MirrorServer

    try:
        server = MirrorServer(port=ns.port, ca_dir=Path(ns.ca_dir) if ns.ca_dir else None)
        server.start()
    except OSError as exc:
        print(f"error: cannot start the mirror on 127.0.0.1:{ns.port}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        flags = " ".join(mirror_flags(server.proxy_url, server.spki_sha256))
        print(
            f"mirror of {', '.join(server.sites)} ({len(server.hosts)} hosts) on "
            f"{server.proxy_url}; Ctrl-C stops it. In another terminal:",
            flush=True,
        )
        print(f"  newsarchive crawl tdi {flags}", flush=True)
        print(f"  newsarchive run --now {flags}", flush=True)
        print("  newsarchive status --check", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return EXIT_OK


def print_outputs(store: Any, reports: dict[str, dict[str, Any] | None]) -> None:
    """Where every kind of output landed, by kind, as store keys and local paths."""
    from crawler.store.base import StoreError

    pending = sum(int((r or {}).get("upload", {}).get("pending", 0)) for r in reports.values())
    try:
        keys: list[str] | None = list(store.list())
    except StoreError as exc:
        print(f"\nstore: {store.uri} cannot be listed: {exc}")
        keys = None
    if keys is not None:
        print_groups(store, keys)
    if pending:
        print(f"pending upload: {pending} objects in the spool (send them: newsarchive upload)")


def print_groups(store: Any, keys: list[str]) -> None:
    groups = {
        "WARC files": [k for k in keys if layout.is_warc(k)],
        "article texts": [k for k in keys if layout.is_text(k)],
        "article sidecars": [k for k in keys if layout.is_sidecar(k)],
        "crawl reports": [k for k in keys if k.startswith(layout.REPORT_PREFIX)],
        "manifests": [k for k in keys if k.startswith(layout.MANIFEST_PREFIX)],
    }
    print(f"\nstore: {store.uri}")
    for label, group in groups.items():
        print(f"{label} ({len(group)}):")
        for key in group[:20]:
            path = store.local_path(key)
            print(f"  {path if path is not None else key}")
        if len(group) > 20:
            print(f"  … and {len(group) - 20} more")


def cmd_upload(ns: argparse.Namespace) -> int:
    from crawler.layout import default_spool_dir
    from crawler.store.base import StoreError, store_options
    from crawler.store.spool import Backlog, drain_backlog, pending_backlogs
    from crawler.store.uri import open_store

    settings = archive_settings(ns.settings)
    spool = Path(ns.spool or settings.get("ARCHIVE_SPOOL_DIR") or default_spool_dir())
    spool = spool.expanduser()
    lists = pending_backlogs(spool)
    if not lists:
        print(f"nothing to upload: no backlog in {spool}")
        return EXIT_OK
    if ns.store:
        uris = [ns.store]
    else:
        uris = []
        for path in lists:
            try:
                uri = Backlog.load(path).store_uri
            except (OSError, ValueError, KeyError) as exc:
                print(f"error: unreadable backlog list {path}: {exc}", file=sys.stderr)
                return EXIT_FAILED
            if uri not in uris:
                uris.append(uri)
    total = sum(Backlog.load(p).waiting for p in lists)
    done = 0

    def progress(line: str) -> None:
        nonlocal done
        done += 1
        print(f"[{done}/{total}] {line}", flush=True)

    uploaded_all = 0
    failed_all: list[str] = []
    started = time.monotonic()
    for uri in uris:
        try:
            store = open_store(uri, store_options(settings))
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"uploading the backlog in {spool} to {store.uri}", flush=True)
        uploaded, failed = drain_backlog(
            store,
            spool,
            keep_local=settings.getbool("ARCHIVE_STORE_KEEP_LOCAL"),
            progress=progress,
        )
        uploaded_all += len(uploaded)
        failed_all += failed
        size = sum(o.size for o in uploaded)
        print(f"{store.uri}: {len(uploaded)} objects uploaded ({size:,} bytes)", flush=True)
        _settle_waits(settings, store, spool)
    left = sum(Backlog.load(p).waiting for p in pending_backlogs(spool))
    print(
        f"uploaded {uploaded_all} objects in {time.monotonic() - started:.1f}s, "
        f"{len(failed_all)} failed, {left} still pending in {spool}"
    )
    return EXIT_FAILED if failed_all or left else EXIT_OK


def _settle_waits(settings: Any, store: Any, spool: Path) -> None:
    """The catalog's articles whose objects waited in this spool and are stored now."""

    from sqlalchemy.exc import SQLAlchemyError

    from crawler.catalog.db import Catalog
    from crawler.layout import default_catalog_url
    from crawler.store.base import local_root
    from crawler.store.spool import spool_identity, waiting_crawls

    if not settings.getbool("ARCHIVE_CATALOG_ENABLED", True):
        return
    url = str(settings.get("ARCHIVE_CATALOG_URL") or "") or default_catalog_url(
        local_root(store), spool, store.uri
    )
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return
    try:
        catalog = Catalog(url)
        try:
            settled = catalog.settle_waits(spool_identity(spool), waiting_crawls(spool))
        finally:
            catalog.close()
    except SQLAlchemyError as exc:
        print(f"warning: the catalog was not told what is stored now: {exc}", file=sys.stderr)
        return
    if settled:
        print(f"{settled} archived articles are in the store now (the catalog knows)")


HELP_EXAMPLES = """\
examples:
  newsarchive crawl --all                     every site once into ./archive
  newsarchive crawl --all -q                  the same for cron: prints only problems
  newsarchive check --all                     check settings, store and catalog; crawl nothing
  newsarchive crawl tdi --store /var/lib/newsarchive
  newsarchive crawl tdi -s ARCHIVE_TEXT_MODE=page -a max_articles=20
  newsarchive demo                            the whole pipeline against the loopback mirror
  newsarchive crawl tdi --store s3://archive-bucket/news
  newsarchive upload                          send what an outage left in the spool
  newsarchive sources add https://news.example.org/   a new site from its URL, no code
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsarchive",
        description="Scheduled scraping and archiving of news sites: WARC + clean text.",
        epilog=HELP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"newsarchive {__version__}")
    parser.add_argument(
        "--env-file",
        default=None,
        metavar="FILE",
        help="read NAME=VALUE lines (the daemon's environment file) before the command; "
        "variables already set win",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crawl = sub.add_parser(
        "crawl",
        help="crawl sites once, each in its own process; exit 1 if any site failed",
        description="Crawl the named sites (or --all) once, each in its own process, then "
        "print one summary line per site. Exit code 1 if any site failed, 2 on bad usage.",
        epilog="examples:\n  newsarchive crawl --all\n  newsarchive crawl tdi irna --jobs 2 "
        "--store file:///var/lib/newsarchive\n  newsarchive crawl tdi -a max_articles=10\n"
        "  newsarchive crawl tdi --from-archive          # selectors against archived pages\n"
        "  newsarchive crawl tdi --from-archive --write  # ... and write the texts that differ\n"
        "  newsarchive crawl tdi --from-archive --crawl-id tdi-20261207T022109Z-f413c6",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    crawl.add_argument("sites", nargs="*", help="spider names (see --all)")
    crawl.add_argument("--all", action="store_true", help="every site")
    crawl.add_argument(
        "--store", default=None, help="store URI or path (default: $NEWSARCHIVE_STORE or ./archive)"
    )
    crawl.add_argument("--jobs", type=int, default=1, help="sites crawled at once (default 1)")
    crawl.add_argument("--proxy", default=None, help="send every request through this proxy")
    crawl.add_argument(
        "--time-limit",
        default=None,
        metavar="DURATION",
        help="stop a site's crawl after this long: 3600, 90m, 2h (as in the schedule file; "
        "0 = no limit; SIGTERM, killed after ARCHIVE_SCHEDULE_GRACE)",
    )
    crawl.add_argument(
        "-a", dest="args", action="append", default=[], metavar="NAME=VALUE", help="spider argument"
    )
    settings_option(crawl, "Scrapy or ARCHIVE_* setting")
    crawl.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything (settings, arguments, store, catalog) and print what the "
        "crawl would do; crawl nothing (as `newsarchive check`)",
    )
    replay = crawl.add_argument_group("replay from the archive")
    replay.add_argument(
        "--from-archive",
        action="store_true",
        help="run the real spider with every response taken from the store's WARCs (each "
        "URL's latest capture): nothing fetched, nothing written (unless --write); the summary "
        "says how many article texts differ from the archived ones (a selector change, "
        "checked first)",
    )
    replay.add_argument(
        "--crawl-id",
        default=None,
        metavar="ID",
        help="with --from-archive: answer with this crawl's captures (a URL it did not "
        "fetch: its last capture before it)",
    )
    replay.add_argument(
        "--write",
        action="store_true",
        help="with --from-archive: after the replay, write the texts that differ as new "
        "versions, through reextract (the same provenance, checkpoints and views)",
    )
    output_options(crawl)
    crawl.set_defaults(func=cmd_crawl)

    check = sub.add_parser(
        "check",
        help="check settings, arguments, store and catalog, and print what a crawl would do",
        description="Every check a crawl makes before it starts (setting names and values, "
        "spider arguments, the store for real: bucket, credentials, a test write) plus whether "
        "the catalog answers; then what the crawl would do. Exit 0 if a crawl would start, 2 "
        "on a bad input, 1 if the catalog does not answer. Same as `crawl --dry-run`.",
        epilog="examples:\n  newsarchive check --all\n  newsarchive check tdi --store "
        "s3://archive/news -s ARCHIVE_TEXT_MODE=page\n  newsarchive --env-file "
        "/etc/newsarchive/newsarchive.env check --all",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("sites", nargs="*", help="spider names (see --all)")
    check.add_argument("--all", action="store_true", help="every site")
    check.add_argument("--store", default=None, help="store URI or path (as for crawl)")
    check.add_argument("--proxy", default=None, help="as for crawl")
    check.add_argument("--time-limit", default=None, metavar="DURATION", help="as for crawl")
    check.add_argument(
        "-a", dest="args", action="append", default=[], metavar="NAME=VALUE", help="spider argument"
    )
    settings_option(check, "Scrapy or ARCHIVE_* setting")
    check.set_defaults(func=cmd_check, quiet=False, verbose=False, progress=60.0)

    demo = sub.add_parser(
        "demo",
        help="run the whole pipeline against the loopback mirror (no internet)",
        description="Serve the saved pages of the source sites from a loopback mirror that "
        "answers as the real hosts, crawl them with the real spiders, and print where every "
        "kind of output landed.",
        epilog="examples:\n  newsarchive demo\n  newsarchive demo --store /tmp/demo-archive "
        "--sites tdi",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--store", default=DEMO_STORE, help=f"store (default {DEMO_STORE})")
    demo.add_argument("--sites", nargs="*", default=None, help="only these mirrored sites")
    settings_option(demo, "Scrapy or ARCHIVE_* setting")
    output_options(demo)
    demo.set_defaults(func=cmd_demo)

    mirror = sub.add_parser(
        "mirror",
        help="serve the source sites' saved pages on loopback, to try crawl, run and status "
        "offline",
        description="Start the loopback mirror (an HTTP proxy on 127.0.0.1 that answers as the "
        "real news hosts, from saved pages) and print the exact --proxy and settings that "
        "point crawl and run at it. Runs until Ctrl-C or SIGTERM.",
        epilog="examples:\n  newsarchive mirror\n  newsarchive mirror --port 8899 --ca-dir "
        "~/.cache/newsarchive/mirror-ca   (the same certificate pin every time)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mirror.add_argument("--port", type=int, default=8899, help="port (0: any free port)")
    mirror.add_argument(
        "--ca-dir", default=None, help="keep the mirror's CA here (its pin then stays the same)"
    )
    mirror.set_defaults(func=cmd_mirror)

    upload = sub.add_parser(
        "upload",
        help="upload what earlier crawls left in the spool; exit 1 if anything is still pending",
        description="Objects a remote store did not take during a crawl (an outage, wrong "
        "credentials) wait in the spool with their size and SHA-256. This uploads them, each "
        "verified, then removes the local copy. Exit 1 if anything failed or is still pending.",
        epilog="examples:\n  newsarchive upload\n  AWS_ENDPOINT_URL=http://127.0.0.1:8333 "
        "newsarchive upload --store s3://archive/news",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upload.add_argument(
        "--store",
        default=None,
        help="only the backlog meant for this store URI (default: every backlog, each to the "
        "store it was meant for)",
    )
    upload.add_argument(
        "--spool",
        default=None,
        help="spool directory (default: $ARCHIVE_SPOOL_DIR or ~/.cache/newsarchive/spool)",
    )
    settings_option(upload, "AWS_* or ARCHIVE_STORE_* setting")
    upload.set_defaults(func=cmd_upload)
    # Imported here: both modules use this one's helpers.
    from crawler.access.cli import add_commands as add_access_commands
    from crawler.ops.daemon import add_commands as add_daemon_commands
    from crawler.ops.deploy import add_deploy_command
    from crawler.ops.reextract import add_commands as add_reextract_commands

    add_daemon_commands(sub)  # run, status
    add_deploy_command(sub)  # deploy k8s
    add_access_commands(sub, spider_resolver)  # snapshots, get, export, reindex, serve
    add_reextract_commands(sub)  # reextract
    from crawler.ops.sources import add_commands as add_sources_commands

    add_sources_commands(sub, settings_option)  # sources add, test, list
    return parser


def load_env_file(path: Path) -> dict[str, str]:
    """``NAME=VALUE`` lines (systemd's EnvironmentFile, docker's --env-file) into os.environ.

    Blank lines and ``#`` comments are skipped, ``export`` is allowed, one pair of quotes
    around a value is removed; a variable already in the environment keeps its value.
    """
    loaded: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise ValueError(f"line {number} is not NAME=VALUE: {raw.strip()[:60]!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        loaded[name] = value
        os.environ.setdefault(name, value)
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if ns.env_file is not None:
        try:
            load_env_file(Path(ns.env_file))
        except (OSError, ValueError) as exc:
            print(f"error: --env-file {ns.env_file}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if getattr(ns, "jobs", 1) < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    previous = _export_sources_file(ns)
    from crawler.crawl.sources import SourcesError

    try:
        code: int = ns.func(ns)
    except SourcesError as exc:  # the sources file, read where the spiders are listed
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        # Called in-process (tests, a script), the next command sees the environment it had.
        if previous is not _UNSET:
            if isinstance(previous, str):
                os.environ["ARCHIVE_SOURCES_FILE"] = previous
            else:
                os.environ.pop("ARCHIVE_SOURCES_FILE", None)
    return code


_UNSET = object()


def _export_sources_file(ns: argparse.Namespace) -> object:
    """``-s ARCHIVE_SOURCES_FILE=...`` for every spider loader of this command: its own
    and its crawls' processes (the loader reads the project settings and the environment).
    Returns the value it replaced (None: there was none), or ``_UNSET`` if nothing was set."""
    previous: object = _UNSET
    for pair in getattr(ns, "settings", None) or []:
        name, sep, value = str(pair).partition("=")
        if sep and name.strip() == "ARCHIVE_SOURCES_FILE":
            if previous is _UNSET:
                previous = os.environ.get("ARCHIVE_SOURCES_FILE")
            os.environ["ARCHIVE_SOURCES_FILE"] = value.strip()
    return previous


if __name__ == "__main__":
    sys.exit(main())
