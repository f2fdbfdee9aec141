"""``newsarchive reextract`` with one site rule changed, in a process of its own (the tests').

    python -m tests.reextract_runner [ARGS…]           TDI's rules drop its subheadings
    REEXTRACT_RULES=spiders python -m tests.reextract_runner …   the spiders' rules as they are

The command takes the rules by argument (``crawler.ops.reextract.main``): nothing is patched
to change them. ``REEXTRACT_KILL_AT=PHASE:N`` SIGKILLs this process at the Nth time it reaches
PHASE, the project's kill pattern (``tests/kill_hooks.py``), to test that a killed run
resumes to the state of a clean one:

- ``records``: after the Nth record is decided (any outcome; its checkpoint row may wait);
- ``warc-written``: a new version's conversion record just written to the run's WARC file;
- ``text-stored``: its text and sidecar in the store, the catalog not told yet;
- ``recorded``: its version recorded in the catalog, its capture and checkpoint not yet.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from crawler.text.extract import SiteRules

KILL_ENV = "REEXTRACT_KILL_AT"
PHASES = ("records", "warc-written", "text-stored", "recorded")


def changed_tdi(rules: SiteRules) -> SiteRules:
    """TDI's rules dropping its subheadings (h2, h3): the body of the TDI articles that have
    any changes, nothing else does."""
    return dataclasses.replace(rules, drop=(*rules.drop, "h2", "h3"))


def changed_rules() -> dict[str, SiteRules]:
    """The spiders' rules, TDI's changed (``REEXTRACT_RULES=spiders``: as they are)."""
    from crawler.ops.reextract import spider_rules

    rules = spider_rules()
    if os.environ.get("REEXTRACT_RULES") != "spiders":
        rules["tdi"] = changed_tdi(rules["tdi"])
    return rules


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _counter(n: int) -> Callable[[], bool]:
    count = 0
    lock = threading.Lock()

    def due() -> bool:
        nonlocal count
        with lock:
            count += 1
            return count == n

    return due


def install(spec: str) -> None:
    phase, _, n = spec.partition(":")
    if phase not in PHASES or not n.isdigit():
        raise SystemExit(f"{KILL_ENV}: want PHASE:N with PHASE one of {', '.join(PHASES)}")
    due = _counter(int(n))
    from crawler.capture.writer import WarcFileWriter
    from crawler.catalog.db import Catalog
    from crawler.crawl.reextract import Reextractor

    if phase == "records":
        take = Reextractor._take

        def hooked_take(self: Reextractor, *args: Any, **kwargs: Any) -> None:
            take(self, *args, **kwargs)
            if due():
                _die()

        Reextractor._take = hooked_take  # type: ignore[method-assign]
    elif phase == "warc-written":
        write_sync = WarcFileWriter.write_sync

        def hooked_write(self: WarcFileWriter, records: Any) -> Any:
            found = write_sync(self, records)
            if due():
                _die()
            return found

        WarcFileWriter.write_sync = hooked_write  # type: ignore[method-assign]
    else:
        record_text = Catalog.record_text

        def hooked_record(self: Catalog, record: Any) -> tuple[int, bool]:
            new_text = record.body is not None
            if new_text and phase == "text-stored" and due():
                _die()
            found = record_text(self, record)
            if new_text and phase == "recorded" and due():
                _die()
            return found

        Catalog.record_text = hooked_record  # type: ignore[method-assign]


if __name__ == "__main__":
    # Only here: the pool's processes import this module as their main too.
    from crawler.ops.reextract import main

    if os.environ.get(KILL_ENV):
        install(os.environ[KILL_ENV])
    sys.exit(main(sys.argv[1:], changed_rules()))
