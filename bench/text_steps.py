"""Per-page CPU of each step of the text path, in one thread, on the benchmark's pages.

    python -m bench.text_steps --pages 200 --modes rules page generic
    python -m bench.text_steps --plain-ms 2.4    # and each mode's steps as a multiple of plain

Each synthetic article (bench/synthetic.py) goes through what a crawl does with it outside the
catalog, each step timed by the thread's CPU clock (``time.thread_time``) and printed as ms per
page (median of ``--rounds``): Scrapy's ``response.text``, the spider's decoding record
(``page_decoding``) and page test, the extraction, the sidecar and its JSON, the conversion and
metadata WARC records, the story keys, and the text and sidecar written into a local store
(what ``CrawlLedger.queue_bytes`` does without a remote store). Figures only: nothing is
asserted. In a crawl each step costs more (another thread and the reactor share the cores):
``bench/profile_crawl.py`` shows a whole crawl, and ``bench.run`` its CPU by thread.

Then, for reference, the parsers alone on the same pages: lxml's parse (which site rules and
page mode's metadata read), resiliparse's main-content text (page mode's body, the samples'
style) and lexbor's parse (the generic extractor's). With ``--plain-ms`` (plain Scrapy's crawl
CPU a page, from ``bench.run``) each mode's steps and each parser are also given as multiples of
plain Scrapy's page: how much of a ratio target they use up before the catalog or anything
else.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from scrapy.http import HtmlResponse

from bench.synthetic import article_page, article_url
from crawler.access.stories import story_keys
from crawler.capture.exchange import CaptureInfo, article_records
from crawler.capture.records import RecordBuilder, sha1_digest
from crawler.crawl.items import ArticlePage
from crawler.crawl.pipeline import ArticlePipeline
from crawler.crawl.sidecar import text_sidecar
from crawler.crawl.spider import body_classes, page_decoding
from crawler.store.base import LocalStore
from crawler.text.extract import extract_article
from crawler.util import json_bytes
from spiders.tdi import RULES

BASE = "http://127.0.0.1:8000"
T = TypeVar("T")


class Steps:
    """CPU seconds per named step, summed over the pages of one round."""

    def __init__(self, timed: bool = True) -> None:
        self.timed = timed
        self.sums: dict[str, float] = defaultdict(float)

    def __call__(self, name: str, step: Callable[[], T]) -> T:
        if not self.timed:
            return step()
        start = time.thread_time()
        out = step()
        self.sums[name] += time.thread_time() - start
        return out


def one_page(n: int, mode: str, t: Steps, store: LocalStore) -> None:
    body = article_page(n)
    url = BASE + article_url(n)
    response = HtmlResponse(url, body=body, headers={"Content-Type": "text/html; charset=utf-8"})
    t("response.text", lambda: response.text)
    html, decoding = t("page_decoding", lambda: page_decoding(response))
    t("body_classes", lambda: body_classes(response))
    rules = None if mode == "generic" else RULES
    text_mode = "page" if mode == "page" else "article"
    article = t("extract_article", lambda: extract_article(html, url, rules, mode=text_mode))
    text = t("text.encode", lambda: article.text.encode("utf-8"))
    item = ArticlePage(url, "bench", f"a{n}", html, decoding.name, 200, url, [], None, decoding)
    sidecar = t(
        "text_sidecar",
        lambda: text_sidecar(
            article,
            text,
            url=url,
            request_url=url,
            site="bench",
            article_id=item.article_id,
            status=200,
            encoding=decoding.name,
            discovery=[],
            crawl_id="bench",
            crawl_time="2026-01-01T00:00:00+00:00",
            text_mode=text_mode,
            rules=rules,
            decoding=decoding,
        ),
    )
    sidecar_bytes = t("json_bytes(sidecar)", lambda: json_bytes(sidecar))
    capture = CaptureInfo(
        "<urn:uuid:00000000-0000-4000-8000-000000000000>",
        url,
        "2026-01-01T00:00:00Z",
        sha1_digest(body),
        None,  # type: ignore[arg-type]
    )
    fields = ArticlePipeline.metadata_fields(item)
    t("article_records", lambda: article_records(RecordBuilder(), capture, text, fields))
    t("story_keys", lambda: story_keys(text.decode("utf-8", "replace")))
    key = f"texts/bench/{n:06d}/{time.monotonic_ns()}.txt"
    t(
        "store .txt + .json",
        lambda: (store.put_bytes(key, text), store.put_bytes(key + ".json", sidecar_bytes)),
    )


def reference(pages: int, rounds: int) -> dict[str, float]:
    """What the parsers alone take on the same pages (ms a page, least of the rounds): the
    part of a step no change to this project's code removes."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree
    from selectolax.lexbor import LexborHTMLParser

    from crawler.text.extract import _parse

    htmls = [article_page(n).decode("utf-8") for n in range(pages)]
    parts: dict[str, Callable[[str], object]] = {
        "lxml parse (site rules, page mode's metadata)": _parse,
        "resiliparse main-content text (page mode)": lambda h: extract_plain_text(
            HTMLTree.parse(h), main_content=True
        ),
        "lexbor parse (the generic extractor)": LexborHTMLParser,
    }
    best = {}
    for name, part in parts.items():
        part(htmls[0])
        times = []
        for _ in range(rounds):
            start = time.thread_time()
            for html in htmls:
                part(html)
            times.append(1000 * (time.thread_time() - start) / pages)
        best[name] = min(times)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["rules", "page", "generic"])
    parser.add_argument(
        "--plain-ms",
        type=float,
        help="plain Scrapy's crawl CPU ms a page (bench.run): also print the multiple of it "
        "that a crawl doing only these steps on top of plain Scrapy would cost",
    )
    ns = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="newsarchive-text-steps-"))
    try:
        store = LocalStore(work / "store")
        for mode in ns.modes:
            one_page(0, mode, Steps(timed=False), store)  # imports and caches first
            per_round: dict[str, list[float]] = defaultdict(list)
            for _ in range(ns.rounds):
                steps = Steps()
                for n in range(ns.pages):
                    one_page(n, mode, steps, store)
                for name, seconds in steps.sums.items():
                    per_round[name].append(1000 * seconds / ns.pages)
            medians = {name: statistics.median(v) for name, v in per_round.items()}
            print(f"\n{mode}: {ns.pages} pages, ms of CPU per page (median of {ns.rounds} rounds)")
            for name, ms in medians.items():
                print(f"  {name:24} {ms:7.3f}")
            total = sum(medians.values())
            print(f"  {'all':24} {total:7.3f}")
            if ns.plain_ms:
                print(
                    f"  plain Scrapy at {ns.plain_ms:.2f} ms a page plus these steps alone: "
                    f"{(ns.plain_ms + total) / ns.plain_ms:.2f}x plain"
                )
        print("\nfor reference, the parsers alone on the same pages (ms a page, least of rounds)")
        for name, ms in reference(ns.pages, ns.rounds).items():
            line = f"  {name:48} {ms:7.3f}"
            if ns.plain_ms:
                line += f"  ({ms / ns.plain_ms:.2f}x plain Scrapy's page)"
            print(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
