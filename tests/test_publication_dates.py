"""Publication date as an axis of its own: typed in the catalog and the Parquet export (DuckDB
needs no cast), a date-only value kept as its day, filters on export and snapshots, the feed's
date when the page gives none, and the story id across sites in the export."""

from __future__ import annotations

import io
import json
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import duckdb

from crawler.catalog.db import published_fields
from crawler.ops.cli import main

MEZHER = {("irna", "85859288"), ("president", "158877"), ("almasirah", "53210")}


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def sidecars(store: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((store / "text").rglob("*.json"))]


def test_typed_dates_keep_a_day_a_day() -> None:
    day = published_fields("2025-06-12T00:00:00+03:30", "2025-06-12")
    assert day == {
        "published_at": None,
        "published_date": "2025-06-12",
        "published_text": "2025-06-12",
        "published_precision": "day",
    }
    # A moment: UTC for the instant, the publisher's own calendar day for the date.
    late = published_fields("2025-06-11T23:30:00+03:30", "Jun 11, 2025, 11:30 PM")
    assert late["published_at"] == "2025-06-11T20:00:00Z"
    assert late["published_date"] == "2025-06-11"
    assert late["published_precision"] == "minute"
    # A sidecar of an older crawl (no text kept): midnight read as a date without time.
    assert published_fields("2023-10-24T00:00:00+05:00")["published_precision"] == "day"
    assert published_fields("2023-10-24T11:20:45+05:00")["published_precision"] == "second"
    assert published_fields("not a date")["published_date"] is None


def test_export_of_all_sites_by_publication_month_is_typed_parquet(
    demo_all_store: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "june.parquet"
    code, _, err = run(
        "export",
        "--all",
        "--published-from",
        "2025-06",
        "--published-to",
        "2025-06",
        str(dest),
        "--store",
        str(demo_all_store),
    )
    assert code == 0, err
    con = duckdb.connect()
    types = dict(con.sql(f"SELECT column_name, column_type FROM (DESCRIBE '{dest}')").fetchall())
    assert types["capture_time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["published_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["published_date"] == "DATE"
    # A per-site, per-publication-day count with no cast.
    counted = con.sql(
        f"SELECT site, strftime(published_date, '%Y-%m-%d'), count(*) FROM '{dest}' "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    # The same from the sidecars: each article's latest text, published in June 2025.
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for car in sidecars(demo_all_store):
        key = (car["site"], car["article_id"])
        if key not in latest or car.get("version", 1) > latest[key].get("version", 1):
            latest[key] = car
    want = Counter(
        (car["site"], car["published"][:10])
        for car in latest.values()
        if (car.get("published") or "").startswith("2025-06")
    )
    assert counted == sorted((site, day, n) for (site, day), n in want.items())
    stories = dict(
        ((site, key), story)
        for site, key, story in con.sql(
            f"SELECT site, article_key, story_id FROM '{dest}'"
        ).fetchall()
    )
    assert {k for k, v in stories.items() if v is not None} == MEZHER
    assert len({stories[k] for k in MEZHER}) == 1


def test_snapshots_and_export_filter_by_publication_day(
    demo_all_store: Path, tmp_path: Path
) -> None:
    store = str(demo_all_store)
    code, out, err = run(
        "snapshots",
        "--published-from",
        "2025-06-11",
        "--published-to",
        "2025-06-11",
        "--json",
        "--store",
        store,
    )
    assert code == 0, err
    listed = {(r["site"], r["article_key"]) for r in map(json.loads, out.splitlines())}
    want = {
        (car["site"], car["article_id"])
        for car in sidecars(demo_all_store)
        if (car.get("published") or "").startswith("2025-06-11")
    }
    assert listed == want and ("irna", "85859288") in listed
    code, _, err = run(
        "export",
        "--site",
        "tdi",
        "--published-from",
        "2025-06",
        str(tmp_path / "x.jsonl"),
        "--store",
        store,
    )
    assert code == 1 and "no archived article of 'tdi' in that range" in err
    code, _, err = run(
        "export",
        "--site",
        "tdi",
        "--published-to",
        "2025-06-01T10:00",
        str(tmp_path / "y.jsonl"),
        "--store",
        store,
    )
    assert code != 0 and "publication dates are days" in err


def test_the_feed_date_stands_in_for_a_page_without_one(demo_all_store: Path) -> None:
    cars = {(c["site"], c["article_id"]): c for c in sidecars(demo_all_store)}
    irna = cars[("irna", "85859601")]
    assert irna["published_from"] == "feed"
    assert irna["published"] == "2025-06-12T07:40:00+00:00"
    assert any(w.startswith("published date from the feed") for w in irna["warnings"])
    page = cars[("president", "158877")]
    assert (page["published_from"], page["published_precision"]) == ("page", "day")
