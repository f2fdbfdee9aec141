"""Run ``newsarchive ARGS...`` in a Python where Scrapy, Twisted, Playwright and the spiders
cannot be imported: ``python tests/no_scrapy.py snapshots URL --store DIR``.

A ``sys.meta_path`` finder refuses those packages (and every submodule) with
``ModuleNotFoundError``. Every refused attempt is recorded: one line on stderr with the chain of
project frames that asked for it, and, if ``NO_SCRAPY_REPORT`` names a file, the module's name
on a line of that file. The file is created empty at start and each name is appended as it is
refused, so it is complete even when the process is stopped by a signal.

``python tests/no_scrapy.py --selftest`` checks the hook itself: exit 3 when every blocked
package is installed yet refused, anything else when it is not.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
BLOCKED = ("scrapy", "twisted", "scrapy_playwright", "playwright", "spiders")
SELFTEST_EXIT = 3
# What --selftest imports: each package and a submodule of some.
SELFTEST_IMPORTS = (
    "scrapy",
    "scrapy.spiderloader",
    "twisted.internet.threads",
    "scrapy_playwright",
    "playwright.sync_api",
    "spiders",
    "spiders.tdi",
)


def blocked(fullname: str) -> bool:
    """Whether ``fullname`` is one of the refused packages or inside one."""
    return fullname.partition(".")[0] in BLOCKED


def import_chain() -> str:
    """The project frames that led to the import being refused, innermost first."""
    frames = []
    for frame in reversed(traceback.extract_stack()):
        path = Path(frame.filename)
        if frame.filename.startswith("<") or path.resolve() == Path(__file__).resolve():
            continue
        try:
            where = path.resolve().relative_to(ROOT).as_posix()
        except ValueError:
            where = frame.filename
        frames.append(f"{where}:{frame.lineno} in {frame.name}: {frame.line}")
    return "\n    <- ".join(frames) or "(no caller frame)"


class RefuseImports(importlib.abc.MetaPathFinder):
    """Refuses :data:`BLOCKED` and records each attempt."""

    def __init__(self, report: Path | None) -> None:
        self.refused: list[str] = []
        self.report = report
        if report is not None:
            report.write_text("")

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not blocked(fullname):
            return None
        self.refused.append(fullname)
        if self.report is not None:
            with self.report.open("a") as fh:
                fh.write(fullname + "\n")
        print(
            f"no_scrapy: refused import of {fullname!r}\n    at {import_chain()}",
            file=sys.stderr,
            flush=True,
        )
        raise ModuleNotFoundError(f"No module named {fullname!r} (refused by no_scrapy)")


def install() -> RefuseImports:
    """Put the refusing finder first on ``sys.meta_path``; exit 4 if it would be too late."""
    already = sorted(name for name in sys.modules if blocked(name))
    if already:
        print(f"no_scrapy: already imported before the hook: {already}", file=sys.stderr)
        raise SystemExit(4)
    report = os.environ.get("NO_SCRAPY_REPORT")
    finder = RefuseImports(Path(report) if report else None)
    sys.meta_path.insert(0, finder)
    return finder


def selftest(finder: RefuseImports) -> int:
    """Exit 3 only if every blocked package is installed and yet each import is refused."""
    # Asked of the ordinary finders, without the hook: a package that is absent proves nothing.
    sys.meta_path.remove(finder)
    try:
        missing = [name for name in BLOCKED if importlib.util.find_spec(name) is None]
    finally:
        sys.meta_path.insert(0, finder)
    if missing:
        print(f"no_scrapy: not installed, so the selftest proves nothing: {missing}")
        return 5
    for name in SELFTEST_IMPORTS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if "refused by no_scrapy" not in str(exc):
                print(f"no_scrapy: {name}: not refused by the hook: {exc}")
                return 1
        else:
            print(f"no_scrapy: {name} was imported")
            return 1
    importlib.import_module("crawler.ops.cli")  # the rest of the project still imports
    return SELFTEST_EXIT


def main(argv: list[str]) -> int:
    # Run as a script, this file's folder (tests/) heads sys.path: the project root instead.
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path[0] = str(ROOT)
    finder = install()
    if argv == ["--selftest"]:
        return selftest(finder)
    from crawler.ops.cli import main as newsarchive

    return newsarchive(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
