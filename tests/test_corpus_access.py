"""The researcher's corpus commands on the demo of all five sites, run as a user runs them:
`get` lands on the article through a redirect, `snapshots` lists a site, a URL prefix, a day or
a crawl, `export` writes several sites into one output and refuses what would spoil a file."""

from __future__ import annotations

import io
import itertools
import json
import os
import pty
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.ops.cli import build_parser, main
from tests.conftest import ROOT, venv_program

pytestmark = pytest.mark.slow

SITES = ("almasirah", "irna", "president", "presstv", "tdi")
ARTICLE = "tdi:world-polio-day-2023"
# The demo's TDI mirror answers the www. host with a 301 to the bare host.
REDIRECT = "https://www.thediplomaticinsight.com/world-polio-day-2023/"
LANDING = "https://thediplomaticinsight.com/world-polio-day-2023/"
LATER = "2027-03-01T10:00:00Z"  # where the tests move the article's 200 capture


@dataclass
class Cli:
    code: int
    out: bytes
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.decode().splitlines()]


def cli(*args: str) -> Cli:
    """`newsarchive ARGS...` in this process, its stdout as bytes."""
    out = io.BytesIO()
    text = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    err = io.StringIO()
    with redirect_stdout(text), redirect_stderr(err):
        code = main(list(args))
    text.flush()
    return Cli(code, out.getvalue(), err.getvalue())


def program() -> list[str]:
    found = venv_program("newsarchive")
    return [str(found)] if found else [sys.executable, "-m", "crawler.ops.cli"]


@pytest.fixture(scope="module")
def store(demo_all_store: Path) -> Path:
    return demo_all_store


