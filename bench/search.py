"""Full-text search at scale: 100,000 synthetic texts in the embedded default (a SQLite catalog
with its FTS5 index).

Prints search latency (p50, p99, max) over a mix of queries (a rare word, a common one, a
phrase, an exclusion, OR, filtered by site and by publication month) and the cost of keeping
the index up to date: the time ``record_text`` takes per new text with its words indexed,
beside the same call without them (the catalog as it was before the index).

    python -m bench.search [--texts 100000] [--rounds 30] [--recorded 2000]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from crawler.access.stories import link_text
from crawler.catalog.db import Catalog, TextFacts, TextRecord, TextRow, texts
from crawler.catalog.search import SearchQuery, search
from crawler.layout import sqlite_url

SITES = ("almasirah", "irna", "president", "presstv", "tdi")
START = datetime(2023, 1, 1, tzinfo=UTC)
# Function words in every text; topical words drawn from a 30,000-word vocabulary by Zipf's
# law (news vocabulary is so): w10 is in nearly every text, w100 in about one in five, w1000
# in one in fifty, w10000 in one in five hundred.
STOPWORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "said",
    "on",
    "for",
    "that",
    "with",
    "was",
    "is",
    "by",
    "as",
    "at",
    "from",
    "his",
    "it",
    "an",
]
VOCABULARY = [f"w{r}" for r in range(1, 30001)]
ZIPF = list(itertools.accumulate(1 / r for r in range(1, 30001)))
QUERIES = (
    ("rare word", SearchQuery("w10000")),
    ("mid word", SearchQuery("w1000")),
    ("common word", SearchQuery("w100")),
    ("frequent word", SearchQuery("w10")),
    ("two words", SearchQuery("w100 w1000")),
    ("phrase", SearchQuery('"foreign minister"')),
    ("exclusion", SearchQuery("w1000 -w100")),
    ("or", SearchQuery("w5000 OR w5001")),
    ("site filter", SearchQuery("w1000", sites=("irna",))),
    ("month", SearchQuery("w100", published_from="2024-06-01", published_until="2024-07-01")),
    ("all versions", SearchQuery("w1000", all_versions=True)),
)


def synthetic_body(rng: random.Random, n: int) -> str:
    """About 400 words: function words, topical ones by Zipf's law, a phrase now and then."""
    words = rng.choices(STOPWORDS, k=180) + rng.choices(VOCABULARY, cum_weights=ZIPF, k=220)
    rng.shuffle(words)
    if n % 7 == 0:
        words[rng.randrange(len(words))] = "foreign minister"
    paragraphs = [" ".join(words[i : i + 80]) + "." for i in range(0, len(words), 80)]
    return f"Synthetic article {n}\n\n" + "\n\n".join(paragraphs) + "\n"


def row(rng: random.Random, n: int, version: int = 1) -> TextRow:
    site = SITES[n % len(SITES)]
    published = START + timedelta(hours=(n * 7919) % (3 * 365 * 24))
    return TextRow.of(
        site,
        str(n),
        version,
        f"https://{site}.bench.test/news/{n}",
        f"text/{site}/{n}.v{version}.txt",
        f"sha256:{n:064x}",
        (published + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        f"Synthetic article {n}",
        synthetic_body(rng, n),
        published.isoformat(),
        TextFacts(language="en", crawl_id="bench"),
    )


def fill(catalog: Catalog, count: int) -> float:
    """``count`` texts through the index's own triggers, in batched transactions; seconds."""
    rng = random.Random(20)
    started = time.perf_counter()
    batch: list[dict[str, object]] = []
    with catalog.engine.begin() as conn:
        for n in range(count):
            r = row(rng, n)
            batch.append({f: getattr(r, f) for f in r.__dataclass_fields__})
            if len(batch) == 2000:
                conn.execute(insert(texts), batch)
                batch = []
        if batch:
            conn.execute(insert(texts), batch)
    return time.perf_counter() - started


def record_cost(directory: Path, count: int) -> tuple[float, float, float]:
    """Milliseconds per ``record_text`` of a new article: with its words indexed, without,
    and indexed then linked to other sites' stories (``link_text``, as the crawl does)."""
    rng = random.Random(5)
    rows = [row(rng, 10_000_000 + n) for n in range(count)]
    results = []
    for mode in ("indexed", "plain", "linked"):
        with_body = mode != "plain"
        catalog = Catalog(sqlite_url(directory / f"record-{mode}.sqlite"))
        started = time.perf_counter()
        for r in rows:
            catalog.record_text(
                TextRecord(
                    site=r.site,
                    article_key=r.article_key,
                    url=r.url,
                    capture_time=r.captured,
                    text_digest=r.text_digest,
                    text_key=r.text_key,
                    title=r.title,
                    published=r.published_text,
                    body=r.body if with_body else None,
                    facts=TextFacts(language=r.language, crawl_id=r.crawl_id),
                )
            )
            if mode == "linked":
                text_id = catalog.text_id(r.text_key)
                assert text_id is not None
                link_text(catalog, text_id)
        results.append((time.perf_counter() - started) * 1000 / count)
        catalog.close()
    return results[0], results[1], results[2]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30, help="times each query runs")
    parser.add_argument("--recorded", type=int, default=2000, help="texts for the write cost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        directory = Path(tmp)
        catalog = Catalog(sqlite_url(directory / "catalog.sqlite"))
        seconds = fill(catalog, args.texts)
        size = sum(p.stat().st_size for p in directory.glob("catalog.sqlite*")) / 2**20
        print(f"{args.texts:,} texts indexed in {seconds:.1f} s ({args.texts / seconds:,.0f}/s); ")
        print(f"catalog with texts and index: {size:,.0f} MiB")
        everything: list[float] = []
        print(f"{'query':14} {'hits':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name, query in QUERIES:
            times = []
            hits = 0
            for _ in range(args.rounds):
                started = time.perf_counter()
                hits = len(search(catalog, query))
                times.append((time.perf_counter() - started) * 1000)
            everything += times
            print(
                f"{name:14} {hits:5} {statistics.median(times):8.1f} "
                f"{percentile(times, 0.99):8.1f} {max(times):8.1f}"
            )
        print(
            f"{'all queries':14} {'':5} {statistics.median(everything):8.1f} "
            f"{percentile(everything, 0.99):8.1f} {max(everything):8.1f}   (goal: p50 <= 50 ms)"
        )
        catalog.close()
        indexed, plain, linked = record_cost(directory, args.recorded)
        print(
            f"record_text of a new article: {indexed:.2f} ms with its words indexed, "
            f"{plain:.2f} ms without: the index costs {indexed - plain:.2f} ms per text; "
            f"linking it to other sites' stories adds {linked - indexed:.2f} ms"
        )


if __name__ == "__main__":
    main()
