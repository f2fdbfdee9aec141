"""An archived HTTP payload as the crawl's spider saw it: content coding undone, then decoded.

Pure functions of bytes and header values, so text remade from a WARC record (reextract) is
made from the very string the crawl extracted from. They follow Scrapy 2.19 step by step:
``HttpCompressionMiddleware`` (the codings it accepts, undone last first, stopping at one it
does not know), ``TextResponse.encoding`` and ``.text`` (BOM, the HTTP charset, ``<meta
charset>``, then ASCII, UTF-8 or statistical detection), and the spider's ``page_text`` (a
charset the bytes are not valid in is a server's mistake: the next candidate they are valid in
is taken). ``tests/test_reextract.py`` holds them to Scrapy's own result.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Sequence
from typing import Final

from charset_normalizer import from_bytes
from w3lib.encoding import (
    html_body_declared_encoding,
    html_to_unicode,
    http_content_type_encoding,
    read_bom,
    resolve_encoding,
)

from crawler.text.extract import detect_encoding

SUPPORTED_CODINGS: Final = frozenset({"gzip", "x-gzip", "deflate", "br", "zstd"})
_CHUNK: Final = 64 * 1024
DEFAULT_MAX_SIZE: Final = 1024 * 1024 * 1024  # Scrapy's DOWNLOAD_MAXSIZE


class ContentCodingError(ValueError):
    """A payload its Content-Encoding does not undo (or that inflates past the limit)."""


def _too_big(size: int, limit: int) -> None:
    if limit and size > limit:
        raise ContentCodingError(f"inflates past {limit} bytes")


def _gunzip(data: bytes, limit: int) -> bytes:
    # As Scrapy's gunzip: a broken tail after some output keeps what came out.
    source = gzip.GzipFile(fileobj=io.BytesIO(data))
    out = io.BytesIO()
    while True:
        try:
            chunk = source.read1(_CHUNK)
        except (OSError, EOFError, struct.error) as exc:
            if out.tell():
                break
            raise ContentCodingError(f"gzip: {exc}") from exc
        if not chunk:
            break
        out.write(chunk)
        _too_big(out.tell(), limit)
    return out.getvalue()


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        first = inflater.decompress(data, _CHUNK)
    except zlib.error:
        # Raw deflate, as some servers send it.
        inflater = zlib.decompressobj(wbits=-15)
        try:
            first = inflater.decompress(data, _CHUNK)
        except zlib.error as exc:
            raise ContentCodingError(f"deflate: {exc}") from exc
    out = io.BytesIO()
    out.write(first)
    try:
        while inflater.unconsumed_tail and not inflater.eof:
            out.write(inflater.decompress(inflater.unconsumed_tail, _CHUNK))
            _too_big(out.tell(), limit)
    except zlib.error as exc:
        raise ContentCodingError(f"deflate: {exc}") from exc
    return out.getvalue()


def _unbrotli(data: bytes, limit: int) -> bytes:
    import brotli

    try:
        inflater = brotli.Decompressor()
        out = io.BytesIO()
        out.write(inflater.process(data, output_buffer_limit=_CHUNK))
        while not inflater.is_finished():
            chunk = inflater.process(b"", output_buffer_limit=_CHUNK)
            if not chunk:
                break
            out.write(chunk)
            _too_big(out.tell(), limit)
    except brotli.error as exc:
        raise ContentCodingError(f"br: {exc}") from exc
    return out.getvalue()


def _unzstd(data: bytes, limit: int) -> bytes:
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # before Python 3.14: the backport Scrapy depends on
        from backports import zstd  # type: ignore[no-redef,import-not-found,unused-ignore]

    source = zstd.ZstdFile(io.BytesIO(data))
    out = io.BytesIO()
    while True:
        try:
            chunk = source.read(_CHUNK)
        except EOFError:
            break  # a truncated stream: what came out
        except zstd.ZstdError as exc:
            raise ContentCodingError(f"zstd: {exc}") from exc
        if not chunk:
            break
        out.write(chunk)
        _too_big(out.tell(), limit)
    return out.getvalue()


def undo_content_coding(
    body: bytes, content_encoding: Sequence[str], *, max_size: int = DEFAULT_MAX_SIZE
) -> tuple[bytes, list[str]]:
    """The payload with its content codings undone (the last applied first), and the codings
    left on it: from the first one (counted from the end) that is not supported on, as
    Scrapy keeps them. ``content_encoding``: every Content-Encoding header value, in order."""
    left = [token.strip().lower() for value in content_encoding for token in value.split(",")]
    while left and left[-1] in SUPPORTED_CODINGS:
        coding = left.pop()
        if coding in ("gzip", "x-gzip"):
            body = _gunzip(body, max_size)
        elif coding == "deflate":
            body = _inflate(body, max_size)
        elif coding == "br":
            body = _unbrotli(body, max_size)
        else:
            body = _unzstd(body, max_size)
    return body, left


def _inferred(data: bytes) -> str | None:
    """Scrapy's ``TextResponse._auto_detect_fun``: ASCII, UTF-8, else detection."""
    for name in ("ascii", "utf-8"):
        try:
            data.decode(name)
        except UnicodeError:
            continue
        return resolve_encoding(name)
    match = from_bytes(data).best()
    return resolve_encoding(match.encoding) if match else None


def page_text(body: bytes, content_type: str | None) -> tuple[str, str]:
    """The page as text, and the encoding it was read in, as the crawl's spider reads it.

    ``content_type``: the Content-Type header (its last value, as Scrapy's ``headers.get``).
    """
    header = content_type or ""
    encoding = (
        read_bom(body)[0] or http_content_type_encoding(header) or html_body_declared_encoding(body)
    )
    if encoding:
        text = html_to_unicode(f"charset={encoding}", body)[1]
    else:
        encoding, text = html_to_unicode(
            header, body, auto_detect_fun=_inferred, default_encoding="ascii"
        )
    return mend_decoding(body, text, encoding)


def mend_decoding(body: bytes, text: str, encoding: str) -> tuple[str, str]:
    """``text`` (``body`` read in ``encoding``) again in the first candidate the bytes are
    valid in, when it holds U+FFFD: a charset the body is not valid in is a server's mistake
    (Arabic windows-1256 bytes sent as ``charset=utf-8``). The spider and the archive's
    readers (reextract, replay) both read pages through it."""
    if "\ufffd" not in text:
        return text, encoding
    declared = html_body_declared_encoding(body)
    candidates = (encoding, resolve_encoding(declared) if declared else None, detect_encoding(body))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            decoded = body.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
        # The declared encoding was right after all: the page itself holds U+FFFD.
        return (text, encoding) if candidate == encoding else (decoded, candidate)
    return text, encoding
