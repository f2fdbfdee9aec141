"""What ``newsarchive crawl`` and ``demo`` print: a line per site as it starts, live progress,
and a summary that explains its numbers.

The crawls run in processes of their own with their whole log in a file; the terminal gets
their problems (ERROR lines), and this module's lines on stdout:

- ``normal``: a start line per site; on a terminal a live progress line (pages, articles
  new/revised/failed, rate, elapsed), else a plain progress line every ``every`` seconds; a
  summary per site (the line scripts parse, then what the numbers mean); a total.
- ``quiet`` (``-q``, for cron): only the sites that failed: nothing at all on success.
- ``verbose`` (``-v``): the crawls' whole log on stderr as well; no live line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

MODES = ("quiet", "normal", "verbose")
SHOWN_FAILURES = 3
SHOWN_DIFFERENT = 5  # articles of a replay whose text differs, named in its summary


def summary_line(
    site: str, ok: bool, report: Mapping[str, Any] | None, seconds: float, why: str | None
) -> str:
    """The first line of a site's summary (scripts and tests read it)."""
    if report is None:
        return f"{site:10} FAILED  after {seconds:.1f}s: {why or 'no crawl report'}"
    replay = report.get("replay")
    if isinstance(replay, Mapping):
        return _replay_line(site, ok, report, replay, why)
    arts = report["articles"]
    files = len(report["warc"]["files"])
    line = (
        f"{site:10} {'ok' if ok else 'FAILED':7} {arts['new']} new articles, "
        f"{arts['failed']} failed, {report['pages']['responses']} pages, {files} WARC "
        f"file{'' if files == 1 else 's'}, {report['duration_s']:.1f}s"
    )
    return line + (f" ({why})" if why and not ok else "")


def _replay_line(
    site: str, ok: bool, report: Mapping[str, Any], replay: Mapping[str, Any], why: str | None
) -> str:
    """A replay's first line: how many texts are as archived and how many differ."""
    arts = replay["articles"]
    line = (
        f"{site:10} {'ok' if ok else 'FAILED':7} {arts['extracted']} articles replayed: "
        f"{arts['same']} same text as archived, {arts['differ']} differ, "
        f"{report['articles']['failed']} failed, {replay['pages']['answered']} pages from the "
        f"archive, {report['duration_s']:.1f}s"
    )
    return line + (f" ({why})" if why and not ok else "")


