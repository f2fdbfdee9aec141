"""IRNA's cookie challenge: the mirror's ArvanCloud-style page, its recognition, solving again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scrapy.http import HtmlResponse
from warcio.archiveiterator import ArchiveIterator

from crawler.fetch.challenge import is_challenge
from crawler.mirror.challenge import COOKIE_ANSWER, COOKIE_TOKEN, ArvanChallenge, fnv1a32
from crawler.mirror.messages import RouteError
from crawler.mirror.routes import SITES_DIR, load_site
from crawler.mirror.server import MirrorRequest, MirrorServer
from tests.conftest import CHROMIUM, expected_text, mirror_file, require_program
from tests.crawl_helper import CrawlResult, mirror_settings, run_crawl

H = "https://en.irna.ir"
SAMPLE_001 = "001_89df22862bce6eb6.txt"
ARTICLES = {"85859288", "85859410", "85859533", "85859601"}


def request(cookie: str | None = None) -> MirrorRequest:
    headers = (("Cookie", cookie),) if cookie else ()
    return MirrorRequest("GET", f"{H}/rss", "/rss", "HTTP/1.1", headers)


def challenge_page(challenge: ArvanChallenge) -> bytes:
    page = challenge.gate(request())
    assert page is not None
    return page.body


def token_of(body: bytes) -> str:
    text = body.decode()
    start = text.index("'value': eval(\"'") + len("'value': eval(\"'")
    first, _, rest = text[start:].partition("'+'")
    return first + rest[: rest.index("'")]


def test_fnv1a32_is_the_scripts_hash() -> None:
    assert fnv1a32("") == "811c9dc5"
    assert fnv1a32("a") == "e40c292c"
    assert fnv1a32("foobar") == "bf9cf968"


def test_the_mirror_lets_through_only_the_cookies_the_script_computes() -> None:
    challenge = ArvanChallenge()
    body = challenge_page(challenge)
    assert len(body) < 5000 and b"arvancloud" in body.lower()
    token = token_of(body)
    good = f"{COOKIE_ANSWER}={challenge.answer(token)}; {COOKIE_TOKEN}={token}"
    assert challenge.gate(request(good)) is None
    assert challenge.gate(request(f"{COOKIE_ANSWER}=00000000; {COOKIE_TOKEN}={token}")) is not None
    assert challenge.gate(request(f"{COOKIE_ANSWER}={challenge.answer('x')}; {COOKIE_TOKEN}=x"))


def test_the_cookies_expire_after_max_uses() -> None:
    challenge = ArvanChallenge(max_uses=2)
    token = token_of(challenge_page(challenge))
    cookie = f"{COOKIE_ANSWER}={challenge.answer(token)}; {COOKIE_TOKEN}={token}"
    assert challenge.gate(request(cookie)) is None
    assert challenge.gate(request(cookie)) is None
    assert challenge.gate(request(cookie)) is not None  # a third use: challenged again
    assert challenge.issued == 2


def test_a_bad_challenge_setting_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "routes.json").write_text(json.dumps({"challenge": {"ttl": 0}, "routes": []}))
    with pytest.raises(RouteError, match=r"routes\.json: challenge 'ttl'"):
        load_site(tmp_path)


def test_the_middleware_recognises_the_challenge_and_nothing_else() -> None:
    page = challenge_page(ArvanChallenge())
    url = f"{H}/news/85859288"
    assert is_challenge(HtmlResponse(url, body=page))
    assert not is_challenge(HtmlResponse(url, body=page, flags=["rendered"]))
    article = mirror_file("irna", "news-85859288.html")
    assert not is_challenge(HtmlResponse(url, body=article))
    # A long page that names ArvanCloud (an article about it) is no challenge.
    assert not is_challenge(HtmlResponse(url, body=page + b"<p>" + b"x" * 5000 + b"</p>"))


def test_a_challenge_met_by_the_browser_is_recognised_on_the_wire_bytes() -> None:
    """What the egress proxy hands over is the body as sent: gzip, brotli, or none."""
    import gzip
    from datetime import UTC, datetime

    import brotli

    from crawler.capture.exchange import Exchange
    from crawler.fetch.challenge import exchange_is_challenge

    page = challenge_page(ArvanChallenge())
    article = mirror_file("irna", "news-85859288.html")

    def wire(body: bytes, coding: str | None, status: int = 200) -> Exchange:
        headers = [(b"Content-Type", b"text/html")]
        if coding:
            headers.append((b"Content-Encoding", coding.encode()))
        return Exchange(
            url=f"{H}/news/85859288",
            method="GET",
            request_headers=[],
            request_body=b"",
            status=status,
            protocol="HTTP/1.1",
            reason="OK",
            response_headers=headers,
            body=body,
            date=datetime.now(UTC),
        )

    assert exchange_is_challenge(wire(page, None))
    assert exchange_is_challenge(wire(gzip.compress(page), "gzip"))
    assert exchange_is_challenge(wire(brotli.compress(page), "br"))
    assert not exchange_is_challenge(wire(gzip.compress(article), "gzip"))
    assert not exchange_is_challenge(wire(page, None, status=403))
    assert not exchange_is_challenge(wire(b"\x1f\x8b not gzip", "gzip"))
    # A huge body naming ArvanCloud is read no further than a challenge page can be long.
    bomb = gzip.compress(page + b"<p>" + b"x" * 50_000_000 + b"</p>")
    assert not exchange_is_challenge(wire(bomb, "gzip"))


# ------------------------------------------------------------------ a crawl with expiring cookies


@dataclass(frozen=True)
class Crawl:
    result: CrawlResult
    store: Path
    issued: int
    requests: list[MirrorRequest]

    def sidecars(self) -> dict[str, dict[str, Any]]:
        out = {}
        for path in (self.store / "text" / "irna").rglob("*.json"):
            data = json.loads(path.read_text())
            out[data["article_id"]] = data
        return out


@pytest.fixture(scope="module")
def expiring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crawl]:
    require_program(CHROMIUM, "Chromium", "apt-get install chromium")
    work: Path = tmp_path_factory.mktemp("challenge")
    with MirrorServer([SITES_DIR / "irna"]) as mirror:
        # Cookies good for 5 requests: the crawl meets the challenge again and again.
        challenge = ArvanChallenge(max_uses=5)
        mirror.add_challenge(["en.irna.ir"], challenge)
        result = run_crawl(
            "spiders.irna:IrnaSpider",
            work / "result.json",
            settings={
                "ARCHIVE_STORE_URI": str(work / "store"),
                "ARCHIVE_CHALLENGE_MAX_SOLVES": "4",
                **mirror_settings(mirror),
            },
            timeout=120,
        )
        yield Crawl(result, work / "store", challenge.issued, mirror.requests)


def test_expired_cookies_are_solved_again_and_sample_001_is_exact(expiring: Crawl) -> None:
    result = expiring.result
    assert result.exit_code == 0, result.stderr[-3000:]
    solved = result.stats["archive/challenge/solved"]
    assert solved >= 2
    # A challenge met while another request's solve was under way costs no solve of its own.
    assert solved <= result.stats["archive/challenge/seen"] == expiring.issued
    assert set(expiring.sidecars()) == ARTICLES
    sample = expiring.sidecars()["85859288"]
    assert (expiring.store / "text").joinpath(*sample["text_key"].split("/")[1:]).read_bytes() == (
        expected_text(SAMPLE_001)
    )
    assert result.report["articles"]["failed"] == 0


def test_challenge_pages_are_archived_but_never_articles(expiring: Crawl) -> None:
    challenges = 0
    for path in (expiring.store / "warc").rglob("*.warc.gz"):
        with path.open("rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type == "response" and b"arvancloud" in rec.content_stream().read():
                    challenges += 1
    assert challenges == expiring.issued
    for car in expiring.sidecars().values():
        text = (expiring.store / "text").joinpath(*car["text_key"].split("/")[1:]).read_text()
        assert "ArvanCloud" not in text and "Checking your browser" not in text


def test_a_challenge_is_indexed_and_catalogued_as_one_never_as_the_page_it_hid(
    expiring: Crawl,
) -> None:
    import duckdb

    from crawler.access.serve import CdxIndex
    from crawler.catalog.db import Catalog
    from crawler.layout import default_catalog_url

    store = expiring.store
    marked: dict[str, str] = {}  # record id -> URL it answered for
    for path in (store / "warc").rglob("*.warc.gz"):
        with path.open("rb") as fh:
            for rec in ArchiveIterator(fh):
                marker = rec.rec_headers.get_header("WARC-Challenge")
                if marker is not None and rec.rec_type == "response":
                    assert marker == "arvancloud-cookie"
                    # Kept as received: the challenge's own page, status 200.
                    assert rec.http_headers.get_statuscode() == "200"
                    assert b"arvancloud" in rec.content_stream().read()
                    rid = rec.rec_headers.get_header("WARC-Record-ID")
                    marked[rid] = rec.rec_headers.get_header("WARC-Target-URI")
    assert len(marked) == expiring.issued
    assert f"{H}/robots.txt" in marked.values()
    # CDXJ: under urn:challenge:<url>, saying so; nothing keyed by a page URL is a challenge.
    lines = [
        line for cdxj in (store / "index").rglob("*.cdxj") for line in cdxj.read_text().splitlines()
    ]
    apart = [line for line in lines if line.startswith("urn:challenge:")]
    assert len(apart) == len(marked)
    for line in apart:
        fields = json.loads(line.split(" ", 2)[2])
        assert fields["challenge"] == "arvancloud-cookie" and fields["url"] in marked.values()
        assert line.startswith("urn:challenge:" + fields["url"] + " ")
    assert not [line for line in lines if '"challenge"' in line and line not in apart]
    # The CDX API (serve) finds robots.txt's real answer only.
    found = list(CdxIndex(lines).query({"url": [f"{H}/robots.txt"]}))
    assert found and not [e for e in found if "challenge" in e]
    # The catalog and the Parquet index say "challenge" for exactly those records.
    catalog = Catalog(default_catalog_url(store, store / ".spool"))
    rows = list(catalog.captures(site="irna"))
    assert {r.record_id for r in rows if r.record_type == "challenge"} == set(marked)
    [parquet] = (store / "index" / "irna").glob("*.parquet")
    kinds = dict(duckdb.sql(f"select record_id, record_type from '{parquet}'").fetchall())
    assert {rid for rid, kind in kinds.items() if kind == "challenge"} == set(marked)
