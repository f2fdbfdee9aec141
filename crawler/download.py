"""HTTP/1.1 download handler that keeps the status line's reason phrase for the WARC record.

Scrapy's Response has no place for the reason phrase ("OK", "Not Found", or whatever the
server really sent), and a WARC response record should carry the real status line. This
handler is Scrapy's own, with an agent that copies Twisted's parsed phrase into the request's
meta (``archive_http_reason``) before the body is read. It depends on Scrapy internals of the
pinned 2.19 series; with any other layout it is not used (``NotConfigured``) and the capture
falls back to the standard phrase for the status code.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future

from crawler.constants import META_HTTP_REASON

try:
    from scrapy.core.downloader.handlers import http11 as _http11
    from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler

    _AgentBase: Any = _http11._ScrapyAgent
    from scrapy.exceptions import ResponseDataLossError as _ResponseDataLossError
    from scrapy.utils._download_handlers import get_dataloss_msg as _get_dataloss_msg
    from scrapy.utils._download_handlers import wrap_twisted_exceptions as _wrap_twisted_exceptions

    _AVAILABLE = True
except (ImportError, AttributeError):  # pragma: no cover - another Scrapy layout
    from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler

    _AgentBase = object
    _AVAILABLE = False

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response


class _ReasonAgent(_AgentBase):  # type: ignore[misc]
    def _cb_bodyready(self, txresponse: Any, request: Request) -> Any:
        phrase = getattr(txresponse, "phrase", None)
        if isinstance(phrase, bytes):
            request.meta[META_HTTP_REASON] = phrase.decode("latin-1")
        return super()._cb_bodyready(txresponse, request)


class ArchiveHTTP11DownloadHandler(HTTP11DownloadHandler):
    def __init__(self, crawler: Crawler) -> None:
        if not _AVAILABLE:
            raise NotConfigured("this Scrapy version's HTTP/1.1 handler layout is unknown")
        super().__init__(crawler)

    async def download_request(self, request: Request) -> Response:
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
