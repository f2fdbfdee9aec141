"""The catalog's cost per text, as a crawl pays it: story keys, recording the version (with its
text, full-text index rows and story keys) and linking it, on SQLite or PostgreSQL.

    python -m bench.record [--texts 400] [--rounds 3] [--url URL] [--batch 1 16]

The texts are the benchmark site's synthetic articles (bench/synthetic.py) as the site rules
extract them. Each round records them all into a fresh catalog (a new SQLite file, or the
tables of ``--url`` emptied first) the way the article pipeline does: ``--batch 1`` one text per
transaction (``Catalog.record_text``), ``--batch N`` through the crawl's group commit
(``crawler.crawl.catalog.TextRecorder``, N texts per transaction at most). Batch sizes are
interleaved round by round; CPU is this process's (user + sys, every thread: SQLite's too),
medians printed per text, with the load average beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.synthetic import article_page, article_url
from crawler.access.stories import link_recorded, story_keys
from crawler.catalog.db import Catalog, StoryKeys, TextFacts, TextRecord
from crawler.layout import text_key
from crawler.text.extract import extract_article
from spiders.tdi import RULES

SITE = "bench"


def texts(count: int) -> list[dict[str, Any]]:
    """The bench articles' texts, as the pipeline hands them to the catalog."""
    out = []
    for n in range(count):
        url = article_url(n)
        article = extract_article(article_page(n), url, RULES)
        body = article.text
        out.append(
            {
                "site": SITE if n % 4 else "other",  # two sites: linking has candidates
                "article_key": f"synthetic-article-{n:06d}",
                "url": url,
                "capture_time": "2026-12-07T10:00:00Z",
                "text_digest": "sha256:" + hashlib.sha256(body.encode()).hexdigest(),
                "text_key": text_key(SITE, f"synthetic-article-{n:06d}", "2026-12-07"),
                "title": article.title,
                "published": None,
                "body": body,
                "facts": TextFacts(language="en", crawl_id="bench"),
            }
        )
    return out


def fresh(url: str | None, work: Path, rnd: int, batch: int) -> Catalog:
    if url is None:
        return Catalog(f"sqlite:///{work}/catalog-{rnd}-{batch}.sqlite")
    catalog = Catalog(url)
    with catalog.engine.begin() as conn:
        for table in ("text_links", "text_bands", "text_names", "texts", "articles"):
            conn.execute(text(f"DELETE FROM {table}"))
    return catalog


def record_one_by_one(catalog: Catalog, items: list[dict[str, Any]]) -> dict[str, float]:
    spent = {"keys": 0.0, "record": 0.0, "link": 0.0}
    for item in items:
        t0 = time.process_time()
        keys = story_keys(item["body"])
        t1 = time.process_time()
        _version, new = catalog.record_text(TextRecord(**item, story_keys=keys))
        t2 = time.process_time()
        if new:
            link_recorded(catalog, item["text_key"], keys)
        t3 = time.process_time()
        spent["keys"] += t1 - t0
        spent["record"] += t2 - t1
        spent["link"] += t3 - t2
    return spent


def record_grouped(catalog: Catalog, items: list[dict[str, Any]], batch: int) -> dict[str, float]:
    from crawler.crawl.catalog import TextRecorder

    spent = {"keys": 0.0, "record": 0.0, "link": 0.0}

    def link(key: str, keys: StoryKeys) -> None:
        link_recorded(catalog, key, keys)

    recorder = TextRecorder(catalog, batch=batch, seconds=0.05, link=link)
    t0 = time.process_time()
    futures = []
    keys_cpu = 0.0
    for item in items:
        k0 = time.thread_time()  # this thread's alone: the recorder's runs beside it
        keys = story_keys(item["body"])
        keys_cpu += time.thread_time() - k0
        futures.append(recorder.submit(TextRecord(**item, story_keys=keys)))
    recorder.close()
    for future in futures:
        future.result()
    spent["keys"] = keys_cpu
    spent["record"] = time.process_time() - t0 - keys_cpu  # recording and linking, in all
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="a catalog URL whose tables are emptied (default SQLite)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    ns = parser.parse_args(argv)
    items = texts(ns.texts)
    figures: dict[int, list[dict[str, float]]] = {b: [] for b in ns.batch}
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        work = Path(tmp)
        for rnd in range(ns.rounds):
            order = ns.batch if rnd % 2 == 0 else ns.batch[::-1]
            for batch in order:
                catalog = fresh(ns.url, work, rnd, batch)
                load = os.getloadavg()[0]
                c0, w0 = time.process_time(), time.perf_counter()
                if batch == 1:
                    spent = record_one_by_one(catalog, items)
                else:
                    spent = record_grouped(catalog, items, batch)
                spent["all"] = time.process_time() - c0
                spent["wall"] = time.perf_counter() - w0
                spent["load"] = load
                catalog.close()
                figures[batch].append(spent)
                per = {k: 1000 * v / len(items) for k, v in spent.items() if k != "load"}
                print(
                    f"  round {rnd + 1} batch {batch:3}: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in per.items())
                    + f" ms/text, load {load:.1f}",
                    file=sys.stderr,
                )
    where = "SQLite" if ns.url is None else ns.url.split(":", 1)[0]
    print(f"{len(items)} texts, {where}, medians of {ns.rounds} rounds (CPU ms per text):")
    for batch, runs in figures.items():
        med = {k: 1000 * statistics.median(r[k] for r in runs) / len(items) for k in runs[0]}
        loads = [r["load"] for r in runs]
        print(
            f"  batch {batch:3}: keys {med['keys']:.3f}, record {med['record']:.3f}"
            + (f", link {med['link']:.3f}" if batch == 1 else " (with link)")
            + f", all {med['all']:.3f}, wall {med['wall']:.3f}"
            + f"  (load {min(loads):.1f}-{max(loads):.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
