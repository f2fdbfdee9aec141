"""The capture's cost cuts keep what they must: Scrapy's fan-out tuned, not forced; the
start-up's objects frozen only while a crawl runs, never its garbage; one hash of a payload."""

from __future__ import annotations

import gc
import hashlib
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from scrapy.settings import Settings

from crawler.capture import records as records_module
from crawler.capture.exchange import Exchange, RevisitTarget, exchange_records
from crawler.capture.records import RecordBuilder, sha1_digest
from crawler.crawl.addon import CONCURRENT_ITEMS
from crawler.crawl.archive import ArchiveCrawl
from tests.crawl_helper import addon_settings


def test_the_addon_tunes_concurrent_items_and_a_project_value_wins() -> None:
    assert Settings().getint("CONCURRENT_ITEMS") == 100  # Scrapy's own default
    assert addon_settings().getint("CONCURRENT_ITEMS") == CONCURRENT_ITEMS < 100
    assert addon_settings(CONCURRENT_ITEMS=50).getint("CONCURRENT_ITEMS") == 50


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("thawed")
def test_startup_is_frozen_for_the_crawl_but_its_garbage_is_collected_first() -> None:
    kept = _Node()
    cycle_a, cycle_b = _Node(), _Node()
    cycle_a.other, cycle_b.other = cycle_b, cycle_a  # garbage only a full collection frees
    gone = weakref.ref(cycle_a)
    del cycle_a, cycle_b
    ArchiveCrawl.freeze_startup()
    assert gone() is None  # collected, not frozen for the whole crawl
    assert gc.get_freeze_count() > 0
    # What start-up made is out of the collector's generations: no collection walks it.
    assert not any(o is kept for o in gc.get_objects())
    late_a, late_b = _Node(), _Node()
    late_a.other, late_b.other = late_b, late_a  # made during the crawl: collected as usual
    late = weakref.ref(late_a)
    del late_a, late_b
    gc.collect()
    assert late() is None
    ArchiveCrawl.thaw_startup()
    assert gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects())


def test_a_response_payload_is_hashed_once_and_its_digests_are_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = b"<html><body>" + b"x" * 5000 + b"</body></html>"
    payloads_hashed = []
    real_sha1 = hashlib.sha1

    def counting_sha1(data: bytes = b"") -> Any:
        if data == body:
            payloads_hashed.append(1)
        return real_sha1(data)

    asked: list[str] = []

    def lookup(url: str, digest: str, key: str | None) -> RevisitTarget | None:
        asked.append(digest)
        return None

    monkeypatch.setattr(records_module.hashlib, "sha1", counting_sha1)
    exchange = Exchange(
        url="https://news.example.test/a/1",
        method="GET",
        request_headers=[(b"Accept", b"*/*")],
        request_body=b"",
        status=200,
        protocol="HTTP/1.1",
        reason="OK",
        response_headers=[(b"Content-Type", b"text/html")],
        body=body,
        date=datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
    )
    response, _request = exchange_records(RecordBuilder(), exchange, lookup)
    assert len(payloads_hashed) == 1  # the lookup's digest is the record's
    want = sha1_digest(body)
    assert asked == [want] and response.payload_digest == want
    _head, _, block = response.data.partition(b"\r\n\r\n")
    block = block.removesuffix(b"\r\n\r\n")
    assert response.block_digest == sha1_digest(block)
    assert block.endswith(body)


def test_the_bench_tunes_plain_scrapy_as_the_addon_does() -> None:
    # bench/run.py prints the project's ratios against this baseline too: it must be the same.
    from bench.crawl_once import TUNED

    assert TUNED == {"CONCURRENT_ITEMS": CONCURRENT_ITEMS}


def test_a_long_texts_signature_in_batches_is_the_one_of_a_single_batch() -> None:
    # similar.signature permutes 128 shingles at a time (cheaper temporaries): the stored
    # signatures must stay what datasketch's MinHash gives for one batch of every shingle.
    from crawler.text import similar
    from tests.conftest import datasketch_signature

    text = " ".join(f"word{n % 97} minister{n % 13} talks{n}" for n in range(400))
    grams = similar.shingles(similar.words(text))
    assert len(grams) > 5 * 128
    sig = similar.signature(text)
    assert sig.hashvalues == datasketch_signature(text)
    assert sig.size == len(grams)


def test_article_requests_share_one_callback_so_scrapy_parses_its_source_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import inspect

    from scrapy.utils.misc import warn_on_generator_with_return_value
    from scrapy.utils.test import get_crawler

    from bench.news_spider import BenchNewsSpider

    crawler = get_crawler(BenchNewsSpider, {"ARCHIVE_DISCOVERY_WINDOW_DAYS": 0})
    spider = BenchNewsSpider.from_crawler(crawler, listings="")
    parsed = []
    real = inspect.getsource
    monkeypatch.setattr(inspect, "getsource", lambda obj: parsed.append(obj) or real(obj))
    callbacks = set()
    for n in range(5):
        url = f"http://127.0.0.1/news/synthetic-article-{n:06d}.html"
        [request] = spider._article_request(url, {"via": "listing"})
        callbacks.add(id(request.callback))
        # As Scraper.call_spider_async does before each response's callback.
        warn_on_generator_with_return_value(spider, request.callback)
        del request  # its response done: the request goes, the spider stays
    assert len(callbacks) == 1
    assert len(parsed) <= 1  # 5 with a new bound method per request
