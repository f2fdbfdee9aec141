"""Shared base spider: discovery through feeds, sitemaps and listing pages, one item per article."""

from __future__ import annotations

import difflib
import gzip
import logging
import re
import ssl
import struct
import xml.sax
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self

import feedparser
import scrapy
from lxml import etree
from OpenSSL import SSL
from scrapy import signals
from scrapy.core.downloader.handlers.http11 import TunnelError
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.http import HtmlResponse, Request, Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.gz import gunzip, gzip_magic_number
from scrapy.utils.sitemap import Sitemap
from twisted.internet.error import (
    ConnectError,
    ConnectionClosed,
    DNSLookupError,
    TCPTimedOutError,
)
from twisted.internet.error import TimeoutError as TxTimeoutError

from crawler.constants import (
    GONE_STATUSES,
    META_ARTICLE_KEY,
    META_CONDITIONAL,
    META_DISCOVERY,
    META_GONE,
    META_RENDER,
    META_RENDER_READY,
    META_SOURCE,
    META_WIRE_PAYLOAD,
    STATS_ARTICLES_DISCOVERED,
    STATS_ARTICLES_REQUESTED,
    STATS_SKIPPED,
    STATS_SOURCES_REQUESTED,
)
from crawler.crawl.items import ArticlePage
from crawler.crawl.report import FailedUrl
from crawler.fetch.archive import ReplayMiss
from crawler.fetch.netguard import ForbiddenAddressError
from crawler.text.extract import parse_datetime
from crawler.text.page import Decoding, payload_problem, settle_decoding

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from scrapy.crawler import Crawler
    from twisted.python.failure import Failure

    from crawler.text.extract import SiteRules

logger = logging.getLogger(__name__)

# Feeds, sitemaps and listings are asked conditionally (the catalog keeps their validators);
# a 304 reaches the callback instead of being dropped as an HTTP error.
_CONDITIONAL: dict[str, Any] = {META_CONDITIONAL: True, "handle_httpstatus_list": [304]}

