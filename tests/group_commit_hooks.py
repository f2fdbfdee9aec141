"""A crawl killed while new texts wait for their group commit (crawler.crawl.catalog).

``GROUP_COMMIT_KILL_AT=N`` in a crawl's environment makes the catalog commit its new texts N at
a time, and SIGKILLs the crawl just before the first batch of N goes in: their texts and
sidecars are written (held in the spool), the catalog has none of them. The keys of that batch
are written first, one per line, to ``GROUP_COMMIT_KILL_NOTE``. Start the crawl with the spider
``tests.group_commit_hooks:SlowSiteSpider``: the crawl helper imports this module in the crawl's
process, which installs the hook before the crawl starts.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from crawler.crawl import catalog as archive_catalog
from tests.crawl_helper import SlowSiteSpider

__all__ = ["SlowSiteSpider"]

ENV = "GROUP_COMMIT_KILL_AT"
NOTE = "GROUP_COMMIT_KILL_NOTE"


def install(size: int, note: Path) -> None:
    archive_catalog.GROUP_TEXTS = size
    archive_catalog.GROUP_SECONDS = 30.0  # a batch goes in when it is full, not before
    commit = archive_catalog.TextRecorder._commit

    def hooked(self: archive_catalog.TextRecorder, batch: list[Any]) -> None:
        if len(batch) >= size:
            note.write_text("".join(f"{record.text_key}\n" for record, _future in batch))
            os.kill(os.getpid(), signal.SIGKILL)
        commit(self, batch)

    archive_catalog.TextRecorder._commit = hooked  # type: ignore[method-assign]


if os.environ.get(ENV):
    install(int(os.environ[ENV]), Path(os.environ[NOTE]))
