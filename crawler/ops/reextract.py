"""``newsarchive reextract``: the archive's texts made again from its WARCs with today's site
rules and extraction (the engine is ``crawler.crawl.reextract``)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import IO, Any, NoReturn

from crawler.constants import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from crawler.options import positive_arg
from crawler.text.extract import SiteRules

RulesFactory = Callable[[], Mapping[str, SiteRules]]

EXAMPLES = """\
examples:
  newsarchive reextract --site tdi --dry-run          what today's rules would change, with diffs
  newsarchive reextract --site tdi                    remake TDI's texts, write what changed
  newsarchive reextract --extractor-below 2           texts made before extractor version 2
  newsarchive reextract --site irna --from 2025-06 --to 2025-06 --workers 8
  newsarchive reextract --url-prefix en.irna.ir/news/ --limit 100
  newsarchive reextract --shard 1/3 --store s3://archive/news   (machine 1 of 3; 2/3, 3/3 elsewhere)
  newsarchive reextract --resume tdi-reextract-20261207T060000Z-a1b2c3

A killed run resumes when the same command is started again (or with --resume RUN_ID): what
it decided is skipped and no version is written twice. Exit 0 when every record was read and
extracted, 1 when some failed (each named in the summary) or the run was stopped, 2 on a bad
option.
"""


class UsageError(Exception):
    """A bad option: one line, exit 2."""


def spider_rules(overrides: Mapping[str, str] | None = None) -> dict[str, SiteRules]:
    """Each site's rules, as its spider declares them (``rules`` on the spider class);
    ``overrides``: settings given to a crawl (its ``SPIDER_MODULES``: the spiders it ran)."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    from scrapy.spiderloader import get_spider_loader
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings()
    if overrides:
        settings.setdict(dict(overrides), priority="cmdline")
    loader = get_spider_loader(settings)
    found: dict[str, SiteRules] = {}
    for name in loader.list():
        rules = getattr(loader.load(name), "rules", None)
        if isinstance(rules, SiteRules):
            found[name] = rules
    return found


def _shard(value: str) -> tuple[int, int]:
    index, sep, count = value.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise argparse.ArgumentTypeError(
            f"I/N with 1 <= I <= N (this machine's part of N), not {value!r}"
        )
    return i, n


def add_commands(sub: Any, rules_factory: RulesFactory = spider_rules) -> None:
    """Register ``reextract`` on ``newsarchive``'s subparsers; ``rules_factory`` gives the
    site rules (the spiders' by default)."""
    from crawler.access.cli import CATALOG_HELP, STORE_HELP

    cmd = sub.add_parser(
        "reextract",
        help="remake the archive's texts from its WARCs with today's rules; new versions "
        "where the text changed",
        description="Read each selected article's latest capture with text (a revisit: the "
        "response it refers to) from its WARC by byte range, check it against its payload "
        "digest, extract it with today's site rules (ARCHIVE_TEXT_MODE: article or page) and "
        "compare with the article's current text: the same is only marked checked, another "
        "becomes the next version (text, sidecar with its provenance, a conversion record in "
        "a WARC file of the run's own, the catalog, CDXJ, Parquet, WACZ and a manifest, so "
        "reindex finds it). Records are read, checked and extracted in --workers processes, a "
        "WARC file's records together; a progress line, then a summary of what changed, what "
        "did not and what failed, and why.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument(
        "--site",
        action="append",
        default=None,
        help="only this site (again, or a comma list, for several; default every site)",
    )
    cmd.add_argument(
        "--url-prefix",
        default=None,
        help="only URLs starting so (without a scheme: http and https)",
    )
    cmd.add_argument("--from", dest="since", default=None, help="captured at or after (ISO date)")
    cmd.add_argument("--to", dest="until", default=None, help="captured up to (inclusive)")
    cmd.add_argument("--crawl-id", default=None, help="only captures of this crawl")
    cmd.add_argument(
        "--extractor-below",
        type=positive_arg,
        default=None,
        metavar="N",
        help="only texts made by an extractor version below N (texts from before versions "
        "were recorded count as 0)",
    )
    cmd.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="I/N",
        help="the I-th of N parts (by a stable hash of site:article): N machines, no overlap",
    )
    cmd.add_argument("--limit", type=positive_arg, default=None, help="at most this many articles")
    cmd.add_argument(
        "--workers",
        type=positive_arg,
        default=os.cpu_count() or 1,
        help=f"processes reading and extracting (default: every core, {os.cpu_count()})",
    )
    cmd.add_argument(
        "--resume",
        default=None,
        metavar="RUN_ID",
        help="finish this unfinished run, with its own selection (no selection options)",
    )
    cmd.add_argument(
        "--dry-run",
        action="store_true",
        help="write nothing: print what would change, with word diffs of a few examples",
    )
    cmd.add_argument(
        "--examples",
        type=int,
        default=3,
        metavar="N",
        help="word diffs a dry run prints (default 3)",
    )
    cmd.add_argument(
        "--progress",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a progress line this often when stderr is no terminal (default 30)",
    )
    cmd.add_argument("--json", action="store_true", help="the summary as one JSON object")
    cmd.add_argument("--store", default=None, help=STORE_HELP)
    cmd.add_argument("--catalog", default=None, help=CATALOG_HELP)
    cmd.add_argument(
        "-s",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="ARCHIVE_* or AWS_* setting (ARCHIVE_TEXT_MODE=page, …)",
    )
    cmd.set_defaults(func=lambda ns: cmd_reextract(ns, rules_factory))

    def one_line(message: str) -> NoReturn:
        # argparse prints the whole usage first; the help is one --help away.
        print(f"error: {message} (newsarchive reextract --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)

    cmd.error = one_line


def main(argv: Sequence[str], rules: Mapping[str, SiteRules] | None = None) -> int:
    """``newsarchive reextract ARGV…`` with these site rules instead of the spiders' (trying
    new selectors from a script; the tests)."""
    parser = argparse.ArgumentParser(prog="newsarchive")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub, (lambda: rules) if rules is not None else spider_rules)
    ns = parser.parse_args(["reextract", *argv])
    code: int = ns.func(ns)
    return code