# A download exception's cause, the first that matches anywhere in its chain (``__cause__``,
# Twisted's wrapped ``reasons``): a TLS error under a lost connection is a TLS error.
_DOWNLOAD_CAUSES: tuple[tuple[str, tuple[type[BaseException], ...]], ...] = (
    ("tls", (SSL.Error, ssl.SSLError)),
    ("timeout", (DownloadTimeoutError, TxTimeoutError, TCPTimedOutError, TimeoutError)),
    ("dns", (CannotResolveHostError, DNSLookupError)),
    ("forbidden-address", (ForbiddenAddressError,)),
    ("truncated", (ResponseDataLossError,)),
    ("proxy", (TunnelError,)),  # the proxy refused the CONNECT tunnel
    (
        "connection",
        (DownloadConnectionRefusedError, ConnectError, ConnectionClosed, ConnectionError),
    ),
    ("decoding", (EOFError, zlib.error, gzip.BadGzipFile)),  # a Content-Encoding undone badly
    ("connection", (DownloadFailedError,)),
)
# IgnoreRequest subclasses of the fetch layer that import Chromium's driver: known by name.
_IGNORED_BY_NAME = {"ChallengeError": "challenge", "RenderTimeoutError": "timeout"}
# Plain IgnoreRequest messages that are failures (offsite and the like are not).
_IGNORED_BY_MESSAGE = (
    ("max redirections reached", "redirect-loop"),
    ("exceeded DOWNLOAD_MAXSIZE", "too-large"),
    # The egress proxy's words for a browser request whose upstream TLS failed.
    ("CERTIFICATE_VERIFY_FAILED", "tls"),
    (": TLS with ", "tls"),
    ("not rendered", "render"),
    ("made no navigation request", "render"),
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it was raised from, and the failures Twisted wrapped in it."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        for reason in getattr(current, "reasons", None) or ():
            if isinstance(value := getattr(reason, "value", None), BaseException):
                todo.append(value)


def _describe(exc: BaseException) -> str:
    name = type(exc).__qualname__
    if name == "Error":  # OpenSSL.SSL.Error
        name = f"{type(exc).__module__}.{name}"
    text = str(exc)
    return f"{name}: {text}" if text else name


def download_failure(exc: BaseException, *, source: bool) -> tuple[str, str] | None:
    """(cause, error) of a request that got no response, or None when it is no failure.

    ``source``: a feed, sitemap or listing request, for which robots.txt forbidding it is a
    failure (an article it forbids is the site's choice, counted as skipped).
    """
    if isinstance(exc, IgnoreRequest):
        message = str(exc)
        if isinstance(exc, ReplayMiss):  # a replay: not in the archive, or unreadable there
            return exc.cause, message
        for klass in type(exc).__mro__:
            if cause := _IGNORED_BY_NAME.get(klass.__name__):
                return cause, _describe(exc)
        if isinstance(exc, ForbiddenAddressError):
            return "forbidden-address", message
        if message.startswith("Forbidden by robots.txt"):
            return ("robots", message) if source else None
        for needle, cause in _IGNORED_BY_MESSAGE:
            if needle in message:
                return cause, message
        return None
    chain = list(_chain(exc))
    for cause, types in _DOWNLOAD_CAUSES:
        for link in chain:
            if isinstance(link, types):
                return cause, _describe(link)
    return "download-error", _describe(exc)


_BODY_CLASS_RE = re.compile(
    r"""<body\b[^>]*?\sclass\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class CrawlArgs:
    """Spider arguments (``scrapy crawl site -a name=value``), parsed and validated once.

    ``since``/``until`` (dates or ISO times, inclusive) bound the articles requested by the
    dates their feed or sitemap gives; without ``since`` the crawl's discovery window applies
    (``ARCHIVE_DISCOVERY_WINDOW_DAYS``, 30 days): ``since=2020-01-01`` backfills.
    ``refresh=1`` fetches articles the catalog already has, and those gone (404, 410).
    """

    max_articles: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    refresh: bool = False

    NAMES: ClassVar[tuple[str, ...]] = ("max_articles", "since", "until", "refresh")

    @classmethod
    def check(cls, args: Mapping[str, object], own: Iterable[str] = ()) -> CrawlArgs:
        """Parse ``-a`` arguments by name: an unknown name is an error that suggests one.

        ``own``: arguments a spider takes besides these (the class attributes it declares).
        """
        known = set(own)
        for name in args:
            if name not in cls.NAMES and name not in known:
                close = difflib.get_close_matches(name, cls.NAMES, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(
                    f"unknown spider argument {name!r}{hint}; "
                    f"the arguments are {', '.join(cls.NAMES)}"
                )
        return cls.parse(**{k: v for k, v in args.items() if k in cls.NAMES})

    @classmethod
    def parse(
        cls,
        *,
        max_articles: object = None,
        since: object = None,
        until: object = None,
        refresh: object = None,
    ) -> CrawlArgs:
        start = _arg_time("since", since)
        end = _arg_time("until", until, end_of_day=True)
        if start is not None and end is not None and start > end:
            raise ValueError(f"since ({since}) is after until ({until})")
        return cls(
            max_articles=_positive_int("max_articles", max_articles),
            since=start,
            until=end,
            refresh=_flag("refresh", refresh),
        )


def _arg_time(name: str, value: object, *, end_of_day: bool = False) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{name} must be a date (2025-06-01) or an ISO time, got {value!r}"
            ) from None
        if end_of_day and len(text) == 10:
            # A date as the end of a range means the whole day.
            moment += timedelta(days=1) - timedelta(microseconds=1)
    else:
        raise ValueError(f"{name} must be a date (2025-06-01) or an ISO time, got {value!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _flag(name: str, value: object) -> bool:
    if value is None or value == "" or value is False:
        return False
    if value is True:
        return True
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _positive_int(name: str, value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        number = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def body_classes(response: Response) -> frozenset[str]:
    """Class names on the page's <body> tag, found without parsing the whole document.

    CMS templates mark the page type there (WordPress: ``single-post``, ``category``, ``home``),
    and a regex over the text costs far less than a second parse of an article page.
    """
    text = response.text
    start = text.find("<body")
    if start < 0:
        start = text.lower().find("<body")
    match = _BODY_CLASS_RE.match(text, start) if start >= 0 else None
    if match is None:
        return frozenset()
    return frozenset((match.group(1) or match.group(2) or match.group(3) or "").split())


def page_text(response: TextResponse) -> tuple[str, str]:
    """The page as text, and the encoding it was read in (:func:`page_decoding`)."""
    text, decoding = page_decoding(response)
    return text, decoding.name


def page_decoding(response: TextResponse) -> tuple[str, Decoding]:
    """The page as text, and how it was decoded (``crawler.text.page.settle_decoding``).

    Scrapy's order (BOM, HTTP charset, ``<meta charset>``, detection), except that a charset
    the body is not valid in is a server's mistake (Arabic windows-1256 bytes sent as
    ``charset=utf-8``): the page is then read in the next candidate the bytes are valid in,
    instead of becoming U+FFFD. A label the bytes cannot disprove (the same bytes sent as
    ``iso-8859-1``) is followed, as browsers do, and marked as mojibake when it reads as such.
    UTF-8 bytes under a one-byte label are UTF-8; NUL characters are dropped and counted. The
    WARC keeps the bytes either way.
    """
    content_type = response.headers.get("Content-Type")
    return settle_decoding(
        response.body,
        response.text,
        response.encoding,
        content_type.decode("latin-1") if content_type else None,
    )


def _iso(value: str | None) -> str | None:
    if not value:
        return None
    parsed, _ = parse_datetime(value)
    return parsed.isoformat() if parsed else None


def _add_discovery(pending: list[dict[str, Any]], discovery: dict[str, Any]) -> None:
    """One entry per (channel, source): a page linking an article twice (a thumbnail, then the
    headline) fills the fields the first link lacked instead of adding a second entry."""
    for known in pending:
        if known.get("via") == discovery.get("via") and known.get("source") == discovery.get(
            "source"
        ):
            for name, value in discovery.items():
                if known.get(name) is None and value is not None:
                    known[name] = value
            return
    pending.append(discovery)


def _first_url(response: Response) -> str:
    """The URL first requested for this response, before any redirect."""
    redirects = response.meta.get("redirect_urls")
    if redirects:
        return str(redirects[0])
    return response.request.url if response.request is not None else response.url


class _NewsSitemap(Sitemap):
    """Scrapy's safe sitemap reader, plus the nested Google News fields it would flatten away.

    Hooks a private method of Scrapy's class; the news-sitemap test fails if that changes.
    """

    __slots__ = ()

    def _process_sitemap_element(self, elem: Any) -> dict[str, Any] | None:
        news: dict[str, str] = {}
        for child in elem:
            if self._get_tag_name(child) == "news":
                for field in child.iter():
                    name = self._get_tag_name(field)
                    if name in ("publication_date", "title") and field.text and field.text.strip():
                        news[name] = field.text.strip()
        entry = super()._process_sitemap_element(elem)
        if entry is not None and news:
            entry["news"] = news
        return entry


class NewsSpider(scrapy.Spider):
    """Base of every site spider: a site module sets the class attributes and ``article_key``.

    Discovery requests go to ``feeds`` (RSS/Atom), ``sitemaps`` (indexes followed where a child
    URL matches ``sitemap_follow``; other index entries that are article URLs are requested as
    articles) and ``listings`` (``listing_links`` followed, ``listing_next`` paginated up to
    ``listing_max_pages``). Every URL for which ``article_key`` gives a key is requested once per
    crawl, whatever host or slug it came under; later discoveries of the same key join its
    provenance (one entry per channel and source) while the request is pending.
    """

    def __repr__(self) -> str:  # Scrapy names a spider by its repr in log lines: no address
        return f"<{type(self).__name__} {self.name!r}>"

    feeds: ClassVar[tuple[str, ...]] = ()
    sitemaps: ClassVar[tuple[str, ...]] = ()
    sitemap_follow: ClassVar[tuple[str, ...]] = ()  # regexes; empty follows every child sitemap
    # Sitemap indexes below the start sitemaps followed at most this deep: a site's index that
    # points at ever new indexes cannot keep a crawl going.
    sitemap_max_depth: ClassVar[int] = 4
    listings: ClassVar[tuple[str, ...]] = ()
    listing_links: ClassVar[str] = "a[href]"
    listing_next: ClassVar[str | None] = None
    listing_max_pages: ClassVar[int] = 1
    # True: listing and article pages are rendered in Chromium (crawler/fetch/render.py).
    render_pages: ClassVar[bool] = False
    # With render_pages: a CSS selector that matches once the page's scripts built it (waited
    # for up to the page timeout); None = network quiet is enough.
    render_ready: ClassVar[str | None] = None
    rules: ClassVar[SiteRules]

    def __init__(
        self,
        name: str | None = None,
        *,
        max_articles: object = None,
        since: object = None,
        until: object = None,
        refresh: object = None,
        **kwargs: Any,
    ) -> None:
        # A misspelt argument (-a max_article=3) would otherwise be set as an attribute and
        # ignored: an error naming the arguments there are. A spider's own arguments are the
        # class attributes it declares (``urls: str = ""``).
        CrawlArgs.check({k: None for k in kwargs if not hasattr(type(self), k)})
        super().__init__(name, **kwargs)
        self.args = CrawlArgs.parse(
            max_articles=max_articles, since=since, until=until, refresh=refresh
        )
        # From the archive's catalog, through ``use_catalog`` (spiders never touch it): False
        # for an article key already archived and not due for a revision.
        self.article_wanted: Callable[[str], bool] | None = None
        # (key, url) of archived articles due for a revision (an age passed since their first
        # capture), requested at start.
        self.revisions: list[tuple[str, str]] = []
        # Article keys whose last answer was 404 or 410: True while not asked again (skipped
        # as "gone"), False when asked again now (still gone, no failure of the site).
        self.gone: Mapping[str, bool] = {}
        # Each failed URL (a source, an article request or page), given when the crawl opens
        # (the crawl report lists them); None: counted and logged only.
        self.on_failure: Callable[[FailedUrl], None] | None = None
        # The lower bound of discovery dates; from_crawler applies the default window.
        self.window_start: datetime | None = self.args.since
        # One bound callback for every article request: Scrapy caches its check of a generator
        # callback (an AST parse of its source, ~3 ms) weakly by the callback object, so a new
        # bound method per request was parsed again each time the last one had gone.
        self._parse_article = self.parse_article
        self._follow = [re.compile(p) for p in self.sitemap_follow]
        self._seen: set[str] = set()
        self._archived: set[str] = set()  # keys skipped as already archived (counted once)
        self._gone: set[str] = set()  # keys skipped as gone (counted once)
        self._outside: set[str] = set()  # keys skipped as outside since/until (counted once)
        self._discovered: set[str] = set()
        # Discovery lists of requests not answered yet; the same list object rides in the
        # request meta, so provenance added here reaches the item.
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._sources: set[str] = set()  # feed, sitemap and listing URLs requested
        self._limit_logged = False
        # Why this crawl does not run (the site's lease is another crawl's), set at open.
        self.crawl_refused: str | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.request_dropped, signal=signals.request_dropped)
        crawler.signals.connect(spider.keep_wire_payload, signal=signals.response_downloaded)
        days = crawler.settings.getint("ARCHIVE_DISCOVERY_WINDOW_DAYS", 30)
        if spider.window_start is None and days > 0:
            spider.window_start = datetime.now(UTC) - timedelta(days=days)
        return spider

    def use_catalog(
        self,
        wanted: Callable[[str], bool],
        revisions: list[tuple[str, str]],
        gone: Mapping[str, bool] | None = None,
    ) -> None:
        """What the archive knows, given when the crawl opens: which article keys to fetch,
        the archived articles due for a revision (requested first), and the keys whose last
        answer was 404 or 410 (True: not to be asked again yet)."""
        self.article_wanted = wanted
        self.revisions = revisions
        self.gone = gone or {}

    # ------------------------------------------------------------------ site hooks

    def article_key(self, url: str) -> str | None:
        """The article's canonical key within the site, or None when ``url`` is no article."""
        raise NotImplementedError(f"{type(self).__name__} must define article_key()")

    def is_article_page(self, response: Response) -> bool:
        """Whether a fetched page is an article (override to reject pages sharing the URL shape)."""
        return True

    # ------------------------------------------------------------------ discovery

    async def start(self) -> AsyncIterator[Any]:
        if self.crawl_refused is not None:  # another crawl holds the site's lease
            return
        # Zero discovered is a finding (the site stopped yielding): the counts exist from here.
        stats = self.crawler.stats
        for name in (STATS_ARTICLES_DISCOVERED, STATS_SOURCES_REQUESTED, STATS_ARTICLES_REQUESTED):
            stats.set_value(name, 0)
        sources = [
            *((url, "feed", self.parse_feed, _CONDITIONAL) for url in self.feeds),
            *((url, "sitemap", self.parse_sitemap, _CONDITIONAL) for url in self.sitemaps),
        ]
        for url, kind, callback, meta in sources:
            for request in self._source_request(url, kind, callback, meta):
                yield request
        for url in self.listings:
            for request in self._source_request(
                url, "listing", self.parse_listing, self._page_meta(_CONDITIONAL), page=1
            ):
                yield request
        # Articles due for a revision are fetched whether or not a feed still lists them.
        for key, url in self.revisions:
            if self.article_key(url) == key:
                for request in self._article_request(url, {"via": "revision", "source": url}):
                    yield request

    def _not_modified(self, response: Response) -> bool:
        """A 304 to a conditional request: the source is as last time, nothing new in it."""
        if response.status != 304:
            return False
        self._count_skip("not-modified")
        logger.info("Not modified since the last crawl: %s", response.url, extra={"spider": self})
        return True

    def parse_feed(self, response: Response) -> Iterator[Request]:
        if self._not_modified(response):
            return
        headers = {"content-location": response.url}
        if content_type := response.headers.get(b"Content-Type"):
            headers["content-type"] = content_type.decode("latin-1")
        try:
            # Bytes, never a str: feedparser fetches a str that looks like a URL.
            parsed = feedparser.parse(response.body, response_headers=headers)
        except (ValueError, LookupError, xml.sax.SAXException) as exc:
            self._bad_source("bad-feed", response, repr(exc))
            return
        linked = [
            (entry, link.strip())
            for entry in parsed.entries
            if (link := entry.get("link") or (entry.get("guidislink") and entry.get("id")))
            and link.strip()
        ]
        if not linked:
            if parsed.bozo or not parsed.get("version"):
                self._bad_source("bad-feed", response, repr(parsed.get("bozo_exception")))
            else:
                logger.info("Feed %s has no entries", response.url, extra={"spider": self})
            return
        if parsed.bozo:
            logger.warning(
                "Feed %s is malformed (%r); using its %d readable entries",
                response.url,
                parsed.get("bozo_exception"),
                len(linked),
                extra={"spider": self},
            )
        for entry, link in linked:
            yield from self._article_request(
                response.urljoin(link),
                {
                    "via": "feed",
                    "source": response.url,
                    "published": _iso(entry.get("published")),
                    "title": entry.get("title") or None,
                    # dict.get: feedparser's own get() maps a missing "updated" to "published", with
                    # a DeprecationWarning.
                    "lastmod": _iso(dict.get(entry, "updated")),
                },
            )

    def parse_sitemap(self, response: Response, depth: int = 0) -> Iterator[Request]:
        if self._not_modified(response):
            return
        body = self._sitemap_body(response)
        if body is None:
            return
        entries: list[dict[str, Any]] = []
        try:
            sitemap = _NewsSitemap(body)
            if sitemap.type not in ("urlset", "sitemapindex"):
                self._bad_source("bad-sitemap", response, f"root element {sitemap.type!r}")
                return
            entries.extend(sitemap)
        except StopIteration:
            # iterparse found no element at all (text that is not XML)
            self._bad_source("bad-sitemap", response, "no XML element")
            return
        except etree.XMLSyntaxError as exc:
            # A truncated sitemap still gives the entries read before the break.
            self._bad_source("bad-sitemap", response, str(exc))
            if not entries:
                return
        if sitemap.type == "sitemapindex":
            for entry in entries:
                loc = response.urljoin(entry["loc"])
                if not self._follow or any(p.search(loc) for p in self._follow):
                    if depth >= self.sitemap_max_depth:
                        self._bad_source("sitemap-too-deep", response, f"not following {loc}")
                        continue
                    yield from self._source_request(
                        loc, "sitemap", self.parse_sitemap, {}, depth=depth + 1
                    )
                elif self.article_key(loc) is not None:
                    # Some indexes list article URLs beside their child sitemaps.
                    yield from self._article_request(loc, self._sitemap_discovery(response, entry))
            return
        for entry in entries:
            yield from self._article_request(
                response.urljoin(entry["loc"]), self._sitemap_discovery(response, entry)
            )

    @staticmethod
    def _sitemap_discovery(response: Response, entry: dict[str, Any]) -> dict[str, Any]:
        news = entry.get("news", {})
        return {
            "via": "sitemap",
            "source": response.url,
            "published": _iso(news.get("publication_date")),
            "title": news.get("title"),
            "lastmod": _iso(entry.get("lastmod")),
        }

    def parse_listing(self, response: Response, page: int = 1) -> Iterator[Request]:
        if self._not_modified(response):
            return
        if not isinstance(response, TextResponse):
            self._bad_source("bad-listing", response, "not a text response")
            return
        for link in response.css(self.listing_links):
            href = link.attrib.get("href")
            if not href:
                continue
            title = " ".join(" ".join(link.css("::text").getall()).split()) or None
            yield from self._article_request(
                response.urljoin(href),
                {
                    "via": "listing",
                    "source": response.url,
                    "published": None,
                    "title": title,
                    "lastmod": None,
                },
            )
        if not self.listing_next or page >= self.listing_max_pages:
            return
        if href := response.css(self.listing_next).attrib.get("href"):
            yield from self._source_request(
                response.urljoin(href),
                "listing",
                self.parse_listing,
                self._page_meta({}),
                page=page + 1,
            )

    def _source_request(
        self,
        url: str,
        kind: str,
        callback: Callable[..., Any],
        meta: Mapping[str, Any],
        **cb_kwargs: Any,
    ) -> Iterator[Request]:
        """A feed, sitemap or listing request, once per URL: counted, marked as a source."""
        if url in self._sources:
            return
        self._sources.add(url)
        self._inc(STATS_SOURCES_REQUESTED)
        yield Request(
            url,
            callback=callback,
            errback=self.request_failed,
            cb_kwargs=cb_kwargs,
            meta={**meta, META_SOURCE: kind},
        )

    def _sitemap_body(self, response: Response) -> bytes | None:
        if not gzip_magic_number(response):
            return response.body
        max_size = response.meta.get("download_maxsize", self.settings.getint("DOWNLOAD_MAXSIZE"))
        try:
            return gunzip(response.body, max_size=max_size)
        except (OSError, EOFError, struct.error, zlib.error, ValueError) as exc:
            # ValueError covers Scrapy's "decompressed size over DOWNLOAD_MAXSIZE".
            self._bad_source("bad-sitemap", response, repr(exc))
            return None

    def _article_request(self, url: str, discovery: dict[str, Any]) -> Iterator[Request]:
        key = self.article_key(url)
        if key is None:
            return
        if key not in self._discovered:
            # Site health: how many distinct articles the feeds, sitemaps and listings gave.
            self._discovered.add(key)
            self.crawler.stats.inc_value(STATS_ARTICLES_DISCOVERED)
        if key in self._seen:
            if (pending := self._pending.get(key)) is not None:
                _add_discovery(pending, discovery)
            return
        if not self._in_window(discovery):
            if key not in self._outside:  # counted once per article, as discovered is
                self._outside.add(key)
                self._count_skip("outside-window")
            return
        resting = self.gone.get(key)  # None: not gone at its last answer
        if resting and not self.args.refresh:
            # A dead link the feed or sitemap still lists: asked again after its recheck.
            if key not in self._gone:
                self._gone.add(key)
                self._count_skip("gone")
            return
        if (
            not self.args.refresh
            and self.article_wanted is not None
            and not self.article_wanted(key)
        ):
            # Archived already: neither fetched nor counted against max_articles.
            if key not in self._archived:
                self._archived.add(key)
                self._count_skip("already-archived")
            return
        limit = self.args.max_articles
        if limit is not None and len(self._seen) >= limit:
            self._count_skip("max-articles")
            if not self._limit_logged:
                self._limit_logged = True
                logger.info(
                    "max_articles=%d reached; further articles are not requested",
                    limit,
                    extra={"spider": self},
                )
            return
        self._seen.add(key)
        provenance = self._pending[key] = [discovery]
        self._inc(STATS_ARTICLES_REQUESTED)
        meta: dict[str, Any] = {META_DISCOVERY: provenance, META_ARTICLE_KEY: key}
        if resting is not None:
            meta[META_GONE] = True
        yield Request(
            url,
            callback=self._parse_article,
            errback=self.request_failed,
            meta=self._page_meta(meta),
        )

    def _page_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The meta of a listing or article request: asks for rendering where the site needs it."""
        if not self.render_pages:
            return dict(meta)
        return {**meta, META_RENDER: True, META_RENDER_READY: self.render_ready}

    def _in_window(self, discovery: dict[str, Any]) -> bool:
        """Whether the date the feed or sitemap gave is inside since/until (no date: yes)."""
        given = discovery.get("published") or discovery.get("lastmod")
        if not given or (self.window_start is None and self.args.until is None):
            return True
        try:
            moment = datetime.fromisoformat(str(given).replace("Z", "+00:00"))
        except ValueError:
            return True
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if self.window_start is not None and moment < self.window_start:
            return False
        return self.args.until is None or moment <= self.args.until

    # ------------------------------------------------------------------ articles

    def keep_wire_payload(self, response: Response, request: Request) -> None:
        """An article's payload as received (``response_downloaded``: before Scrapy undoes its
        content coding), kept in its meta until ``parse_article`` checks it is whole."""
        meta = request.meta
        if META_ARTICLE_KEY not in meta:
            return
        headers = response.headers
        codings = headers.getlist("Content-Encoding")
        length = None if b"Transfer-Encoding" in headers else headers.get("Content-Length")
        if codings or length is not None:
            meta[META_WIRE_PAYLOAD] = (
                response.body,
                [c.decode("latin-1") for c in codings],
                length.decode("latin-1") if length is not None else None,
            )
        else:  # a redirect before carried the meta: not this response's
            meta.pop(META_WIRE_PAYLOAD, None)

    def parse_article(self, response: Response) -> Iterator[ArticlePage]:
        key: str | None = response.meta.get(META_ARTICLE_KEY)
        discovery = (self._pending.pop(key, None) if key else None) or response.meta.get(
            META_DISCOVERY, []
        )
        # A redirect to a renamed permalink gives the key of the page actually archived.
        final_key = self.article_key(response.url) or key
        if final_key is None:
            self._skip_page("not-article", response)
            return
        if response.status != 200:
            self._skip_page("http-status", response)
            return
        if "dataloss" in response.flags or "partial" in response.flags:
            # Archived in the WARC (marked truncated), but part of an article is no article text.
            self._skip_page("truncated", response)
            return
        wire = response.meta.pop(META_WIRE_PAYLOAD, None)
        if wire is not None and "rendered" not in response.flags:
            # A content coding that stops short (Scrapy keeps what came out: a headline and a
            # date) or a body shorter than its Content-Length: archived, never a text.
            payload, codings, length = wire
            problem = payload_problem(
                payload, codings, decoded=response.body, content_length=length
            )
            if problem is not None:
                self._skip_page(problem[0], response, error=problem[1])
                return
        if not isinstance(response, HtmlResponse):
            self._skip_page("not-html", response)
            return
        if not self.is_article_page(response):
            self._skip_page("not-article", response)
            return
        html, decoding = page_decoding(response)
        yield ArticlePage(
            url=response.url,
            site=self.name,
            article_id=final_key,
            html=html,
            encoding=decoding.name,
            decoding=decoding,
            status=response.status,
            request_url=_first_url(response),
            discovery=list(discovery),
        )

    # ------------------------------------------------------------------ accounting

    def request_failed(self, failure: Failure) -> None:
        """A request that got no usable response: a counted, logged skip, never an exception."""
        request = getattr(failure, "request", None)
        if isinstance(request, Request):
            self._forget(request)
        exc = failure.value
        if isinstance(exc, HttpError):
            self._skip_page("http-status", exc.response)
            return
        reason = f"download-error/{type(exc).__name__}"
        self._count_skip(reason)
        url = request.url if isinstance(request, Request) else "a request"
        meta = request.meta if isinstance(request, Request) else {}
        found = None if exc is None else download_failure(exc, source=bool(meta.get(META_SOURCE)))
        if found is None:  # offsite, an article robots.txt forbids: the crawl's own choice
            logger.info(
                "Skipped %s (%s): %s",
                url,
                reason,
                failure.getErrorMessage(),
                extra={"spider": self},
            )
            return
        cause, error = found
        attempts = _attempts(meta)
        logger.warning(
            "Skipped %s (%s): %s%s: %s",
            url,
            reason,
            cause,
            _after(attempts),
            error,
            extra={"spider": self},
        )
        self._failed(url, meta, cause, error=error, attempts=attempts)

    def request_dropped(self, request: Request) -> None:
        """A redirect back to a URL of its own chain is dropped by the duplicate filter."""
        redirects = request.meta.get("redirect_urls") or []
        if request.url not in redirects:
            return
        self._forget(request)
        self._count_skip("redirect-loop")
        chain = " -> ".join([*redirects, request.url])
        logger.warning(
            "Skipped %s (redirect-loop): %s",
            redirects[0],
            chain,
            extra={"spider": self},
        )
        self._failed(
            str(redirects[0]),
            request.meta,
            "redirect-loop",
            error=chain,
            attempts=_attempts(request.meta),
        )

    def _forget(self, request: Request) -> None:
        key = request.meta.get(META_ARTICLE_KEY)
        if key:
            self._pending.pop(key, None)

    def _inc(self, name: str) -> None:
        crawler = getattr(self, "crawler", None)
        if crawler is not None and crawler.stats is not None:
            crawler.stats.inc_value(name)

    def _count_skip(self, reason: str) -> None:
        self._inc(STATS_SKIPPED.format(reason=reason))

    def _failed(
        self,
        url: str,
        meta: Mapping[str, Any],
        cause: str,
        *,
        stage: str | None = None,
        status: int | None = None,
        error: str = "",
        attempts: int = 1,
    ) -> None:
        """Hand a failed URL to the crawl (``on_failure``): a source fails at discovery,
        any other request at fetch unless ``stage`` says where."""
        if self.on_failure is None:
            return
        if stage is None:
            stage = "discovery" if meta.get(META_SOURCE) else "fetch"
        # Gone at its last answer and still: listed, but no sign that the site broke.
        gone = bool(meta.get(META_GONE)) and status in GONE_STATUSES
        self.on_failure(FailedUrl(url, stage, cause, status, error, attempts, gone=gone))

    def _skip_page(self, reason: str, response: Response, error: str = "") -> None:
        self._count_skip(reason)
        request = response.request
        meta: Mapping[str, Any] = request.meta if request is not None else {}
        attempts = _attempts(meta)
        # 304: not modified since the last crawl, which is no failure.
        failed = response.status != 304
        logger.log(
            logging.WARNING if failed else logging.INFO,
            "Skipped %s (%s, HTTP %d)%s%s",
            response.url,
            reason,
            response.status,
            _after(attempts),
            f": {error}" if error else "",
            extra={"spider": self},
        )
        if not failed:
            return
        if reason == "http-status":
            self._failed(
                response.url,
                meta,
                f"http-{response.status}",
                status=response.status,
                error=f"HTTP {response.status}",
                attempts=attempts,
            )
        else:
            self._failed(
                response.url,
                meta,
                reason,
                stage="discovery" if meta.get(META_SOURCE) else "parse",
                status=response.status,
                error=error,
                attempts=attempts,
            )

    def _bad_source(self, reason: str, response: Response, detail: str) -> None:
        self._count_skip(reason)
        logger.warning(
            "Skipped %s %s: %s",
            reason.removeprefix("bad-"),
            response.url,
            detail,
            extra={"spider": self},
        )
        if reason.startswith("bad-"):  # not sitemap-too-deep: a limit, the index was read
            meta = response.request.meta if response.request is not None else {}
            self._failed(
                response.url,
                {**meta, META_SOURCE: meta.get(META_SOURCE) or reason.removeprefix("bad-")},
                "parse",
                status=response.status,
                error=detail,
                attempts=_attempts(meta),
            )


def _attempts(meta: Mapping[str, Any]) -> int:
    """How many times a request was sent: retries included."""
    return int(meta.get("retry_times", 0)) + 1


def _after(attempts: int) -> str:
    return f" after {attempts} attempts" if attempts > 1 else ""
