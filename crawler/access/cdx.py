"""The CDX API of ``newsarchive serve``: pywb's CDX server over the store's CDXJ files.

Ported from pywb 2.10's warcserver (``index/query.py``, ``index/cdxops.py``,
``index/cdxobject.py``, ``index/fuzzymatcher.py``, ``handlers.py``, ``basewarcserver.py``) so
that a query gets the answer pywb's ``/<coll>/cdx`` gives over the same files, less the fields
pywb adds about its own collection (``source``, ``source-coll``, ``access``; in link output
``collection=``).

Parameters, as pywb reads them from the query string (blank values are dropped; for a repeated
parameter the last one counts, except ``filter``):

``url`` (required; ``*.host`` means matchType=domain, a trailing ``*`` prefix),
``matchType`` (exact, prefix, host, domain), ``from``/``from_ts`` and ``to`` (timestamp
prefixes, padded as pywb pads them), ``filter`` (repeatable, ``[!][=|~]field:value``: contains,
exact, regex match; no field means the whole line as JSON), ``content_type`` (one exact mime
filter instead of the others), ``collapseTime`` (one line per timestamp prefix of that length
and status), ``resolveRevisits`` (adds ``orig.length``/``orig.offset``/``orig.filename``),
``closest`` (a timestamp or ``now``: the lines nearest to it first, whatever ``sort`` says),
``sort=reverse`` or ``reverse=1`` (newest first), ``limit`` (default 100000; 0 is no limit,
but keeps nothing with ``closest`` or ``sort=reverse``; a negative limit keeps nothing, and is
an error with ``sort=reverse``: pywb's quirks, kept),
``output`` (``cdxj`` default ``text/x-cdxj``, ``json`` ``text/x-ndjson``, ``text``
``text/plain``, ``link`` ``application/link-format``), ``fl``/``fields`` (the fields to give,
comma-separated), ``showNumPages`` (pywb's plain-file answer: the lines in range, unprocessed),
``allowFuzzy`` (default on: when nothing is left, pywb's catch-all fuzzy rule asks again for
the URL up to its query, without ``filter`` and ``closest``, and keeps the lines whose URL is
the one asked for but for a cache-busting or tracking argument, or for a file's URL any query,
marked ``is_fuzzy``). Only pywb's catch-all fuzzy rule is ported, not its rules for
particular sites (YouTube, Facebook, …), which none of our crawls capture.

Paging: by default ``page``, ``pageSize`` and ``showPagedIndex`` change nothing, as in pywb over
plain CDXJ files. With ``CdxOptions(paged=True)`` (``serve --cdx-paged``) they answer as pywb
over a ZipNum cluster, its blocks being the files' blocks of ``BLOCK_BYTES``: a query gives one
page (``page``, default 0) of ``pageSize`` blocks (default 10), ``showNumPages`` gives
``{"pages", "pageSize", "blocks"}`` and ``showPagedIndex`` the page's blocks.

Bounds, none of them pywb's: every answer is read from the sorted files by binary search and
streamed, reading only the lines it needs; a query runs at most ``CdxOptions.budget`` seconds
(then a 400, or the stream is cut); a regular expression filter runs in linear time
(google-re2: no backreferences, no lookaround); at most ``MAX_FILTERS`` filters of
``MAX_FILTER_LENGTH`` characters, a ``url`` of ``MAX_URL_LENGTH``; ``closest`` and
``sort=reverse``, which sort in memory, keep at most ``MAX_SORTED`` lines (a larger ``limit``
with them is a 400; without one they keep that many).

An error is pywb's JSON body, ``{"message": "..."}``. Where pywb answers 400 we do; where its
handler fails on bad input and answers 500 ``Internal Error: ...`` (``limit=abc``, an invalid
regex, ``collapseTime=x``, a negative limit with ``sort=reverse``) we send the same body with
400, since the mistake is the request's.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import os.path
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

import surt
from warcio.timeutils import (
    PAD_14_DOWN,
    PAD_14_UP,
    pad_timestamp,
    timestamp_now,
    timestamp_to_http_date,
    timestamp_to_sec,
)

from crawler.access.cdxfiles import Block, MemorySource, Source, StoreIndexFiles, is_cdxj
from crawler.access.query import AccessError
from crawler.store.base import Store

try:
    import re2
except ImportError:  # pragma: no cover - a dependency; without it regex filters are refused
    re2 = None

Entry = dict[str, Any]
Params = dict[str, Any]
# (urlkey, site of the index file) -> True when the access rules withhold the line.
Hidden = Callable[[str, "str | None"], bool]

CONTENT_TYPES = {
    "cdxj": "text/x-cdxj",
    "json": "text/x-ndjson",
    "text": "text/plain",
    "link": "application/link-format",
}
ERROR_CONTENT_TYPE = "application/json; charset=utf-8"
DEFAULT_LIMIT = 100000
MAX_FILTERS = 16
MAX_FILTER_LENGTH = 256
MAX_URL_LENGTH = 8192
MAX_SORTED = 10_000
DEFAULT_PAGE_SIZE = 10  # blocks a page, pywb's ZipNum default (max_blocks)
MAX_PAGE_SIZE = 100
# An answer's first bytes are made before its status is sent, so an error there is a 400.
_FIRST_BYTES = 64 * 1024
_CHUNK_BYTES = 64 * 1024

# pywb's CDXObject.CDX_ALT_FIELDS: short and old names of fields, in CDXJ and in filters.
_ALT_FIELDS = {
    "u": "url",
    "original": "url",
    "statuscode": "status",
    "mimetype": "mime",
    "m": "mime",
    "l": "length",
    "s": "length",  # pywb's dict names "s" twice; the second, length, is the one it keeps
    "o": "offset",
    "d": "digest",
    "t": "timestamp",
    "k": "urlkey",
    "f": "filename",
}
# pywb's rules.yaml ``default_filters``, which its catch-all fuzzy rule applies.
_FUZZY_LIMIT = "100"
_FUZZY_SKIP_PARAMS = ("alt_url", "reverse", "closest", "end_key", "url", "matchType", "filter")
_NOT_EXTS = ("asp", "aspx", "jsp", "php", "pl", "exe", "dll")
_QUERY_MIMES = (
    "application/x-shockwave-flash",
    "application/dash+xml",
    "application/x-mpegURL",
    "application/vnd.apple.mpegurl",
)
_URL_NORMALIZE = [
    (re.compile(match), replace)
    for match, replace in (
        (r"[?&](_|cb|uncache)=([\d]+)(?=&|$)", ""),
        (r"[?&]utm_[^=]+=[^&]+(?=&|$)", ""),
        (r"[?&](callback=jsonp)[^&]+(?=&|$)", r"\1"),
        (r"[?&]((?:\w+)=jquery)[\d]+_[\d]+", r"\1"),
        (r"[?&](\w*(bust|ts)\w*=1[\d]{12,15})(?=&|$)", ""),
        # pywb writes (.*)+, which matches what (.*) does but backtracks exponentially.
        (r"[?&](fbclid)=(.*)(?=&|$)", ""),
    )
]


class CdxError(AccessError):
    """A query pywb answers with an error; ``body`` is pywb's JSON for it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def body(self) -> bytes:
        return json.dumps({"message": self.message}).encode("utf-8")

    @classmethod
    def internal(cls, exc: Exception) -> CdxError:
        """What pywb says when its handler fails on the input (as a 500 there)."""
        return cls(f"Internal Error: {exc}")


