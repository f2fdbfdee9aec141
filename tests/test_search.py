"""Full-text search: the query language, the catalog's index on SQLite and PostgreSQL alike,
filters by site, publication and capture date and language, and `newsarchive search` on the
demo archive of the five mirrored sites."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from crawler.catalog.db import Catalog, TextFacts, TextRecord
from crawler.catalog.search import (
    MARK_END,
    MARK_START,
    SearchError,
    SearchQuery,
    parse_query,
    search,
)
from crawler.ops.cli import main

MEZHER = {
    ("irna", "85859288"),
    ("president", "158877"),
    ("almasirah", "53210"),
}


def record(
    catalog: Catalog,
    site: str,
    key: str,
    body: str,
    *,
    published: str | None = None,
    published_text: str | None = None,
    when: str = "2026-12-01T10:00:00Z",
    language: str | None = "en",
) -> tuple[int, bool]:
    digest = f"sha256:{abs(hash(body)):x}"
    return catalog.record_text(
        TextRecord(
            site=site,
            article_key=key,
            url=f"https://{site}.example/{key}",
            capture_time=when,
            text_digest=digest,
            text_key=f"text/{site}/{key}/{digest[7:19]}.txt",
            title=body.split("\n", 1)[0],
            published=published,
            body=body,
            facts=TextFacts(language=language, published_text=published_text, crawl_id="c1"),
        )
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    url = (
        f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        if request.param == "sqlite"
        else request.getfixturevalue("fresh_pg")
    )
    found = Catalog(url)
    record(
        found,
        "irna",
        "1",
        "Pezeshkian meets Mezher\n\nThe Iranian president met the Lebanese speaker in Tehran.\n",
        published="2025-06-11T10:00:00+03:30",
        published_text="2025-06-11T10:00:00+03:30",
    )
    record(
        found,
        "tdi",
        "2",
        "Polio day\n\nWorld Polio Day was marked in Kabul and Tehran.\n",
        published="2023-10-24T00:00:00+05:00",
        published_text="October 24, 2023",
        language="en-GB",
    )
    record(
        found,
        "presstv",
        "3",
        "Speaker visits Beirut\n\nThe speaker of the Lebanese parliament visited Tehran.\n",
        published=None,
        language="fr",
    )
    yield found
    found.close()


def keys(hits: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(h.site, h.article_key) for h in hits]


def test_query_language_and_its_errors() -> None:
    terms = parse_query('Mezher "Lebanese speaker" -polio a OR b')
    assert [(t.words, t.negated, t.or_next) for t in terms] == [
        (("Mezher",), False, False),
        (("Lebanese", "speaker"), False, False),
        (("polio",), True, False),
        (("a",), False, True),
        (("b",), False, False),
    ]
    # FTS5 or tsquery syntax in a word is only words: nothing the user types is run as syntax;
    # a token with punctuation inside ("al-Aqsa") is the phrase of its words.
    assert [t.words for t in parse_query("NEAR(x y) title:foo * al-Aqsa")] == [
        ("NEAR", "x"),
        ("y",),
        ("title", "foo"),
        ("al", "Aqsa"),
    ]
    for bad in ("-polio", "OR gaza", "gaza OR", "gaza OR -polio", "   ", '"" -x'):
        with pytest.raises(SearchError):
            parse_query(bad)


def test_words_phrases_exclusion_and_or(catalog: Catalog) -> None:
    assert keys(search(catalog, SearchQuery("mezher"))) == [("irna", "1")]
    assert set(keys(search(catalog, SearchQuery("Tehran")))) == {
        ("irna", "1"),
        ("tdi", "2"),
        ("presstv", "3"),
    }
    assert keys(search(catalog, SearchQuery('"Lebanese speaker"'))) == [("irna", "1")]
    assert keys(search(catalog, SearchQuery("Tehran -polio -Beirut"))) == [("irna", "1")]
    assert set(keys(search(catalog, SearchQuery("Kabul OR Beirut")))) == {
        ("tdi", "2"),
        ("presstv", "3"),
    }
    # A match in the headline ranks above one in the body only.
    assert keys(search(catalog, SearchQuery("speaker")))[0] == ("presstv", "3")
    [hit] = search(catalog, SearchQuery("Mezher"))
    assert f"{MARK_START}Mezher{MARK_END}" in hit.snippet
    assert hit.published_date == "2025-06-11" and hit.published_at == "2025-06-11T06:30:00Z"


def test_filters_by_site_dates_and_language(catalog: Catalog) -> None:
    assert keys(search(catalog, SearchQuery("Tehran", sites=("tdi", "presstv")))) != []
    assert {k[0] for k in keys(search(catalog, SearchQuery("Tehran", sites=("tdi",))))} == {"tdi"}
    june = SearchQuery("Tehran", published_from="2025-06-01", published_until="2025-07-01")
    assert keys(search(catalog, june)) == [("irna", "1")]
    # A date-only value stays its day, whatever the site's zone (no shift to 23 October UTC).
    day = SearchQuery("Tehran", published_from="2023-10-24", published_until="2023-10-25")
    assert keys(search(catalog, day)) == [("tdi", "2")]
    assert keys(search(catalog, SearchQuery("Tehran", language="en"))) != []
    assert {k[0] for k in keys(search(catalog, SearchQuery("Tehran", language="en")))} == {
        "irna",
        "tdi",
    }
    later = SearchQuery("Tehran", captured_from="2026-12-02T00:00:00Z")
    assert search(catalog, later) == []


def test_one_hit_per_article_unless_every_version_is_asked(catalog: Catalog) -> None:
    body = "Polio day\n\nWorld Polio Day was marked in Kabul, Tehran and Herat.\n"
    assert record(catalog, "tdi", "2", body, when="2026-12-03T10:00:00Z") == (2, True)
    hits = search(catalog, SearchQuery("Kabul"))
    assert keys(hits) == [("tdi", "2")]
    every = search(catalog, SearchQuery("Kabul", all_versions=True))
    assert sorted(h.version for h in every) == [1, 2]
    assert keys(search(catalog, SearchQuery("Herat"))) == [("tdi", "2")]
    assert [h.version for h in search(catalog, SearchQuery("Herat"))] == [2]
    # Paging: the second page starts where the first ended.
    first = search(catalog, SearchQuery("Tehran", limit=2))
    rest = search(catalog, SearchQuery("Tehran", limit=2, offset=2))
    assert len(first) == 2 and len(rest) == 1
    assert not set(keys(first)) & set(keys(rest))


def test_the_same_text_again_adds_nothing_to_the_index(catalog: Catalog) -> None:
    body = "Pezeshkian meets Mezher\n\nThe Iranian president met the Lebanese speaker in Tehran.\n"
    assert record(catalog, "irna", "1", body, when="2026-12-05T10:00:00Z") == (1, False)
    assert catalog.texts_count() == 3
    assert len(search(catalog, SearchQuery("Mezher", all_versions=True))) == 1


# -- the command, on the demo archive ------------------------------------------------------------
def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def hits_of(output: str) -> set[tuple[str, str]]:
    return {(h["site"], h["article_key"]) for h in map(json.loads, output.splitlines())}


def test_search_mezher_finds_the_three_articles_of_that_meeting(demo_all_store: Path) -> None:
    store = str(demo_all_store)
    code, out, err = run("search", "Mezher", "--store", store, "--json")
    assert code == 0, err
    assert hits_of(out) == MEZHER
    code, out, _ = run("search", "Mezher", "--store", store, "--site", "irna", "--json")
    assert hits_of(out) == {("irna", "85859288")}
    code, out, _ = run(
        "search",
        "Mezher",
        "--store",
        store,
        "--published-from",
        "2025-06-01",
        "--published-to",
        "2025-06-30",
        "--json",
    )
    assert hits_of(out) == MEZHER
    code, out, _ = run(
        "search", "Mezher", "--store", store, "--published-from", "2025-06-12", "--json"
    )
    # IRNA and Almasirah published on the 11th (Tehran time), president.ir on the 12th.
    assert hits_of(out) == {("president", "158877")}
    code, table, _ = run("search", "Mezher", "--store", store)
    assert code == 0 and "**Mezher**" in table and "https://president.ir/en/158877" in table


def test_search_refuses_bad_input_in_one_line(demo_all_store: Path) -> None:
    store = str(demo_all_store)
    code, _, err = run("search", "Mezher", "--store", store, "--site", "irnaa")
    assert code != 0 and "unknown site 'irnaa'" in err and "irna" in err
    assert "Traceback" not in err
    code, _, err = run("search", "--store", store, "--", "-Mezher")
    assert code != 0 and "at least one word" in err
    code, _, err = run("search", "x", "--store", store, "--published-from", "2025-06-01T10:00")
    assert code != 0 and "publication dates are days" in err
    code, out, err = run("search", "zzzunfoundzzz", "--store", store)
    assert code == 1 and "no archived text matches" in out


def test_search_on_a_postgresql_catalog_rebuilt_by_reindex(
    demo_all_store: Path, fresh_pg: str
) -> None:
    store = str(demo_all_store)
    code, out, err = run("reindex", "--store", store, "--catalog", fresh_pg, "--quiet")
    assert code == 0, err
    code, out, err = run("search", "Mezher", "--store", store, "--catalog", fresh_pg, "--json")
    assert code == 0, err
    assert hits_of(out) == MEZHER
    code, out, err = run(
        "search",
        "Mezher",
        "--store",
        store,
        "--catalog",
        fresh_pg,
        "--published-from",
        "2025-06-11",
        "--published-to",
        "2025-06-11",
        "--json",
    )
    assert hits_of(out) == {("irna", "85859288"), ("almasirah", "53210")}
    first = json.loads(out.splitlines()[0])
    assert "<mark>Mezher</mark>" in first["snippet_html"]


def test_search_straight_into_an_export(demo_all_store: Path, tmp_path: Path) -> None:
    import duckdb

    dest = tmp_path / "mezher.parquet"
    store = str(demo_all_store)
    code, out, err = run("search", "Mezher", "--store", store, "--export", str(dest))
    assert code == 0, err
    assert "exported 3 articles" in out
    rows = duckdb.sql(f"SELECT site, article_key, text FROM '{dest}'").fetchall()
    assert {(site, key) for site, key, _ in rows} == MEZHER
    assert all("Mezher" in text for _, _, text in rows)
    # The output is checked before the search runs: an existing file is kept.
    code, _, err = run("search", "Mezher", "--store", store, "--export", str(dest))
    assert code == 2 and "kept unless --force" in err


def test_a_text_with_nul_bytes_is_recorded_and_found(catalog: Catalog) -> None:
    body = "Broken\x00 page\n\nA body with a NUL\x00 byte from a hostile site, Samarkand.\n"
    assert record(catalog, "tdi", "nul", body) == (1, True)
    assert keys(search(catalog, SearchQuery("Samarkand"))) == [("tdi", "nul")]


def test_a_query_over_its_budget_is_stopped(catalog: Catalog) -> None:
    """What serve --query-budget relies on: a runaway statement is stopped, on both databases,
    and the catalog answers the next one."""
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    catalog.bound_queries(0.3)
    endless = (
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
    )
    started = time.monotonic()
    with pytest.raises(OperationalError), catalog.engine.connect() as conn:
        conn.execute(text(endless)).all()
    assert time.monotonic() - started < 3
    assert keys(search(catalog, SearchQuery("Mezher"))) == [("irna", "1")]