def explain_replay(report: Mapping[str, Any]) -> list[str]:
    """What a replay's numbers mean: where the answers came from, which texts differ."""
    replay = report["replay"]
    arts = replay["articles"]
    if replay.get("crawl_id"):
        source = (
            f"crawl {replay['crawl_id']}'s captures (a URL it did not fetch: its last capture "
            "before)"
        )
    else:
        source = f"each URL's latest capture (newest crawl {replay.get('replayed_crawl')})"
    lines = [f"nothing fetched, nothing written: answered from {source}"]
    differ = [a for a in replay.get("list", []) if a.get("same") is False]
    if differ:
        lines.append(f"{_plural(len(differ), 'text')} differ from the archived version:")
        for entry in differ[:SHOWN_DIFFERENT]:
            change = entry.get("change") or f"{entry.get('text_length')} bytes now"
            lines.append(f"  {entry['url']}: {change}")
        if len(differ) > SHOWN_DIFFERENT:
            lines.append(f"  … and {len(differ) - SHOWN_DIFFERENT} more in the replay report")
    if arts.get("unarchived"):
        lines.append(
            f"{_plural(int(arts['unarchived']), 'article')} with no archived text to compare"
        )
    missed = replay.get("missed") or {}
    # Requests of the spider's own are among the failures below; robots.txt and the like not.
    if missed.get("total"):
        causes = ", ".join(f"{k}: {v}" for k, v in sorted(missed.get("by_cause", {}).items()))
        lines.append(
            f"{_plural(int(missed['total']), 'request')} not answered from the archive ({causes})"
        )
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def explain(report: Mapping[str, Any], *, window_days: int | None, since_given: bool) -> list[str]:
    """What the summary's numbers mean and what to do about them, a sentence a line."""
    arts = report["articles"]
    skipped = report.get("skipped", {})
    lines = []
    already = int(skipped.get("already-archived", 0))
    outside = int(skipped.get("outside-window", 0))
    over = int(skipped.get("max-articles", 0))
    gone = int(skipped.get("gone", 0))
    kinds = ("new", "revised", "unchanged", "replayed", "failed")
    parts = [f"{arts[k]} {k}" for k in kinds if arts.get(k)]
    if already:
        parts.append(f"{already} already archived")
    if outside:
        if window_days and not since_given:
            parts.append(
                f"{outside} older than the {window_days}-day window "
                "(use -a since=YYYY-MM-DD to reach further)"
            )
        else:
            parts.append(f"{outside} outside since/until")
    if over:
        parts.append(f"{over} over max_articles")
    if gone:
        parts.append(
            f"{gone} gone (404 or 410 last time; asked again after ARCHIVE_GONE_RECHECK_DAYS)"
        )
    discovered = int(arts.get("discovered", 0))
    failures = report.get("failures")
    by_cause = failures.get("by_cause", {}) if isinstance(failures, Mapping) else {}
    if not_article := int(by_cause.get("not-article", 0)):
        parts.append(f"{not_article} no article page (a video, a gallery)")
    named = sum(int(arts.get(k) or 0) for k in kinds)
    rest = discovered - named - already - outside - over - not_article - gone
    if rest > 0:
        # The numbers add up: what else became of the rest, by the crawl's skip counts.
        known = {"already-archived", "outside-window", "max-articles", "not-article", "gone"}
        why = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items()) if k not in known)
        parts.append(f"{rest} not fetched or not archived" + (f" ({why})" if why else ""))
    if parts or discovered:
        lines.append(f"{discovered} discovered: " + (", ".join(parts) or "none requested"))
    if arts.get("unchanged"):
        lines.append(
            f"{_plural(int(arts['unchanged']), 'revision check')} found the text unchanged"
        )
    if isinstance(failures, Mapping) and failures.get("total"):
        causes = ", ".join(
            f"{cause}: {count}" for cause, count in sorted(failures.get("by_cause", {}).items())
        )
        lines.append(f"{_plural(int(failures['total']), 'failure')} ({causes}):")
        urls = list(failures.get("urls", []))
        for entry in urls[:SHOWN_FAILURES]:
            status = f" {entry['status']}" if entry.get("status") else ""
            tries = int(entry.get("attempts") or 1)
            lines.append(
                f"  {entry.get('stage', '?')}{status} {entry.get('cause', '?')}: {entry['url']}"
                + (f" ({tries} attempts)" if tries > 1 else "")
                + (" (gone last time too: not held against the site)" if entry.get("gone") else "")
            )
        more = int(failures["total"]) - min(len(urls), SHOWN_FAILURES)
        if more > 0:
            lines.append(f"  … and {more} more in the crawl report")
    pending = int(report.get("upload", {}).get("pending") or 0)
    if pending:
        lines.append(
            f"{_plural(pending, 'object')} wait for the store in "
            f"{report['upload'].get('spool')}: `newsarchive upload` sends them "
            "(so does the next crawl)"
        )
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    return lines


@dataclass
class _Running:
    site: str
    crawl_id: str
    started: float
    progress_file: Any = None
    last_plain: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