def cmd_reextract(ns: argparse.Namespace, rules_factory: RulesFactory) -> int:
    from crawler.access.cli import UsageError as AccessUsage
    from crawler.access.query import AccessError, UnknownSite
    from crawler.crawl.reextract import ReextractError
    from crawler.store.base import StoreError

    try:
        return _reextract(ns, rules_factory)
    except (UsageError, AccessUsage, UnknownSite, ReextractError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (AccessError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _sites(values: Sequence[str] | None) -> tuple[str, ...]:
    names: list[str] = []
    for value in values or []:
        for name in value.split(","):
            if name.strip() and name.strip() not in names:
                names.append(name.strip())
    return tuple(names)


def _reextract(ns: argparse.Namespace, rules_factory: RulesFactory) -> int:
    from crawler.access.cli import open_archive
    from crawler.access.query import AccessError, parse_time
    from crawler.crawl.config import TextConfig
    from crawler.crawl.reextract import Reextractor, Selection
    from crawler.options import load_options
    from crawler.store.base import store_options

    sites = _sites(ns.site)
    chosen = (
        sites
        or ns.url_prefix
        or ns.since
        or ns.until
        or ns.crawl_id
        or ns.extractor_below is not None
        or ns.shard
        or ns.limit is not None
    )
    if ns.resume and chosen:
        raise UsageError(
            "--resume finishes a run with its own selection: give no --site, --url-prefix, "
            "--from/--to, --crawl-id, --extractor-below, --shard or --limit with it"
        )
    if ns.examples < 0:
        raise UsageError(f"--examples must be 0 or more, not {ns.examples}")
    if ns.progress <= 0:
        raise UsageError(f"--progress must be a number of seconds above 0, not {ns.progress}")
    settings = load_options(ns.settings)
    try:
        text = TextConfig.from_settings(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        since = None if ns.since is None else parse_time(ns.since)
        until = None if ns.until is None else parse_time(ns.until, end=True)
    except AccessError as exc:
        raise UsageError(str(exc)) from None
    if since and until and since >= until:
        raise UsageError(f"--from {ns.since} is not before --to {ns.until}")
    archive = open_archive(ns, resolver=False)
    try:
        archive.check_not_empty()
        archive.check_sites(list(sites))
        if ns.crawl_id and not archive.crawl_known(ns.crawl_id):
            latest = ", ".join(archive.latest_crawls())
            raise UsageError(f"no crawl {ns.crawl_id!r} in the catalog; the latest: {latest}")
        rules = rules_factory()
        progress = _Progress(sys.stderr, ns.progress, quiet=ns.json)
        spool = str(settings.get("ARCHIVE_SPOOL_DIR") or "")
        engine = Reextractor(
            archive.store,
            archive.catalog,
            rules,
            mode=text.mode,
            limits=text.limits,
            workers=ns.workers,
            store_options=store_options(settings),
            spool_dir=Path(spool).expanduser() if spool else None,
            progress=progress.update,
            examples=ns.examples,
        )
        if ns.resume:
            selection = engine.resumable(ns.resume)
        else:
            selection = Selection(
                sites=sites,
                url_prefix=ns.url_prefix,
                since=since,
                until=until,
                crawl_id=ns.crawl_id,
                extractor_below=ns.extractor_below,
                shard=ns.shard,
                limit=ns.limit,
            )
        if not ns.json:
            what = "dry run: nothing is written; " if ns.dry_run else ""
            print(f"reextract ({what}{text.mode} mode): {selection.describe()}", flush=True)
        with _stopping(engine):
            summary = engine.run(selection, dry_run=ns.dry_run)
        progress.close()
    finally:
        archive.catalog.close()
    if ns.json:
        print(json.dumps(_as_json(summary), indent=2, ensure_ascii=False))
    else:
        _print_summary(summary, color=sys.stdout.isatty())
    return EXIT_FAILED if summary.failed or summary.stopped else EXIT_OK


class _stopping:
    """SIGTERM and the first Ctrl-C stop the run after the records in hand (resumable)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.saved: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        print("\nstopping after the records in hand (start again to resume)", file=sys.stderr)
        self.engine.stop()
        # A second Ctrl-C is the default: at once.
        signal.signal(signum, self.saved.get(signum, signal.SIG_DFL))

    def __enter__(self) -> _stopping:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)


class _Progress:
    """A live line on a terminal (done/selected, rate, ETA, outcomes); a plain line every
    ``every`` seconds otherwise."""

    def __init__(self, stream: IO[str], every: float, *, quiet: bool = False) -> None:
        self.stream = stream
        self.tty = stream.isatty() and not quiet
        self.every = every
        self.quiet = quiet
        self.t0 = time.monotonic()
        self._last = self.t0
        self._drawn = False

    def update(self, summary: Any) -> None:
        now = time.monotonic()
        total = max(summary.selected - summary.skipped, 1)
        done = summary.done
        if self.tty:
            if now - self._last < 0.2 and done < total:
                return
        elif self.quiet or now - self._last < self.every:
            return
        self._last = now
        elapsed = now - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        counts = (
            f"{done}/{total} records  {rate:.1f}/s  ETA {_clock(left)}  changed "
            f"{summary.changed}  unchanged {summary.unchanged}  failed {summary.failed}"
        )
        if self.tty:
            width = 24
            filled = int(width * done / total)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {counts}\x1b[K")
            self._drawn = True
        else:
            self.stream.write(f"reextract: {counts}, {_clock(elapsed)} elapsed\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def _as_json(summary: Any) -> dict[str, Any]:
    return {
        **summary.counts(),
        "dry_run": summary.dry_run,
        "stopped": summary.stopped,
        "runs": summary.runs,
        "resumed": summary.resumed,
        "manifests": summary.manifests,
        "failures": [asdict(f) for f in summary.failures],
        "changes": [asdict(c) for c in summary.changes],
    }


def _print_summary(summary: Any, *, color: bool) -> None:
    from crawler.crawl.reextract import REASONS
    from crawler.text.diff import render_plain, word_diff
    from crawler.text.diff import summary as diff_summary

    verb = "would change" if summary.dry_run else "changed"
    for site, run_id in sorted(summary.runs.items() if not summary.dry_run else ()):
        again = " (resumed)" if run_id in summary.resumed else ""
        print(f"{site:10} run {run_id}{again}")
    if summary.changes:
        print(f"{verb}:")
        for change in summary.changes[:20]:
            print(
                f"  {change.site}:{change.article_key}  v{change.old_version} -> "
                f"v{change.new_version}  {change.text_key}"
            )
        if summary.changed > 20:
            print(f"  … and {summary.changed - 20} more")
    for example in summary.examples:
        ops = word_diff(example.old_text, example.new_text)
        change = example.change
        print(
            f"\n{change.site}:{change.article_key} v{change.old_version} -> "
            f"v{change.new_version} ({change.url}): {diff_summary(ops)}"
        )
        print(render_plain(ops, color=color).rstrip("\n"))
    if summary.failures:
        print("failed:")
        for failure in summary.failures[:50]:
            print(f"  {failure.reason:16} {failure.site}:{failure.article_key}  {failure.detail}")
        if summary.failed > 50:
            print(f"  … and {summary.failed - 50} more")
    reasons = ", ".join(
        f"{reason}: {count} ({REASONS.get(reason, reason)})"
        for reason, count in sorted(summary.by_reason.items())
    )
    rate = summary.done / summary.seconds if summary.seconds > 0 else 0.0
    earlier = f" ({summary.skipped} done by an earlier start)" if summary.skipped else ""
    print(
        f"\n{summary.selected} selected{earlier}: {summary.changed} {verb}, "
        f"{summary.unchanged} unchanged, {summary.failed} failed"
        + (f" [{reasons}]" if reasons else "")
        + f"; {summary.reads} ranged reads, {_size(summary.bytes_read)} read; "
        f"{summary.seconds:.1f}s, {rate:.1f} records/s"
    )
    for key in summary.manifests:
        print(f"manifest: {key}")
    if summary.stopped:
        print("stopped: the same command (or --resume RUN_ID) finishes the run")


# -- crawl --from-archive --write ---------------------------------------------------------------
def write_replayed(
    reports: Mapping[str, Mapping[str, Any] | None],
    *,
    store: str | None,
    settings: Mapping[str, str],
) -> int:
    """``newsarchive crawl SITE --from-archive --write``: each site's articles whose replayed
    text differs from the archived one, handed to reextract's engine, the archive's one writer
    of remade texts: the capture the replay answered with is read again by range, checked and
    extracted with the rules the replay ran (its ``SPIDER_MODULES``), and a text that differs
    becomes the next version, with the provenance, checkpoint and views of any reextract run.
    Exit 0; 1 when a record failed or the write was stopped; 2 when a site's write cannot
    start (one line each: the archive does not open, a run of it is another host's)."""
    worst = EXIT_OK
    for site in sorted(reports):
        report = reports[site]
        if report is None:
            continue  # the crawl itself failed: its summary said so
        replayed = report.get("replay") or {}
        chosen = sorted(
            {
                str(entry["capture"]["record_id"])
                for entry in replayed.get("list") or []
                if entry.get("same") is False and entry.get("capture")
            }
        )
        if not chosen:
            print(f"{site:10} write: no text differs from the archived one; nothing written")
            continue
        print(
            f"{site:10} write: {len(chosen)} articles whose text differs, to reextract "
            f"(replayed crawl {replayed.get('replayed_crawl')})",
            flush=True,
        )
        try:
            summary = _write_site(site, chosen, store, settings)
        except (UsageError, ValueError) as exc:
            print(f"error: {site}: cannot write: {exc}", file=sys.stderr)
            worst = max(worst, EXIT_USAGE)
            continue
        _print_summary(summary, color=sys.stdout.isatty())
        left = len(chosen) - summary.selected
        if left:
            print(
                f"{site:10} write: {left} of the replay's captures hold no archived text "
                "to replace: not written"
            )
        if summary.failed or summary.stopped:
            worst = max(worst, EXIT_FAILED)
    return worst


def _write_site(
    site: str, chosen: Sequence[str], store: str | None, settings: Mapping[str, str]
) -> Any:
    from crawler.access.cli import UsageError as AccessUsage
    from crawler.access.cli import open_archive
    from crawler.access.query import AccessError
    from crawler.crawl.config import TextConfig
    from crawler.crawl.reextract import ReextractError, Reextractor, Selection
    from crawler.options import load_options
    from crawler.store.base import StoreError, store_options

    pairs = [f"{name}={value}" for name, value in settings.items()]
    options = load_options(pairs)
    text = TextConfig.from_settings(options)
    ns = argparse.Namespace(store=store, catalog=None, settings=pairs)
    try:
        archive = open_archive(ns, resolver=False)
    except (AccessUsage, AccessError, StoreError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        spool = str(options.get("ARCHIVE_SPOOL_DIR") or "")
        engine = Reextractor(
            archive.store,
            archive.catalog,
            spider_rules(settings),
            mode=text.mode,
            limits=text.limits,
            workers=min(os.cpu_count() or 1, max(1, len(chosen) // 200)),
            store_options=store_options(options),
            spool_dir=Path(spool).expanduser() if spool else None,
            examples=0,
        )
        with _stopping(engine):
            try:
                return engine.run(Selection(sites=(site,), record_ids=tuple(chosen)))
            except (ReextractError, AccessError, StoreError) as exc:
                raise UsageError(str(exc)) from exc
    finally:
        archive.catalog.close()
