"""A text's JSON sidecar as the crawl writes it, and as reextract writes it again: one place."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from crawler.text.extract import EXTRACTOR_VERSION, Article, SiteRules, rules_digest
from crawler.text.page import Decoding
from crawler.util import date_precision


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def publication(
    discovery: Sequence[Mapping[str, Any]], article: Article
) -> tuple[str | None, str | None, str | None, list[str]]:
    """The publication date (ISO), as written, where it was read, and the warnings: the
    page's own, else the date the feed or sitemap that listed the article gave (said in a
    warning: it is the channel's word, not the page's)."""
    warnings = list(article.warnings)
    if article.published is not None:
        return _iso(article.published), article.published_text, "page", warnings
    for found in discovery:
        given = found.get("published")
        if not given:
            continue
        try:
            moment = datetime.fromisoformat(str(given).replace("Z", "+00:00"))
        except ValueError:
            continue
        via = str(found.get("via") or "discovery")
        warnings.append(f"published date from the {via} {found.get('source') or ''}".rstrip())
        return moment.isoformat(), str(given), via, warnings
    return None, None, None, warnings


def text_sidecar(
    article: Article,
    text: bytes,
    *,
    url: str,
    request_url: str,
    site: str,
    article_id: str,
    status: int,
    encoding: str,
    discovery: Sequence[Mapping[str, Any]],
    crawl_id: str,
    crawl_time: str | None,
    text_mode: str,
    rules: SiteRules | None,
    decoding: Decoding | None = None,
) -> dict[str, Any]:
    """The sidecar of one text before its capture and version are known (``capture_time``,
    ``payload_digest`` and ``warc`` are None; the caller fills them).

    ``decoding``: how the page's bytes became text (``crawler.text.page.Decoding``): the
    sidecar's ``decoding`` (None when not known) and its warnings. ``quality`` is ``ok``; a
    degenerate text (crawler/text/quality.py) is ``degenerate``, with ``quality_reason``."""
    published, published_text, published_from, warnings = publication(discovery, article)
    if decoding is not None:
        warnings += decoding.warnings()
    return {
        "url": url,
        "request_url": request_url,
        "canonical_url": article.canonical_url,
        "site": site,
        "article_id": article_id,
        "title": article.title,
        "published": published,
        "published_text": published_text,
        "published_precision": date_precision(published_text),
        # page | feed | sitemap | listing: where the publication date was read
        "published_from": published_from,
        "modified": _iso(article.modified),
        "authors": list(article.authors),
        "section": article.section,
        "tags": list(article.tags),
        "language": article.language,
        "lead": article.lead,
        "description": article.description,
        "images": [dict(i) for i in article.images],
        "status": status,
        "encoding": encoding,
        # {name, source: bom|header|meta|detected|fallback, header, meta, replacement_chars,
        # nul_dropped, mojibake, mojibake_reason, repaired, suspect}: which charset read the
        # page, on whose word, at what cost
        "decoding": decoding.record() if decoding is not None else None,
        "crawl_id": crawl_id,
        "crawl_time": crawl_time,
        "capture_time": None,
        "payload_digest": None,
        "warc": None,
        "text_mode": text_mode,
        "text_digest": "sha256:" + hashlib.sha256(text).hexdigest(),
        "text_length": len(text),
        "quality": "ok",
        "extractor": article.extractor,
        "extractor_version": EXTRACTOR_VERSION,
        "rules_digest": rules_digest(rules),
        "warnings": warnings,
        "discovery": list(discovery),
    }