class Terminal:
    def __init__(
        self,
        mode: str = "normal",
        *,
        out: TextIO | None = None,
        tty: bool | None = None,
        every: float = 60.0,
        window_days: int | None = 30,
        since_given: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.every = every
        self.window_days = window_days
        self.since_given = since_given
        self._running: dict[str, _Running] = {}
        self._live = False  # a live line is on the screen
        self._results: list[tuple[str, bool, Mapping[str, Any] | None]] = []
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------ lines

    def _print(self, text: str) -> None:
        self._clear_live()
        print(text, file=self.out, flush=True)

    def _clear_live(self) -> None:
        if self._live:
            self.out.write("\r\x1b[K")
            self._live = False

    # ------------------------------------------------------------------ events

    def started(self, site: str, crawl_id: str, progress_file: Any = None) -> None:
        now = time.monotonic()
        self._running[site] = _Running(site, crawl_id, now, progress_file, last_plain=now)
        if self.mode != "quiet":
            self._print(f"crawling {site} (crawl {crawl_id}) ...")

    def tick(self) -> None:
        """Read each running crawl's figures; redraw the live line or print the plain one."""
        if self.mode == "quiet" or not self._running:
            return
        now = time.monotonic()
        for run in self._running.values():
            run.figures = _read_progress(run.progress_file) or run.figures
        if self.tty and self.mode == "normal":
            text = "  ".join(self._progress(run, now) for run in self._running.values())
            self.out.write("\r\x1b[K" + text[: _width() - 1])
            self.out.flush()
            self._live = True
            return
        if self.every <= 0:
            return
        for run in self._running.values():
            if now - run.last_plain >= self.every:
                run.last_plain = now
                self._print(f"  {self._progress(run, now)}")

    @staticmethod
    def _progress(run: _Running, now: float) -> str:
        f = run.figures
        elapsed = now - run.started
        pages = int(f.get("pages", 0))
        rate = pages / elapsed if elapsed > 0 else 0.0
        minutes, seconds = divmod(int(elapsed), 60)
        if "same" in f and (f.get("same") or f.get("differ")):  # a replay of the archive
            return (
                f"{run.site}: {pages} pages ({rate:.1f}/s), {f.get('same', 0)} same, "
                f"{f.get('differ', 0)} differ, {f.get('failed', 0)} failed, "
                f"{minutes}:{seconds:02d}"
            )
        return (
            f"{run.site}: {pages} pages ({rate:.1f}/s), {f.get('new', 0)} new, "
            f"{f.get('revised', 0)} revised, {f.get('failed', 0)} failed, "
            f"{minutes}:{seconds:02d}"
        )

    def finished(
        self,
        site: str,
        ok: bool,
        report: Mapping[str, Any] | None,
        seconds: float,
        why: str | None,
        log_file: str | None = None,
    ) -> None:
        run = self._running.pop(site, None)
        self._results.append((site, ok, report))
        if run is not None and not log_file:
            log_file = (_read_progress(run.progress_file) or run.figures).get("log_file")
        if self.mode == "quiet" and ok:
            return
        lines = [summary_line(site, ok, report, seconds, why)]
        if report is not None:
            said = explain(report, window_days=self.window_days, since_given=self.since_given)
            if isinstance(report.get("replay"), Mapping):
                said = explain_replay(report) + said
            lines += ["           " + line for line in said]
        log = (report or {}).get("log_file") or log_file
        if log and not ok:
            lines.append(f"           log: {log}")
        if replay_report := (report or {}).get("report_file"):
            lines.append(f"           replay report: {replay_report}")
        self._print("\n".join(lines))

    def busy(self, site: str, why: str) -> None:
        """The site's lease is held by another crawl: not crawled here (exit 3)."""
        self._running.pop(site, None)
        self._print(f"{site:10} busy    {why}")

    def not_started(self, site: str, why: str) -> None:
        self._results.append((site, False, None))
        self._print(f"{site:10} FAILED  not started: {why}")

    def total(self) -> None:
        """One closing line over every site (more than one site, not quiet or all ok)."""
        self._clear_live()
        failed = [site for site, ok, _ in self._results if not ok]
        if len(self._results) < 2 or (self.mode == "quiet" and not failed):
            return
        replays = [r["replay"] for _, _, r in self._results if r and "replay" in r]
        if replays:
            differ = sum(int(r["articles"]["differ"]) for r in replays)
            replayed = sum(int(r["articles"]["extracted"]) for r in replays)
            self._print(
                f"{len(self._results)} sites replayed: {len(self._results) - len(failed)} ok"
                + (f", {len(failed)} failed ({', '.join(failed)})" if failed else "")
                + f"; {replayed} articles, {differ} texts differ from the archived ones "
                f"in {time.monotonic() - self._t0:.1f}s"
            )
            return
        new = sum(int((r or {}).get("articles", {}).get("new", 0)) for _, _, r in self._results)
        pending = sum(
            int((r or {}).get("upload", {}).get("pending") or 0) for _, _, r in self._results
        )
        line = (
            f"{len(self._results)} sites: {len(self._results) - len(failed)} ok"
            + (f", {len(failed)} failed ({', '.join(failed)})" if failed else "")
            + f"; {new} new articles in {time.monotonic() - self._t0:.1f}s"
        )
        if pending:
            line += f"; {pending} objects wait for the store (`newsarchive upload`)"
        self._print(line)


def _read_progress(path: Any) -> dict[str, Any] | None:
    import json

    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 20)).columns


def window_of(settings: Any, spider_args: Mapping[str, str]) -> tuple[int | None, bool]:
    """(discovery window in days, whether since= was given) for the summary's explanation."""
    try:
        days = int(settings.get("ARCHIVE_DISCOVERY_WINDOW_DAYS", 30))
    except (TypeError, ValueError):
        days = None
    return days, bool(spider_args.get("since"))


def mode_of(quiet: bool, verbose: bool) -> str:
    return "quiet" if quiet else "verbose" if verbose else "normal"
