"""Helpers for spider unit tests: mirror pages as Scrapy responses, stats, collected output."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from scrapy import Request, Spider
from scrapy.http import Headers, Response
from scrapy.responsetypes import responsetypes

from crawler.mirror.routes import Route


def site_response(
    routes: dict[str, Route],
    url: str,
    request: Request | None = None,
    *,
    body: bytes | None = None,
) -> Response:
    """The response the mirror would give for ``url``, typed the way Scrapy types it."""
    route = routes[url]
    headers = Headers({"Content-Type": route.content_type or "text/html"})
    data = route.body if body is None else body
    cls = responsetypes.from_args(headers=headers, url=url, body=data)
    return cls(
        url=url,
        status=route.effective_status,
        headers=headers,
        body=data,
        request=request or Request(url),
    )


def stats(spider: Spider) -> dict[str, Any]:
    assert spider.crawler.stats is not None
    return spider.crawler.stats.get_stats()


def requests(results: Iterable[Any]) -> list[Request]:
    out = list(results)
    assert all(isinstance(r, Request) for r in out)
    return out


async def collect(gen: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in gen]