class CdxBudgetExceeded(CdxError):
    """A query that ran past its time budget."""


@dataclass(frozen=True)
class CdxAnswer:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class CdxStream:
    """An answer as it is sent: status and type first, then the body chunk by chunk (a
    ``CdxBudgetExceeded`` from ``chunks`` means the answer was cut)."""

    status: int
    content_type: str
    chunks: Iterator[bytes]
    size: int | None = None  # the body's length when it was all made before the status


@dataclass(frozen=True)
class CdxOptions:
    """How the API answers: pywb's paging over blocks, and a query's time budget."""

    paged: bool = False
    budget: float | None = 10.0  # seconds a query may read and sort lines; None: no bound

    def __post_init__(self) -> None:
        if self.budget is not None and self.budget <= 0:
            raise ValueError(f"a CDX budget must be positive seconds, not {self.budget}")


class _Budget:
    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def check(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise CdxBudgetExceeded(
                f"the query ran past its budget of {self.seconds:g} s: narrow it (matchType, "
                "from, to) or ask for less (limit)"
            )


def parse_query(query: str) -> Params:
    """pywb's ``query_to_dict(query, multi=['filter'])``: no blanks, the last value wins."""
    params: Params = {}
    for name, value in parse_qsl(query):
        if name != "filter":
            params[name] = value
        elif name in params:
            params[name].append(value)
        else:
            params[name] = [value]
    return params


def _params(given: Mapping[str, str | Sequence[str]]) -> Params:
    params: Params = {}
    for name, value in given.items():
        values = [value] if isinstance(value, str) else [v for v in value if v]
        if not values or not values[-1]:
            continue
        params[name] = values if name == "filter" else values[-1]
    return params


def _to_bool(value: Any) -> bool:
    if not value:
        return False
    if isinstance(value, str):
        return value.lower() not in ("0", "false", "f", "off")
    return bool(value)


class CdxIndex:
    """Sorted CDXJ indexes (the store's files, or lines given), merged at query time as pywb
    merges its index files.

    Lines that are not CDXJ (``urlkey timestamp {json}``) are left out; so are the lines the
    access rules withhold (``hidden``), before any other step sees them.
    """

    def __init__(
        self,
        *files: Iterable[str],
        sources: Callable[[], Sequence[Source]] | None = None,
        options: CdxOptions | None = None,
        hidden: Hidden | None = None,
        block_lines: int = 0,
    ) -> None:
        if sources is None:
            fixed = tuple(
                MemorySource(lines, str(n), block_lines=block_lines)
                for n, lines in enumerate(files)
            )
            sources = lambda: fixed  # noqa: E731
        self.sources = sources
        self.options = options or CdxOptions()
        self.hidden = hidden

    @classmethod
    def from_store(
        cls, store: Store, *, options: CdxOptions | None = None, refresh: float = 5.0
    ) -> CdxIndex:
        """The store's ``index/**.cdxj``, listed again at most every ``refresh`` seconds."""
        return cls(sources=StoreIndexFiles(store, refresh=refresh), options=options)

    # -- the API ---------------------------------------------------------------------------------
    def answer(self, query: str) -> CdxAnswer:
        """The whole answer to ``/cdx?<query>``: status, content type and body."""
        found = self.stream(query)
        try:
            body = b"".join(found.chunks)
        except CdxError as exc:
            return CdxAnswer(400, ERROR_CONTENT_TYPE, exc.body)
        return CdxAnswer(found.status, found.content_type, body)

    def stream(self, query: str) -> CdxStream:
        """The answer to ``/cdx?<query>`` as it is sent: an error found in its first
        ``_FIRST_BYTES`` is a 400 with pywb's JSON body; one found later cuts the stream."""
        params = parse_query(query)
        output = params.get("output", "cdxj")
        try:
            if output not in CONTENT_TYPES:
                raise CdxError(f"output={output} not supported")
            lines = self._lines(params, output)
            first: list[str] = []
            size = 0
            for line in lines:
                first.append(line)
                size += len(line)
                if size >= _FIRST_BYTES:
                    break
            else:
                body = "".join(first).encode("utf-8")
                return CdxStream(200, CONTENT_TYPES[output], iter([body]), len(body))
        except CdxError as exc:
            return CdxStream(400, ERROR_CONTENT_TYPE, iter([exc.body]), len(exc.body))
        return CdxStream(200, CONTENT_TYPES[output], _chunks(itertools.chain(first, lines)))

    def query(self, given: Mapping[str, str | Sequence[str]]) -> list[Entry]:
        """The lines a query selects, in pywb's order, as dicts (``urlkey``, ``timestamp``, …)."""
        return list(self.entries(_params(given)))

    def entries(self, params: Params) -> Iterator[Entry]:
        if not params.get("url"):
            raise CdxError('The "url" param is required')
        if len(params["url"]) > MAX_URL_LENGTH:
            raise CdxError(f"url is {len(params['url'])} characters long: at most {MAX_URL_LENGTH}")
        params.setdefault("_budget", _Budget(self.options.budget))
        found = self._load(params)
        return self._fuzzy(found, params)

    def _lines(self, given: Params, output: str) -> Iterator[str]:
        params = _params(given)
        fields = params.get("fields") or params.get("fl")
        names = fields.split(",") if fields else None
        if self.options.paged and (
            _to_bool(params.get("showNumPages")) or _to_bool(params.get("showPagedIndex"))
        ):
            return self._page_lines(params, output)
        return format_lines(self.entries(params), output, names)

    # -- pywb's BaseAggregator and FuzzyMatcher --------------------------------------------------
    def _load(self, params: Params) -> Iterator[Entry]:
        if params.get("closest") == "now":
            params["closest"] = timestamp_now()
        content_type = params.get("content_type")
        if content_type:
            params["filter"] = ["=mime:" + content_type]
        start, end = self._range(params)
        if self.options.paged:
            start, end = self._page_range(start, end, params)
        found = self._merged(start, end, params["_budget"])
        if _to_bool(params.get("showNumPages")):
            return found
        return process(found, params)

    def _range(self, params: Params) -> tuple[str, str]:
        url = params["url"]
        if not params.get("matchType"):
            if url.startswith("*."):
                url = params["url"] = url[2:]
                params["matchType"] = "domain"
            elif url.endswith("*"):
                url = params["url"] = url[:-1]
                params["matchType"] = "prefix"
            else:
                params["matchType"] = "exact"
        start, end = search_range(url, params["matchType"])
        params["key"], params["end_key"] = start, end
        return start, end

    def _merged(self, start: str, end: str, budget: _Budget) -> Iterator[Entry]:
        sources = [s for s in self.sources() if _overlaps(s, start, end)]
        ranges = [self._read(source, start, end, budget) for source in sources]
        if not ranges:
            return iter(())
        if len(ranges) == 1:
            return (_entry(line) for line in ranges[0])
        # pywb merges its index files on each line's JSON form, where it has added the file's
        # name as "source": that order, not the lines' text order, is the order of its answer.
        return (
            key.entry
            for key in heapq.merge(
                *(
                    (_MergeKey(entry, source.name) for entry in map(_entry, lines))
                    for source, lines in zip(sources, ranges, strict=True)
                )
            )
        )

    def _read(self, source: Source, start: str, end: str, budget: _Budget) -> Iterator[str]:
        hidden = self.hidden
        for line in source.lines_in(start, end):
            budget.check()
            if not is_cdxj(line):
                continue
            if hidden is not None and hidden(line.split(" ", 1)[0], source.site):
                continue
            yield line

    def _fuzzy(self, found: Iterator[Entry], params: Params) -> Iterator[Entry]:
        nothing = True
        for entry in found:
            nothing = False
            yield entry
        if not nothing or not _to_bool(params.get("allowFuzzy", True)):
            return
        if self.options.paged and params.get("page", "0") != "0":
            return  # the fuzzy query's pages are not this query's
        url, urlkey = params["url"], params["key"]
        fuzzy = _fuzzy_params(url, params)
        rx_cache: dict[re.Pattern[str], str] = {}
        for entry in self._load(fuzzy):
            if _match_general_fuzzy_query(url, urlkey, entry, rx_cache):
                entry["is_fuzzy"] = "1"
                yield entry

    # -- pywb's ZipNum paging, over the files' blocks --------------------------------------------
    def _page_size(self, params: Params) -> int:
        given = params.get("pageSize")
        if not given:
            return DEFAULT_PAGE_SIZE
        try:
            size = int(given)
        except ValueError:
            raise CdxError(f"Invalid value for pageSize= param: {given}") from None
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise CdxError(f"pageSize={size}: a page is 1 to {MAX_PAGE_SIZE} blocks")
        return size

    def _bounds(self, start: str, end: str) -> tuple[list[str], bool]:
        """The keys that cut ``[start, end)`` into blocks, and whether any line lies there."""
        firsts: set[str] = set()
        anything = False
        for source in self.sources():
            if not _overlaps(source, start, end):
                continue
            blocks = source.blocks()
            low = bisect.bisect_right(blocks, start, key=_first)
            high = bisect.bisect_left(blocks, end, key=_first)
            firsts.update(b.first for b in blocks[low:high])
            anything = anything or next(iter(source.lines_in(start, end)), None) is not None
        return [start, *sorted(firsts), end], anything

    def _pages(self, start: str, end: str, params: Params) -> tuple[list[str], int, int]:
        size = self._page_size(params)
        bounds, anything = self._bounds(start, end)
        blocks = len(bounds) - 1 if anything else 0
        return bounds, blocks, -(-blocks // size)

    def _page_number(self, params: Params) -> int:
        try:
            return int(params.get("page", 0))
        except ValueError:
            raise CdxError(f"Invalid value for page= param: {params.get('page')}") from None

    def _page_range(self, start: str, end: str, params: Params) -> tuple[str, str]:
        bounds, blocks, pages = self._pages(start, end, params)
        number = self._page_number(params)
        if pages == 0:
            return start, start
        if not 0 <= number < pages:
            raise CdxError(f"Page {number} invalid: First Page is 0, Last Page is {pages - 1}")
        size = self._page_size(params)
        return bounds[number * size], bounds[min((number + 1) * size, blocks)]

    def _page_lines(self, params: Params, output: str) -> Iterator[str]:
        if not params.get("url"):
            raise CdxError('The "url" param is required')
        start, end = self._range(params)
        if _to_bool(params.get("showNumPages")):
            _, blocks, pages = self._pages(start, end, params)
            info = {"pages": pages, "pageSize": self._page_size(params), "blocks": blocks}
            return iter([json.dumps(info)])
        low, high = self._page_range(start, end, params)
        found: list[Block] = []
        for source in self.sources():
            if low >= high or not _overlaps(source, low, high):
                continue
            listed = source.blocks()
            first = max(bisect.bisect_right(listed, low, key=_first) - 1, 0)
            found.extend(listed[first : bisect.bisect_left(listed, high, key=_first)])
        found.sort(key=lambda b: (b.first, b.part))
        return (_idx_line(block, output) for block in found)


def _first(block: Block) -> str:
    return block.first


def _overlaps(source: Source, start: str, end: str) -> bool:
    bounds = source.bounds()
    return bounds is not None and bounds[1] >= start and bounds[0] < end


def _idx_line(block: Block, output: str) -> str:
    """A block as pywb's IDXObject gives it: ``urlkey timestamp``, part, offset, length, lineno."""
    key = " ".join(block.first.split(" ", 2)[:2])
    if output == "json":
        fields = {
            "urlkey": key,
            "part": block.part,
            "offset": block.offset,
            "length": block.length,
            "lineno": block.number,
        }
        return json.dumps(fields) + "\n"
    return f"{key}\t{block.part}\t{block.offset}\t{block.length}\t{block.number}\n"


def _chunks(lines: Iterable[str]) -> Iterator[bytes]:
    """The lines as UTF-8, a few lines a write."""
    batch: list[str] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line)
        if size >= _CHUNK_BYTES:
            yield "".join(batch).encode("utf-8")
            batch, size = [], 0
    if batch:
        yield "".join(batch).encode("utf-8")


_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _entry(line: str) -> Entry:
    """pywb's CDXObject of a CDXJ line: alias names resolved, non-ASCII URLs %-quoted."""
    urlkey, timestamp, rest = line.split(" ", 2)
    entry: Entry = {"urlkey": urlkey, "timestamp": timestamp}
    data = json.loads(rest)
    if type(data.get("status")) is int:  # pywb's test: not for true or false
        data["status"] = str(data["status"])
    for name, value in data.items():
        name = _ALT_FIELDS.get(name, name)
        if name == "url" and isinstance(value, str) and not value.isascii():
            value = quote(value.encode("utf-8"), safe=":/")
        entry[name] = value
    return entry


def _merge_key(entry: Entry, source: str) -> str:
    return json.dumps(entry)[:-1] + ', "source": ' + json.dumps(source) + "}"


class _MergeKey:
    """``_merge_key`` compared lazily: its start (urlkey and timestamp, as JSON strings, which
    no other such start is a prefix of) decides, the whole JSON only between equals."""

    __slots__ = ("_full", "entry", "head", "source")

    def __init__(self, entry: Entry, source: str) -> None:
        self.entry = entry
        self.source = source
        self.head = _json_string(entry["urlkey"]) + _json_string(entry["timestamp"])
        self._full: str | None = None

    def full(self) -> str:
        if self._full is None:
            self._full = _merge_key(self.entry, self.source)
        return self._full

    def __lt__(self, other: _MergeKey) -> bool:
        if self.head != other.head:
            return self.head < other.head
        return self.full() < other.full()


def search_range(url: str, match_type: str) -> tuple[str, str]:
    """pywb's ``calc_search_range`` on SURT keys: the lines ``start <= line < end``."""
    try:
        key = surt.surt(url)
    except Exception as exc:  # surt raises what its parsers raise; pywb catches them all too
        if url.startswith("urn:"):
            key = url
        else:
            raise CdxError("Invalid Url: " + url) from exc
    if match_type == "exact":
        return key, key + "!"
    if match_type == "prefix":
        if url.endswith("/") and not key.endswith("/"):
            key += "/"
        if url.endswith("?") and not key.endswith("?"):
            key += "?"
        return key, key[:-1] + chr(ord(key[-1]) + 1)
    host = key.split(")/")[0]
    if match_type == "host":
        return host + ")/", host + "*"
    if match_type == "domain":
        return (host + ",", host + "-") if "," not in host else (host + ")/", host + "-")
    raise CdxError("Invalid match_type: " + match_type)


# -- pywb's cdxops: revisits, filter, from/to, collapse, closest, reverse, limit -----------------
def process(entries: Iterable[Entry], params: Params) -> Iterator[Entry]:
    """pywb's ``process_cdx``: each step as it orders them, each lazy as in pywb."""
    found = iter(entries)
    if _to_bool(params.get("resolveRevisits")):
        found = resolve_revisits(found)
    filters = params.get("filter")
    if filters:
        specs = [filters] if isinstance(filters, str) else list(filters)
        if len(specs) > MAX_FILTERS:
            raise CdxError(f"{len(specs)} filters: at most {MAX_FILTERS}")
        for spec in specs:
            if len(spec) > MAX_FILTER_LENGTH:
                raise CdxError(f"a filter of {len(spec)} characters: at most {MAX_FILTER_LENGTH}")
        found = filter_entries(found, specs)
    since = params.get("from") or params.get("from_ts")
    until = params.get("to")
    if since or until:
        found = clamp(found, since, until)
    collapse_time = params.get("collapseTime")
    if collapse_time:
        found = collapse(found, collapse_time)
    closest = params.get("closest")
    reverse = _to_bool(params.get("reverse")) or params.get("sort") == "reverse"
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
    except ValueError as exc:
        raise CdxError.internal(exc) from exc
    if (closest or reverse) and limit > MAX_SORTED:
        if "limit" in params:
            raise CdxError(
                f"limit={limit} with closest or sort=reverse: at most {MAX_SORTED} lines are "
                "sorted (narrow the query, or page it)"
            )
        limit = MAX_SORTED
    if closest:
        return sort_closest(closest, found, limit)
    if reverse:
        return reverse_entries(found, limit)
    if limit:
        return limit_entries(found, limit)
    return found


def resolve_revisits(entries: Iterable[Entry]) -> Iterator[Entry]:
    originals: dict[str, Entry] = {}
    for entry in entries:
        is_revisit = entry.get("mime") == "warc/revisit" or entry.get("filename") == "-"
        digest = entry.get("digest")
        original = None
        if digest:
            original = originals.get(digest)
            if not original and not is_revisit:
                originals[digest] = entry
        if original and is_revisit:
            if "mime" in entry:
                entry["mime"] = original.get("mime", "")
            if "status" in entry:
                entry["status"] = original.get("status", "")
        for field in ("length", "offset", "filename"):
            entry["orig." + field] = original.get(field, "-") if original and is_revisit else "-"
        yield entry


class Filter:
    """pywb's CDXFilter: ``[!][=|~]field:value`` (contains, exact, regex match from the start)."""

    def __init__(self, spec: str) -> None:
        self.invert = spec.startswith("!")
        if self.invert:
            spec = spec[1:]
        self.mode = "contains"
        if spec[:1] in ("=", "~"):
            self.mode = "exact" if spec[0] == "=" else "regex"
            spec = spec[1:]
        field, sep, value = spec.partition(":")
        self.field = _ALT_FIELDS.get(field, field) if sep else ""
        self.value = value if sep else spec
        self.regex: Any = None
        if self.mode == "regex":
            try:
                re.compile(self.value)  # pywb's parser, for pywb's message on a bad one
            except re.error as exc:
                raise CdxError.internal(exc) from exc
            self.regex = _linear_regex(self.value)

    def __call__(self, entry: Mapping[str, Any]) -> bool:
        # No field: pywb matches the line as the JSON it has made of it.
        found = str(entry.get(self.field, "")) if self.field else json.dumps(entry)
        if self.regex is not None:
            matched = self.regex.match(found) is not None
        elif self.mode == "exact":
            matched = found == self.value
        else:
            matched = self.value in found
        return matched != self.invert


def _linear_regex(pattern: str) -> Any:
    """The pattern compiled by RE2, which matches in time linear in the text."""
    if re2 is None:
        raise CdxError("regular expression filters need google-re2, which is not installed")
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise CdxError(
            f"filter regex {pattern!r}: {reason} (only expressions that match in linear time are "
            "taken: RE2 syntax, no backreferences, no lookaround)"
        ) from None


def filter_entries(entries: Iterable[Entry], specs: Sequence[str]) -> Iterator[Entry]:
    filters = [Filter(spec) for spec in specs]
    for entry in entries:
        if all(f(entry) for f in filters):
            yield entry


def clamp(entries: Iterable[Entry], since: str | None, until: str | None) -> Iterator[Entry]:
    if since and len(since) < 14:
        since = pad_timestamp(since, PAD_14_DOWN)
    if until and len(until) < 14:
        until = pad_timestamp(until, PAD_14_UP)
    for entry in entries:
        if since and entry["timestamp"] < since:
            continue
        if until and entry["timestamp"] > until:
            continue
        yield entry


def collapse(entries: Iterable[Entry], length: str) -> Iterator[Entry]:
    """One line per (timestamp prefix of ``length``, status), the first of each run."""
    try:
        timelen = int(length)
    except ValueError as exc:
        raise CdxError.internal(exc) from exc
    last = None
    for entry in entries:
        token = (entry["timestamp"][:timelen], entry.get("status", ""))
        if token != last:
            last = token
            yield entry


def sort_closest(closest: str, entries: Iterable[Entry], limit: int) -> Iterator[Entry]:
    """The ``limit`` lines nearest to ``closest`` in seconds, ties in index order."""
    target = timestamp_to_sec(closest)
    keys: list[int] = []
    nearest: list[Entry] = []
    for entry in entries:
        key = abs(target - timestamp_to_sec(entry["timestamp"]))
        index = bisect.bisect_right(keys, key)
        keys.insert(index, key)
        nearest.insert(index, entry)
        if len(nearest) > limit:
            keys.pop()
            nearest.pop()
    yield from nearest


def reverse_entries(entries: Iterable[Entry], limit: int) -> Iterator[Entry]:
    """The last ``limit`` lines, newest first (pywb: a negative limit is an error here)."""
    try:
        last: deque[Entry] = deque(maxlen=limit)
    except ValueError as exc:
        raise CdxError.internal(exc) from exc
    for entry in entries:
        last.appendleft(entry)
    yield from last


def limit_entries(entries: Iterable[Entry], limit: int) -> Iterator[Entry]:
    # zip takes from the lines first, as pywb's does: a filter's error still shows at limit < 1.
    for entry, _ in zip(entries, range(limit), strict=False):
        yield entry


# -- pywb's catch-all fuzzy rule (rules.yaml: url_prefix '', fuzzy_lookup match '()') ----------
def _fuzzy_params(url: str, params: Params) -> Params:
    """The second query pywb makes when the first finds nothing: the URL up to its query."""
    index = url.find("?")
    if index > 0:
        length = index
        if url[length - 1] == "/":
            length -= 1
        url = url[:length]
    fuzzy: Params = {
        "url": url,
        "matchType": "prefix",
        "filter": ["urlkey:"],
        "is_fuzzy": "1",
        "limit": _FUZZY_LIMIT,
    }
    fuzzy.update((k, v) for k, v in params.items() if k not in _FUZZY_SKIP_PARAMS)
    return fuzzy


def _match_general_fuzzy_query(
    url: str, urlkey: str, entry: Entry, rx_cache: dict[re.Pattern[str], str]
) -> bool:
    """pywb's ``FuzzyMatcher.match_general_fuzzy_query``, step for step (its cache included)."""
    url_no_query = url.split("?", 1)[0]
    ext = os.path.splitext(url_no_query.rsplit("/", 1)[-1])[1][1:]
    if entry.get("status") == "204" and "__pywb_method=options" in entry["urlkey"]:
        return False
    if ext and ext not in _NOT_EXTS:
        check_query = True
    else:  # a mime whose query is noise, or a request with a body: its query counts
        mime = entry.get("mime")
        check_query = bool(
            (mime and mime in _QUERY_MIMES) or entry.get("requestBody") or entry.get("method")
        )
    if check_query and (
        entry["url"] == url_no_query or entry["url"].startswith(url_no_query + "?")
    ):
        return True
    match_urlkey = entry["urlkey"]
    for pattern, replace in _URL_NORMALIZE:
        match_urlkey = pattern.sub(replace, match_urlkey)
        current = rx_cache.get(pattern)
        if not current:
            current = pattern.sub(replace, urlkey)
            rx_cache[pattern] = current
            urlkey = current
        if current == match_urlkey:
            return True
    return False


# -- output --------------------------------------------------------------------------------------
def _json(entry: Mapping[str, Any], fields: Sequence[str] | None) -> str:
    if fields is None:
        return json.dumps({k: v for k, v in entry.items() if not k.startswith("_")}) + "\n"
    return json.dumps({k: entry[k] for k in fields if k in entry}) + "\n"


def _cdxj(entry: Entry, fields: Sequence[str] | None) -> str:
    rest = dict(list(entry.items())[2:])
    return f"{entry['urlkey']} {entry['timestamp']} {_json(rest, fields)}"


def _text(entry: Entry, fields: Sequence[str] | None) -> str:
    names = entry.keys() if fields is None else fields
    return " ".join(str(entry.get(name, "-")) for name in names) + "\n"


def _timemap(entries: Iterable[Entry]) -> Iterator[str]:
    """pywb's ``MementoUtils.make_timemap``: one memento link a line, comma-separated."""
    previous: str | None = None
    for entry in entries:
        if previous is not None:
            yield previous + ",\n"
        url = entry.get("url") or "file://{}:{}:{}".format(
            entry.get("filename"), entry.get("offset"), entry.get("length")
        )
        datetime = timestamp_to_http_date(entry["timestamp"])
        previous = f'<{url}>; rel="memento"; datetime="{datetime}"'
    if previous is not None:
        yield previous + "\n"


_FORMATS: dict[str, Callable[[Entry, Sequence[str] | None], str]] = {
    "cdxj": _cdxj,
    "json": _json,
    "text": _text,
}


def format_lines(
    entries: Iterable[Entry], output: str, fields: Sequence[str] | None
) -> Iterator[str]:
    """The answer's lines in an ``output`` mode (``fields`` do not apply to ``link``)."""
    if output == "link":
        return _timemap(entries)
    line = _FORMATS[output]
    return (line(entry, fields) for entry in entries)
