"""The CDX API's query logic (crawler.access.cdx) on small made-up indexes, and the same
queries asked of pywb's own CDX server over the same files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from crawler.access.cdx import CdxError, CdxIndex, Filter, parse_query, search_range


def line(urlkey: str, timestamp: str, **fields: Any) -> str:
    return f"{urlkey} {timestamp} {json.dumps(fields, ensure_ascii=False)}"


def cdxj(
    urlkey: str,
    timestamp: str,
    url: str,
    digest: str,
    offset: str,
    filename: str,
    status: Any = "200",
    mime: str = "text/html",
    length: str = "100",
) -> str:
    return line(
        urlkey,
        timestamp,
        url=url,
        mime=mime,
        status=status,
        digest="sha1:" + digest,
        length=length,
        offset=offset,
        filename=filename,
    )


EX = "com,example)/"
NEWS = "https://en.irna.ir/fa/news/خبر?x=1"
# Two index files, as a store holds them (each sorted when written).
FILE_A = [
    cdxj(EX, "19990101000000", "http://example.com/", "AAA", "0", "a.warc.gz"),
    cdxj(
        EX,
        "20050615120000",
        "http://example.com/",
        "AAA",
        "100",
        "a.warc.gz",
        mime="warc/revisit",
        length="50",
    ),
    cdxj(EX, "20100101000000", "http://www.example.com/", "BBB", "150", "a.warc.gz", status="301"),
    cdxj(
        EX + "a", "20120101000000", "http://example.com/a", "CCC", "230", "a.warc.gz", status=200
    ),  # a number: pywb makes it a string
    # Short field names, as pywb reads them: u url, m mime, s length, d digest, o offset.
    line(
        EX + "page",
        "20160101000000",
        u="http://example.com/page",
        m="text/html",
        s="70",
        d="sha1:DDD",
        o="320",
        f="a.warc.gz",
    ),
    cdxj(
        EX + "page?id=1",
        "20150101000000",
        "http://example.com/page?id=1",
        "FFF",
        "390",
        "a.warc.gz",
    ),
    cdxj(
        "ir,irna,en)/fa/news/%d8%ae%d8%a8%d8%b1?x=1",
        "20200101000000",
        NEWS,
        "GGG",
        "450",
        "a.warc.gz",
    ),
]
FILE_B = [
    cdxj(EX, "20000101000000", "http://example.com/", "AAA", "0", "b.warc.gz"),
    cdxj(EX, "20080101000000", "http://example.com/", "EEE", "100", "b.warc.gz"),
    cdxj(EX, "20100101000000", "http://example.com/", "EEE", "210", "b.warc.gz"),
    cdxj(EX + "a!b", "20110101000000", "http://example.com/a!b", "HHH", "330", "b.warc.gz"),
]


@pytest.fixture
def index() -> CdxIndex:
    return CdxIndex(FILE_A, FILE_B)


def answer(index: CdxIndex, **query: Any) -> tuple[int, str, str]:
    found = index.answer(urlencode(query, doseq=True))
    return found.status, found.content_type, found.body.decode()


def stamps(index: CdxIndex, **query: Any) -> list[str]:
    return [e["timestamp"] for e in index.query(query)]


# ------------------------------------------------------------------ parameters and ranges


def test_parse_query_drops_blanks_keeps_the_last_value_and_every_filter() -> None:
    params = parse_query("url=a&url=b&limit=&filter=x&filter=!y&fl=&output=json")
    assert params == {"url": "b", "filter": ["x", "!y"], "output": "json"}


@pytest.mark.parametrize(
    ("url", "match_type", "expected"),
    [  # pywb's own examples (pywb/utils/canonicalize.py)
        (
            "http://example.com/path/file.html",
            "exact",
            ("com,example)/path/file.html", "com,example)/path/file.html!"),
        ),
        (
            "http://example.com/path/file.html",
            "prefix",
            ("com,example)/path/file.html", "com,example)/path/file.htmm"),
        ),
        ("http://example.com/path/", "prefix", ("com,example)/path/", "com,example)/path0")),
        ("http://example.com/path?", "prefix", ("com,example)/path?", "com,example)/path@")),
        ("http://example.com/path/?", "prefix", ("com,example)/path?", "com,example)/path@")),
        ("http://example.com/path/file.html", "host", ("com,example)/", "com,example*")),
        ("http://example.com/path/file.html", "domain", ("com,example)/", "com,example-")),
        ("com", "domain", ("com,", "com-")),
    ],
)
def test_search_range_is_pywbs(url: str, match_type: str, expected: tuple[str, str]) -> None:
    assert search_range(url, match_type) == expected


def test_url_forms_pick_the_match_type(index: CdxIndex) -> None:
    assert stamps(index, url="example.com/a*") == ["20110101000000", "20120101000000"]
    assert len(stamps(index, url="*.example.com")) == 10
    assert stamps(index, url="example.com/a*", matchType="exact") == []
    assert len(stamps(index, url="example.com", matchType="host")) == 10


# ------------------------------------------------------------------ merge, order, limit


def test_files_merge_in_pywbs_order_not_the_lines_text_order(index: CdxIndex) -> None:
    # pywb merges its files on each line's JSON, where '"' ends "com,example)/a" after the
    # '!' of "com,example)/a!b"; inside one file the file's order stands.
    keys = [e["urlkey"] for e in index.query({"url": "example.com/a*"})]
    assert keys == [EX + "a!b", EX + "a"]
    assert [e["urlkey"] for e in CdxIndex(FILE_A + FILE_B).query({"url": "example.com/a*"})] == [
        EX + "a",
        EX + "a!b",
    ]
    # Same urlkey and time in two files: the JSON order again (url "http://example.com/" first).
    same_time = index.query({"url": "example.com/", "from": "2010", "to": "2010"})
    assert [e["url"] for e in same_time] == ["http://example.com/", "http://www.example.com/"]


def test_limits_as_pywb_applies_them(index: CdxIndex) -> None:
    everything = stamps(index, url="example.com/")
    assert everything == sorted(everything) and len(everything) == 6
    assert stamps(index, url="example.com/", limit="2") == everything[:2]
    assert stamps(index, url="example.com/", limit="0") == everything
    assert stamps(index, url="example.com/", limit="-1") == []  # (the fuzzy retry too)
    assert stamps(index, url="example.com/", sort="reverse", limit="2") == everything[:-3:-1]
    assert stamps(index, url="example.com/", reverse="true") == everything[::-1]
    assert stamps(index, url="example.com/", reverse="0") == everything
    assert stamps(index, url="example.com/", sort="reverse", limit="0") == []
    with pytest.raises(CdxError, match=r"^Internal Error: maxlen must be non-negative$"):
        index.query({"url": "example.com/", "sort": "reverse", "limit": "-1"})


def test_closest_sorts_by_distance_with_or_without_sort_closest(index: CdxIndex) -> None:
    nearest_2007 = [
        "20080101000000",  # 0.5 years off
        "20050615120000",
        "20100101000000",  # two at 2010-01-01: in index order
        "20100101000000",
        "20000101000000",
        "19990101000000",
    ]
    assert stamps(index, url="example.com/", closest="20070701000000") == nearest_2007
    assert stamps(index, url="example.com/", closest="20070701", sort="closest") == nearest_2007
    assert stamps(index, url="example.com/", closest="20070701", limit="2") == nearest_2007[:2]
    # closest wins over sort=reverse; sort=closest alone sorts nothing; limit 0 keeps nothing.
    assert stamps(index, url="example.com/", closest="20070701", sort="reverse") == nearest_2007
    assert stamps(index, url="example.com/", sort="closest") == sorted(nearest_2007)
    assert stamps(index, url="example.com/", closest="2007", limit="0", allowFuzzy="0") == []
    # "now" is the present: the newest first.
    assert stamps(index, url="example.com/", closest="now")[0] == "20100101000000"


def test_from_and_to_are_padded_as_pywb_pads_them(index: CdxIndex) -> None:
    assert stamps(index, url="example.com/", **{"from": "2005", "to": "2008"}) == [
        "20050615120000",
        "20080101000000",
    ]
    assert (
        stamps(index, url="example.com/", from_ts="200801")
        == ["20080101000000"] + ["20100101000000"] * 2
    )
    # Not digits: padded and compared as text, as pywb does: "2005-06…" is before "20050…".
    assert (
        stamps(index, url="example.com/", **{"from": "2005-12"})
        == [
            "20050615120000",
            "20080101000000",
        ]
        + ["20100101000000"] * 2
    )


# ------------------------------------------------------------------ filters and other steps


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("status:301", ["20100101000000"]),
        ("statuscode:301", ["20100101000000"]),
        ("=mime:warc/revisit", ["20050615120000"]),
        ("!=mimetype:text/html", ["20050615120000"]),
        ("~url:http://www", ["20100101000000"]),
        ("~url:www", []),  # a regex matches from the start
        ("~.*revisit", ["20050615120000"]),  # no field: the line as JSON
        ("!digest:AAA", ["20080101000000", "20100101000000", "20100101000000"]),
        ("offset:10", ["20050615120000", "20080101000000", "20100101000000"]),  # 210 too
    ],
)
def test_filters(index: CdxIndex, spec: str, expected: list[str]) -> None:
    assert stamps(index, url="example.com/", filter=spec, allowFuzzy="0") == expected


def test_a_filter_without_a_field_sees_the_line_as_json() -> None:
    entry = {"urlkey": EX, "timestamp": "2000", "url": "http://example.com/"}
    assert Filter('~{"urlkey"')(entry)  # (a colon would start a field name)
    assert not Filter("~com,example")(entry)


def test_content_type_replaces_the_filters(index: CdxIndex) -> None:
    found = stamps(index, url="example.com/", content_type="warc/revisit", filter="status:301")
    assert found == ["20050615120000"]


def test_collapse_time_keeps_the_first_of_each_run(index: CdxIndex) -> None:
    found = index.query({"url": "example.com/", "collapseTime": "3"})
    assert [(e["timestamp"][:4], e["status"]) for e in found] == [
        ("1999", "200"),
        ("2000", "200"),  # 2005 and 2008: the same "200" run
        ("2010", "200"),  # "201": a new run
        ("2010", "301"),  # another status
    ]


def test_resolve_revisits_names_the_original(index: CdxIndex) -> None:
    [revisit] = index.query(
        {"url": "example.com/", "resolveRevisits": "1", "from": "2005", "to": "2005"}
    )
    [original] = index.query({"url": "example.com/", "resolveRevisits": "1", "to": "1999"})
    assert revisit["mime"] == "text/html"
    assert (revisit["orig.length"], revisit["orig.offset"], revisit["orig.filename"]) == (
        "100",
        "0",
        "a.warc.gz",
    )
    assert (original["orig.length"], original["orig.offset"], original["orig.filename"]) == (
        "-",
        "-",
        "-",
    )


def test_lines_read_as_pywb_reads_them(index: CdxIndex) -> None:
    [page] = index.query({"url": "example.com/page"})
    assert page == {
        "urlkey": EX + "page",
        "timestamp": "20160101000000",
        "url": "http://example.com/page",
        "mime": "text/html",
        "length": "70",
        "digest": "sha1:DDD",
        "offset": "320",
        "filename": "a.warc.gz",
    }
    [a] = index.query({"url": "example.com/a"})
    assert a["status"] == "200"  # a number in the JSON, a string to pywb
    [news] = index.query({"url": "https://en.irna.ir/fa/news/خبر?x=1"})
    assert news["url"] == "https://en.irna.ir/fa/news/%D8%AE%D8%A8%D8%B1%3Fx%3D1"


def test_show_num_pages_answers_the_lines_unprocessed(index: CdxIndex) -> None:
    assert len(stamps(index, url="example.com/", showNumPages="true", limit="1")) == 6


# ------------------------------------------------------------------ fuzzy match


def test_nothing_found_falls_back_to_pywbs_fuzzy_match(index: CdxIndex) -> None:
    found = index.query({"url": "http://example.com/page?utm_source=feed"})
    assert [(e["urlkey"], e["is_fuzzy"]) for e in found] == [(EX + "page", "1")]
    assert index.query({"url": "http://example.com/page?utm_source=feed", "allowFuzzy": "0"}) == []
    # A query that differs by more than cache-busting and tracking arguments finds nothing.
    assert index.query({"url": "http://example.com/page?id=2"}) == []
    # Found lines are never fuzzy ones.
    assert "is_fuzzy" not in index.query({"url": "http://example.com/page?id=1"})[0]


# ------------------------------------------------------------------ output


def test_default_output_is_cdxj_with_field_lists(index: CdxIndex) -> None:
    status, content_type, body = answer(index, url="example.com/a")
    assert (status, content_type) == (200, "text/x-cdxj")
    assert body == (
        'com,example)/a 20120101000000 {"url": "http://example.com/a", "mime": "text/html", '
        '"status": "200", "digest": "sha1:CCC", "length": "100", "offset": "230", '
        '"filename": "a.warc.gz"}\n'
    )
    _, _, body = answer(index, url="example.com/a", fl="urlkey,timestamp,status,nothing")
    assert body == 'com,example)/a 20120101000000 {"status": "200"}\n'


def test_json_output_with_field_lists(index: CdxIndex) -> None:
    status, content_type, body = answer(
        index, url="example.com/a", output="json", fl="status,urlkey"
    )
    assert (status, content_type) == (200, "text/x-ndjson")
    assert body == '{"status": "200", "urlkey": "com,example)/a"}\n'
    _, _, body = answer(index, url="example.com/a", output="json", fields="timestamp", fl="url")
    assert body == '{"timestamp": "20120101000000"}\n'


def test_text_output_with_and_without_field_lists(index: CdxIndex) -> None:
    status, content_type, body = answer(index, url="example.com/a", output="text")
    assert (status, content_type) == (200, "text/plain")
    assert body == (
        "com,example)/a 20120101000000 http://example.com/a text/html 200 sha1:CCC 100 230 "
        "a.warc.gz\n"
    )
    _, _, body = answer(index, url="example.com/a", output="text", fl="timestamp,nothing,status")
    assert body == "20120101000000 - 200\n"


def test_link_output_is_a_memento_timemap(index: CdxIndex) -> None:
    status, content_type, body = answer(
        index, url="example.com/", output="link", to="2000", fl="status"
    )
    assert (status, content_type) == (200, "application/link-format")
    assert body == (
        '<http://example.com/>; rel="memento"; datetime="Fri, 01 Jan 1999 00:00:00 GMT",\n'
        '<http://example.com/>; rel="memento"; datetime="Sat, 01 Jan 2000 00:00:00 GMT"\n'
    )
    assert answer(index, url="example.com/nothing", output="link")[2] == ""


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, 'The "url" param is required'),
        ({"url": ""}, 'The "url" param is required'),
        ({"output": "xml"}, "output=xml not supported"),
        ({"url": "example.com", "matchType": "any"}, "Invalid match_type: any"),
        (
            {"url": "example.com", "limit": "abc"},
            "Internal Error: invalid literal for int() with base 10: 'abc'",
        ),
        (
            {"url": "example.com", "filter": "~url:("},
            "Internal Error: missing ), unterminated subpattern at position 0",
        ),
        (
            {"url": "nothing.example", "filter": "~("},
            "Internal Error: missing ), unterminated subpattern at position 0",
        ),
        (
            {"url": "example.com", "collapseTime": "x"},
            "Internal Error: invalid literal for int() with base 10: 'x'",
        ),
        (
            {"url": "example.com", "sort": "reverse", "limit": "-3"},
            "Internal Error: maxlen must be non-negative",
        ),
    ],
)
def test_errors_are_pywbs_json_with_400(
    index: CdxIndex, query: dict[str, str], message: str
) -> None:
    assert answer(index, **query) == (
        400,
        "application/json; charset=utf-8",
        json.dumps({"message": message}),
    )


def test_query_takes_lists_of_values_as_parse_qs_gives_them(index: CdxIndex) -> None:
    assert stamps(index, url=["nothing.example", "example.com/a"]) == ["20120101000000"]


# ------------------------------------------------------------------ against pywb itself

PYWB_QUERIES: list[dict[str, Any]] = [
    {"url": "example.com/"},
    {"url": "example.com/", "output": "json"},
    {"url": "example.com/", "output": "text"},
    {"url": "example.com/", "output": "link"},
    {"url": "example.com/a*", "output": "json"},
    {"url": "*.example.com", "output": "json", "fl": "urlkey,timestamp,url"},
    {"url": "example.com", "matchType": "host", "output": "text", "fl": "urlkey,timestamp,x"},
    {"url": "example.com/", "closest": "20070701000000", "sort": "closest", "output": "json"},
    {"url": "example.com/", "closest": "20070701", "fl": "timestamp,filename"},
    {"url": "example.com/", "closest": "2007", "limit": "2", "output": "link"},
    {"url": "example.com/", "closest": "1990", "sort": "reverse", "fl": "timestamp"},
    {"url": "example.com/", "closest": "now", "fl": "timestamp,filename"},
    {"url": "example.com/", "closest": "2007", "limit": "0"},
    {"url": "example.com/", "sort": "reverse", "limit": "3", "fl": "timestamp,filename"},
    {"url": "example.com/", "sort": "reverse", "limit": "1", "output": "json"},
    {"url": "example.com/", "limit": "-1"},
    {"url": "example.com/", "limit": "-2", "sort": "closest"},
    {"url": "example.com/", "from": "2005", "to": "2008", "output": "json"},
    {"url": "example.com/", "from": "2005-06", "output": "json"},
    {"url": "example.com/", "collapseTime": "2", "fl": "timestamp,status"},
    {"url": "example.com/", "resolveRevisits": "true", "output": "json"},
    {"url": "example.com/", "resolveRevisits": "true", "output": "text"},
    {"url": "example.com/", "filter": ["!digest:AAA", "~url:http://e"], "output": "json"},
    {"url": "example.com/", "filter": "~.*revisit", "fl": "timestamp"},
    {"url": "example.com/", "filter": "offset:10", "fl": "timestamp,offset"},
    {"url": "example.com/", "content_type": "warc/revisit", "filter": "status:301"},
    {"url": "example.com/page", "output": "json"},
    {"url": "example.com/page", "output": "text"},
    {"url": "example.com/a", "output": "json"},
    {"url": "en.irna.ir/fa/news/خبر?x=1", "output": "json"},
    {"url": "en.irna.ir/fa/news/خبر?x=1", "output": "link"},
    {"url": "http://example.com/page?utm_source=feed", "output": "json"},
    {"url": "http://example.com/page?utm_source=feed", "allowFuzzy": "false"},
    {"url": "http://example.com/page?id=2", "output": "json"},
    {"url": "example.com/", "filter": "status:999", "output": "json"},
    {"url": "example.com/", "showNumPages": "true", "limit": "1", "output": "json"},
    {"url": "example.com", "matchType": "any"},
    {"url": "example.com", "limit": "x"},
    {"url": "example.com", "filter": "~("},
    {"url": "example.com/", "sort": "reverse", "limit": "-1"},
    {"output": "csv"},
]


@pytest.mark.slow
def test_the_same_queries_get_the_same_answers_from_pywb(tmp_path: Path) -> None:
    from tests.test_access import CdxReply, cdx_raw, cdx_reply, pywb_wayback

    files = []
    for name, lines in (("a.cdxj", FILE_A), ("b.cdxj", FILE_B)):
        path = tmp_path / name
        path.write_text("".join(f"{text}\n" for text in sorted(lines)), encoding="utf-8")
        files.append(path)
    index = CdxIndex(FILE_A, FILE_B)
    differ = []
    with pywb_wayback(files, tmp_path / "pywb") as pywb:
        for query in PYWB_QUERIES:
            theirs = cdx_reply(query, *cdx_raw(pywb, query))
            if theirs.status == 500:  # pywb's handler failed on the input: ours says 400
                theirs = CdxReply(400, theirs.content_type, theirs.lines)
            found = index.answer(urlencode(query, doseq=True))
            ours = cdx_reply(query, found.status, found.content_type, found.body)
            if ours != theirs:
                differ.append(f"{query}\n  ours: {ours}\n  pywb: {theirs}")
    assert not differ, "\n".join(differ)
