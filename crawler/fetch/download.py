"""HTTP/1.1 download handler that keeps the response head as received, for the WARC record.

Scrapy's Response keeps neither the reason phrase ("OK", "Not Found", or whatever the server
really sent) nor the header lines as sent: Twisted folds names to its own capitalisation and
groups repeated headers. A WARC response record should carry the real status line and header
lines. This handler is Scrapy's own, with a response parser that also keeps the raw head lines
and an agent that copies them (and the parsed phrase) into the request's meta
(``archive_http_head``, ``archive_http_reason``) before the body is read. It depends on Scrapy
internals of the pinned 2.19 series; with any other layout it is not used (``NotConfigured``)
and the capture falls back to Scrapy's headers and the standard phrase for the status code.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future

from crawler.constants import META_HTTP_HEAD, META_HTTP_REASON
from crawler.fetch.netguard import NetGuard

try:
    from scrapy.core.downloader.handlers import http11 as _http11
    from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler

    _AgentBase: Any = _http11._ScrapyAgent
    _ParserBase: Any = _http11._LenientHTTPClientParser
    _ProtocolBase: Any = _http11._LenientHTTP11ClientProtocol
    _FactoryBase: Any = _http11._LenientHTTP11ClientFactory
    from scrapy.exceptions import ResponseDataLossError as _ResponseDataLossError
    from scrapy.utils._download_handlers import get_dataloss_msg as _get_dataloss_msg
    from scrapy.utils._download_handlers import wrap_twisted_exceptions as _wrap_twisted_exceptions

    _AVAILABLE = True
except (ImportError, AttributeError):  # pragma: no cover - another Scrapy layout
    from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler

    _AgentBase = _ParserBase = _ProtocolBase = _FactoryBase = object
    _AVAILABLE = False

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response


_MAX_HEAD_LINES = 1000  # a head longer than this is not kept raw (the capture falls back)


class _RecordingParser(_ParserBase):  # type: ignore[misc]
    """Scrapy's lenient response parser, also keeping the head's lines as received.

    Only head lines pass through ``lineReceived``: the body is read in raw mode and chunked
    framing by Twisted's transfer decoder, so nothing of the body is kept here.
    """

    def lineReceived(self, line: bytes) -> None:
        lines = self.__dict__.setdefault("_archive_head", [])
        if len(lines) <= _MAX_HEAD_LINES:
            lines.append(line.removesuffix(b"\r"))
        super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        lines = self.__dict__.get("_archive_head")
        if lines and len(lines) <= _MAX_HEAD_LINES and self.response is not None:
            # The last line is the empty one that ends the head.
            self.response._archive_head = tuple(lines[:-1] if not lines[-1] else lines)
        super().allHeadersReceived()


class _RecordingProtocol(_ProtocolBase):  # type: ignore[misc]
    def request(self, request: Any) -> Any:
        d = super().request(request)
        # As Scrapy does for its own parser: the class swap is safe because the parser holds
        # no state of its own but the list it makes on first use.
        self._parser.__class__ = _RecordingParser
        return d


class _RecordingFactory(_FactoryBase):  # type: ignore[misc]
    def buildProtocol(self, addr: Any) -> Any:
        return _RecordingProtocol(self._quiescentCallback)


class _ReasonAgent(_AgentBase):  # type: ignore[misc]
    def _cb_bodyready(self, txresponse: Any, request: Request) -> Any:
        phrase = getattr(txresponse, "phrase", None)
        if isinstance(phrase, bytes):
            request.meta[META_HTTP_REASON] = phrase.decode("latin-1")
        head = getattr(txresponse, "_archive_head", None)
        if head:
            request.meta[META_HTTP_HEAD] = head
        return super()._cb_bodyready(txresponse, request)


class ArchiveHTTP11DownloadHandler(HTTP11DownloadHandler):
    def __init__(self, crawler: Crawler) -> None:
        if not _AVAILABLE:
            raise NotConfigured("this Scrapy version's HTTP/1.1 handler layout is unknown")
        super().__init__(crawler)
        self._pool._factory = _RecordingFactory
        # No connection to private addresses (crawler/fetch/netguard.py), checked before each one.
        self.netguard = NetGuard.from_settings(crawler.settings, crawler.stats)

    async def download_request(self, request: Request) -> Response:
        await self.netguard.check(request)
        # Scrapy 2.19's HTTP11DownloadHandler.download_request, with _ReasonAgent.
        agent = _ReasonAgent(
            contextFactory=self._contextFactory,
            bindAddress=self._bind_address,
            pool=self._pool,
            maxsize=self._default_maxsize,
            warnsize=self._default_warnsize,
            fail_on_dataloss=self._fail_on_dataloss,
            crawler=self._crawler,
            tls_verbose_logging=self._tls_verbose_logging,
        )
        try:
            with _wrap_twisted_exceptions():
                response: Response = await maybe_deferred_to_future(agent.download_request(request))
                return response
        except _ResponseDataLossError:
            if not self._fail_on_dataloss_warned:
                logger.warning(_get_dataloss_msg(request.url))
                self._fail_on_dataloss_warned = True
            raise