@pytest.fixture(scope="module")
def rows(store: Path) -> list[dict[str, Any]]:
    """Every capture in the demo's catalog, read with sqlite3 (not through our code)."""
    with sqlite3.connect(f"file:{store / '.catalog.sqlite'}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("select * from captures order by id")]


def catalog_copy(store: Path, directory: Path, *updates: tuple[str, tuple[Any, ...]]) -> str:
    """A copy of the demo's catalog with these statements run on it, as a --catalog URL."""
    path = directory / "catalog.sqlite"
    shutil.copy(store / ".catalog.sqlite", path)
    with sqlite3.connect(path) as conn:
        for sql, params in updates:
            conn.execute(sql, params)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def moved(store: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The catalog with the article's 200 capture moved months later: its 301 is the capture
    nearest 2025-06-30, and the article is only reached through it."""
    return catalog_copy(
        store,
        tmp_path_factory.mktemp("moved"),
        ("update captures set capture_time = ? where url = ?", (LATER, LANDING)),
    )


# ------------------------------------------------------------------ get through a redirect


def landing_text(store: Path, rows: list[dict[str, Any]]) -> bytes:
    [row] = [r for r in rows if r["url"] == LANDING and r["text_key"]]
    return (store / row["text_key"]).read_bytes()


@pytest.mark.parametrize("kind", ["text", "html", "json", "warc"])
def test_get_follows_the_redirect_to_the_article_for_every_kind(
    store: Path, rows: list[dict[str, Any]], moved: str, kind: str, tmp_path: Path
) -> None:
    out = tmp_path / "capture.warc.gz"
    args = [ARTICLE, "--at", "2025-06-30", "--as", kind, "--store", str(store), "--catalog", moved]
    got = cli("get", *args, *(["-o", str(out)] if kind == "warc" else []))
    assert got.code == 0, got.err
    # Which capture, how far from the time asked, and through which redirect.
    assert (
        f"using the capture of {LANDING} at {LATER}, 20 months after 2025-06-30 "
        f"(its redirect's target, as captured nearest the redirect), via the redirect from "
        f"{REDIRECT} (captured " in got.err
    ), got.err
    if kind == "text":
        assert got.out == landing_text(store, rows)
    elif kind == "html":
        page = got.out.decode()
        assert "World Polio Day 2023" in page and "301 Moved" not in page
    elif kind == "json":
        car = got.json()
        assert car["capture"]["url"] == LANDING and car["capture"]["status"] == 200
        assert [r["status"] for r in car["redirected_from"]] == [301]
    else:
        with out.open("rb") as fh:
            found = [
                (r.rec_type, r.rec_headers.get_header("WARC-Target-URI"), r.http_headers)
                for r in ArchiveIterator(fh)
            ]
        responses = [
            (uri, http.get_statuscode()) for kind_, uri, http in found if kind_ == "response"
        ]
        assert responses == [(LANDING, "200")]
        assert found[0][0] == "warcinfo"


def test_get_no_follow_gives_the_redirect_itself(store: Path, moved: str) -> None:
    got = cli(
        "get", ARTICLE, "--at", "2025-06-30", "--as", "html", "--no-follow",
        "--store", str(store), "--catalog", moved,
    )  # fmt: skip
    assert got.code == 0, got.err
    assert b"301 Moved Permanently" in got.out
    assert got.err.startswith(f"using the capture of {REDIRECT} at ")
    assert "via the redirect" not in got.err


def test_get_on_the_demo_lands_on_the_article_and_says_how_far(
    store: Path, rows: list[dict[str, Any]]
) -> None:
    """Today's demo: the 301 and the 200 in the same second; the article, never the 301."""
    [when] = {r["capture_time"] for r in rows if r["url"] == LANDING}
    for kind in ("html", "text"):
        got = cli("get", ARTICLE, "--at", "2025-06-30", "--as", kind, "--store", str(store))
        assert got.code == 0, got.err
        assert b"301 Moved" not in got.out
        assert re.fullmatch(
            rf"using the capture of {re.escape(LANDING)} at {when}, \d+ months after "
            r"2025-06-30 \(no capture is nearer\)\n",
            got.err,
        ), got.err
    exact = cli("get", ARTICLE, "--at", when, "--store", str(store))
    assert exact.err == f"using the capture of {LANDING} at {when}, captured at {when} exactly\n"
    latest = cli("get", REDIRECT, "--as", "html", "--store", str(store))
    assert latest.err == f"using the capture of {LANDING} at {when}, the latest\n"


def test_a_redirect_loop_is_one_line(
    store: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The bare URL's capture made a 301 to itself (the www. 301's record): a loop, refused."""
    [r301] = [r for r in rows if r["url"] == REDIRECT]
    looping = catalog_copy(
        store,
        tmp_path,
        (
            "update captures set status = 301, warc_key = ?, warc_offset = ?, warc_length = ?, "
            "capture_time = ? where url = ?",
            (r301["warc_key"], r301["warc_offset"], r301["warc_length"], LATER, LANDING),
        ),
    )
    got = cli("get", ARTICLE, "--at", "2025-01-01", "--as", "html", "--store", str(store),
              "--catalog", looping)  # fmt: skip
    assert got.code == 1 and got.out == b""
    assert got.err == (
        f"error: a redirect loop: {REDIRECT} -> {LANDING} -> {LANDING} "
        "(--no-follow gives the first one)\n"
    )


def test_a_redirect_to_nothing_archived(
    store: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The 301's Location never captured (the article's 200 moved to another URL): --as html
    says so; --as text takes the nearest capture with text and says why not the nearer one."""
    elsewhere = LANDING + "amp/"
    gone = catalog_copy(
        store,
        tmp_path,
        (
            "update captures set url = ?, capture_time = ? where url = ?",
            (elsewhere, LATER, LANDING),
        ),
    )
    args = (ARTICLE, "--at", "2025-06-30", "--store", str(store), "--catalog", gone)
    page = cli("get", *args, "--as", "html")
    assert page.code == 1 and page.out == b""
    assert page.err.startswith(f"error: {REDIRECT} (captured ")
    assert page.err.endswith(
        f"redirects to {LANDING}, which the archive never captured (--no-follow gives the "
        "redirect itself)\n"
    )
    text = cli("get", *args, "--as", "text")
    assert text.code == 0, text.err
    assert text.out == landing_text(store, rows)
    assert text.err.startswith(
        f"using the capture of {elsewhere} at {LATER}, 20 months after 2025-06-30 (a nearer "
        f"redirect leads to no archived text: {REDIRECT} at "
    ), text.err


def test_get_as_warc_refuses_a_terminal(store: Path) -> None:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [*program(), "get", ARTICLE, "--as", "warc", "--store", str(store)],
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        os.set_blocking(leader, False)
        try:
            written = os.read(leader, 65536)
        except BlockingIOError:
            written = b""
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("error: --as warc writes binary WARC data")
    assert "-o FILE" in proc.stderr.decode() and proc.stderr.count(b"\n") == 1
    assert b"WARC/" not in written
    # Text is for a terminal: the same call --as text writes it there.
    leader, follower = pty.openpty()
    try:
        text = subprocess.run(
            [*program(), "get", ARTICLE, "--as", "text", "--store", str(store)],
            stdout=follower, stderr=subprocess.PIPE, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    finally:
        os.close(follower)
        os.close(leader)
    assert text.returncode == 0, text.stderr.decode()


def test_get_output_file_kept_unless_force(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "capture.warc.gz"
    out.write_bytes(b"precious")
    base = ("get", ARTICLE, "--as", "warc", "--store", str(store))
    kept = cli(*base, "-o", str(out))
    assert kept.code == 2 and out.read_bytes() == b"precious"
    assert kept.err == f"error: -o {out} exists: it is kept unless --force is given\n"
    forced = cli(*base, "-o", str(out), "--force")
    assert forced.code == 0, forced.err
    with out.open("rb") as fh:
        assert [r.rec_type for r in ArchiveIterator(fh)][:2] == ["warcinfo", "response"]
    directory = cli(*base, "-o", str(tmp_path))
    assert (
        directory.code == 2
        and directory.err == f"error: -o {tmp_path} is a directory: give a file name\n"
    )
    under_a_file = tmp_path / "capture.warc.gz" / "x.warc.gz"
    bad = cli(*base, "-o", str(under_a_file))
    assert bad.code == 2 and bad.err.count("\n") == 1 and "Traceback" not in bad.err
    assert bad.err.startswith(f"error: cannot write -o {under_a_file}")
    # A plain .warc: the records uncompressed.
    plain = tmp_path / "capture.warc"
    assert cli(*base, "-o", str(plain)).code == 0
    assert plain.read_bytes().startswith(b"WARC/1.1\r\n")
    check = subprocess.run([str(venv_program("warcio")), "check", str(plain)], capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


# ------------------------------------------------------------------ snapshots: listings


def listed(*args: str) -> list[dict[str, Any]]:
    got = cli("snapshots", *args, "--json")
    assert got.code == 0, got.err
    return got.lines()


def test_snapshots_of_a_site(store: Path, rows: list[dict[str, Any]]) -> None:
    irna = [r for r in rows if r["site"] == "irna"]
    found = listed("--site", "irna", "--store", str(store))
    assert sorted(f["record_id"] for f in found) == sorted(r["record_id"] for r in irna)
    assert [f["capture_time"] for f in found] == sorted(f["capture_time"] for f in found)
    two = listed("--site", "irna,tdi", "--store", str(store))
    assert {f["site"] for f in two} == {"irna", "tdi"}
    assert len(two) == sum(r["site"] in ("irna", "tdi") for r in rows)
    assert len(listed("--site", "irna", "--limit", "3", "--store", str(store))) == 3
    table = cli("snapshots", "--site", "irna", "--store", str(store)).out.decode().splitlines()
    assert table[0] == "captures of site irna (oldest first):"
    assert table[-1] == f"{len(irna)} captures"
    assert len(table) == len(irna) + 3


@pytest.mark.parametrize(
    "pattern",
    ["https://en.irna.ir/news/*", "en.irna.ir/news/*", "https://thediplomaticinsight.com/w*"],
)
def test_snapshots_of_a_url_prefix(store: Path, rows: list[dict[str, Any]], pattern: str) -> None:
    prefix = pattern.removesuffix("*")
    starts = [prefix] if "://" in prefix else ["http://" + prefix, "https://" + prefix]
    want = sorted(r["url"] for r in rows if r["url"].startswith(tuple(starts)))
    assert want, "the demo has captures under that prefix"
    found = listed(pattern, "--store", str(store))
    assert sorted(f["url"] for f in found) == want


def test_snapshots_of_a_day_and_of_a_crawl(store: Path, rows: list[dict[str, Any]]) -> None:
    tdi = [r for r in rows if r["site"] == "tdi"]
    day = tdi[0]["capture_time"][:10]
    found = listed("--site", "tdi", "--day", day, "--store", str(store))
    assert sorted(f["record_id"] for f in found) == sorted(
        r["record_id"] for r in tdi if r["capture_time"].startswith(day)
    )
    ranged = listed("--site", "tdi", "--from", day, "--to", day, "--store", str(store))
    assert ranged == found
    empty = cli("snapshots", "--site", "tdi", "--day", "2001-01-01", "--store", str(store))
    assert empty.code == 0 and empty.out.decode().splitlines()[-1] == "0 captures"
    assert empty.err.startswith("no capture of site tdi")
    [manifest] = (store / "manifests" / "presstv").glob("*.json")
    crawl = json.loads(manifest.read_text())["crawl_id"]
    found = listed("--crawl", crawl, "--store", str(store))
    assert sorted(f["url"] for f in found) == sorted(
        r["url"] for r in rows if r["crawl_id"] == crawl
    )
    assert {f["site"] for f in found} == {"presstv"}


def test_snapshots_refusals_and_the_article_form(store: Path) -> None:
    unknown = cli("snapshots", "--site", "irnaa", "--store", str(store))
    assert unknown.code == 2 and unknown.err.count("\n") == 1
    assert "unknown site 'irnaa' (did you mean irna?)" in unknown.err
    assert f"the catalog holds: {', '.join(SITES)}" in unknown.err
    crawl = cli("snapshots", "--crawl", "tdi-19990101T000000Z-000000", "--store", str(store))
    assert crawl.code == 2 and "no crawl 'tdi-19990101T000000Z-000000'" in crawl.err
    nothing = cli("snapshots", "--store", str(store))
    assert nothing.code == 2 and "say what to list" in nothing.err
    # One article: a JSON array, as before, with both captures (the 301 and the 200).
    article = cli("snapshots", ARTICLE, "--store", str(store), "--json")
    assert article.code == 0
    assert sorted(c["url"] for c in article.json()) == sorted([LANDING, REDIRECT])


# ------------------------------------------------------------------ export of a corpus


def texts(store: Path, site: str) -> int:
    return len(list((store / "text" / site).rglob("*.txt")))


def test_export_several_sites_into_one_jsonl(store: Path, tmp_path: Path) -> None:
    dest = tmp_path / "corpus.jsonl"
    done = cli("export", "--site", "tdi", "--site", "irna", str(dest), "--store", str(store))
    assert done.code == 0, done.err
    lines = [json.loads(x) for x in dest.read_text().splitlines()]
    by_site = {s: sum(line["site"] == s for line in lines) for s in ("tdi", "irna")}
    assert by_site == {"tdi": texts(store, "tdi"), "irna": texts(store, "irna")}
    assert len(lines) == sum(by_site.values())
    out = done.out.decode().splitlines()
    assert out[0].startswith(f"exported {by_site['tdi']} articles ") and " of tdi " in out[0]
    assert out[1].startswith(f"exported {by_site['irna']} articles ") and " of irna " in out[1]
    assert out[2].startswith(f"in all: exported {len(lines)} articles ")


def test_export_parquet_by_its_extension_and_all_sites(store: Path, tmp_path: Path) -> None:
    import duckdb

    dest = tmp_path / "all.parquet"
    done = cli("export", "--all", str(dest), "--store", str(store))
    assert done.code == 0, done.err
    counts = dict(duckdb.sql(f"select site, count(*) from '{dest}' group by site").fetchall())
    assert counts == {site: texts(store, site) for site in SITES}
    two = tmp_path / "two.parquet"
    assert cli("export", "--site", "presstv,almasirah", str(two), "--store", str(store)).code == 0
    sites = {r[0] for r in duckdb.sql(f"select distinct site from '{two}'").fetchall()}
    assert sites == {"presstv", "almasirah"}


def test_export_warc_and_text_by_their_names(store: Path, tmp_path: Path) -> None:
    plain = tmp_path / "two.warc"
    assert cli("export", "--site", "tdi,irna", str(plain), "--store", str(store)).code == 0
    assert plain.read_bytes().startswith(b"WARC/1.1\r\n")
    with plain.open("rb") as fh:
        kinds = [r.rec_type for r in ArchiveIterator(fh)]
    assert kinds[0] == "warcinfo"
    assert kinds.count("conversion") == texts(store, "tdi") + texts(store, "irna")
    tree = tmp_path / "texts"
    done = cli("export", "--site", "tdi,irna", f"{tree}/", "--store", str(store))
    assert done.code == 0, done.err
    assert sorted(p.name for p in tree.iterdir()) == ["irna", "tdi"]
    again = cli("export", "--site", "tdi", f"{tree}/", "--store", str(store))
    assert again.code == 2 and "is not empty: --force" in again.err


def test_export_refusals(store: Path, tmp_path: Path) -> None:
    dest = tmp_path / "x.jsonl"
    unknown = cli("export", "--site", "tdi,irnaa", str(dest), "--store", str(store))
    assert unknown.code == 2 and unknown.err.count("\n") == 1
    assert "unknown site 'irnaa'" in unknown.err
    assert f"the catalog holds: {', '.join(SITES)}" in unknown.err
    assert not dest.exists()
    disagree = cli(
        "export", "--site", "tdi", "--format", "parquet", str(dest), "--store", str(store)
    )
    assert disagree.code == 2 and not dest.exists()
    assert disagree.err.startswith(f"error: --format parquet, but {dest} ends in .jsonl")
    nameless = cli("export", "--site", "tdi", str(tmp_path / "corpus"), "--store", str(store))
    assert nameless.code == 2 and "cannot tell the format" in nameless.err
    which = cli("export", str(dest), "--store", str(store))
    assert which.code == 2 and "--site NAME" in which.err and "--all" in which.err
    dest.write_text("precious\n")
    kept = cli("export", "--site", "tdi", str(dest), "--store", str(store))
    assert kept.code == 2 and dest.read_text() == "precious\n"
    assert kept.err == f"error: {dest} exists: it is kept unless --force is given\n"
    forced = cli("export", "--site", "tdi", str(dest), "--store", str(store), "--force")
    assert forced.code == 0, forced.err
    assert len(dest.read_text().splitlines()) == texts(store, "tdi")
    assert not list(tmp_path.glob("*.partial"))
    # A name that says no format, with --format: taken.
    named = tmp_path / "corpus.out"
    assert (
        cli("export", "--site", "tdi", "--format", "jsonl", str(named), "--store", str(store)).code
        == 0
    )
    assert len(named.read_text().splitlines()) == texts(store, "tdi")


# ------------------------------------------------------------------ help


def examples(command: str, capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    """The example command lines of a command's --help, up to a pipe or a redirection."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    found = []
    for line in capsys.readouterr().out.split("examples:", 1)[1].splitlines():
        words = shlex.split(line)
        if words[:1] == ["newsarchive"]:
            found.append(list(itertools.takewhile(lambda w: w not in ("|", ">"), words[1:])))
    return found


@pytest.mark.parametrize("command", ["snapshots", "get", "export"])
def test_help_examples_parse(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    found = examples(command, capsys)
    assert len(found) >= 3
    for args in found:
        assert args[0] == command
        ns = build_parser().parse_args(args)
        assert ns.func is not None, args
