"""The item a spider yields for an article page; the pipeline extracts and writes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crawler.capture.exchange import CaptureInfo
    from crawler.text.page import Decoding


@dataclass(slots=True)
class ArticlePage:
    """One fetched article page, as the spider saw it: no extraction has happened yet."""

    url: str  # response URL (after redirects)
    site: str  # spider name
    article_id: str  # canonical key within the site (e.g. TDI slug)
    html: str  # decoded document (response.text)
    encoding: str  # response.encoding
    status: int
    request_url: str  # first URL requested, before any redirect
    # Provenance, oldest first: {"via": "feed"|"sitemap"|"listing", "source": url,
    # "published": iso|None, "title": str|None, "lastmod": iso|None}
    discovery: list[dict[str, Any]]
    # The WARC capture of the response, attached by the capture middleware; spiders leave it.
    capture: CaptureInfo | None = None
    # How the bytes became ``html`` (charset, on whose word, U+FFFD, NULs): the sidecar's.
    decoding: Decoding | None = None
