"""An archived HTTP payload as the crawl's spider saw it: content coding undone, then decoded.

Pure functions of bytes and header values, so text remade from a WARC record (reextract) is
made from the very string the crawl extracted from. They follow Scrapy 2.19 step by step:
``HttpCompressionMiddleware`` (the codings it accepts, undone last first, stopping at one it
does not know), ``TextResponse.encoding`` and ``.text`` (BOM, the HTTP charset, ``<meta
charset>``, then ASCII, UTF-8 or statistical detection), and the spider's ``page_text`` (a
charset the bytes are not valid in is a server's mistake: the next candidate they are valid in
is taken). ``tests/test_reextract.py`` holds them to Scrapy's own result. The decision is on
record (:class:`Decoding`, the sidecar's ``decoding``), and :func:`payload_problem` says when
a payload cannot give a whole page (truncated, or a content coding that fails).
"""

from __future__ import annotations

import codecs
import functools
import gzip
import io
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio
from isal import isal_zlib  # zlib's checksums, many times faster (the trailer check)
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
    text = _declared_utf8(body, content_type)
    if text is not None:
        return text, "utf-8"
    text, decoding = decode_page(body, content_type)
    return text, decoding.name


def _declared_utf8(body: bytes, content_type: str | None) -> str | None:
    """The text :func:`decode_page` makes of a page declared UTF-8 (by its Content-Type, or
    by its ``<meta>`` when the header names no charset it knows) whose bytes are valid
    UTF-8, with no BOM and no NUL byte; None for any other page. Without the decision's
    record: each step of the full path leaves such a page's text as it is (the charset is
    the one declared, strict and ``replace`` decoding agree on valid bytes, no U+FFFD is put
    in so nothing is mended, no NUL is dropped, a UTF-8 page is never a one-byte charset's
    mojibake) except the repair of doubly encoded UTF-8, done here the same way. Most pages
    a crawl archives are these, at a third of the full path's cost (6.5 us a mirror page
    instead of 19). ``tests/test_reextract_decoding.py`` holds this to ``decode_page`` over
    the mirror's, the benchmark's and the hostile pages."""
    if read_bom(body)[0] is not None or b"\0" in body:
        return None
    declared = http_content_type_encoding(content_type or "") or html_body_declared_encoding(body)
    if declared != "utf-8":
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _double_utf8_suspected(body, text, "utf-8", 0):
        text = repair_double_utf8(text)[0]
    return text


def decode_page(body: bytes, content_type: str | None) -> tuple[str, Decoding]:
    """The page as text, and how it was decoded: Scrapy's ``TextResponse`` inference, then
    :func:`settle_decoding` (what the spider does with ``response.text``)."""
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
    return settle_decoding(body, text, encoding, content_type)


def mend_decoding(body: bytes, text: str, encoding: str) -> tuple[str, str]:
    """``text`` (``body`` read in ``encoding``) read again where the bytes prove the charset
    wrong. The spider and the archive's readers (reextract, replay) both read pages through it.

    - UTF-16 with no BOM or label (every other byte NUL): UTF-16, not a one-byte charset with
      the NULs in between.
    - Bytes that are UTF-8 (every non-ASCII sequence valid, or at least two valid for each bad
      one: a UTF-8 page with a stray byte) read in a one-byte charset or with U+FFFD (Persian
      UTF-8 sent as ``windows-1256``): UTF-8. One-byte text is practically never valid UTF-8
      by chance, and read in the label it would be mojibake (``ظ¾ظٹط§ظ…``, ``cafÃ©``).
    - Otherwise ``text`` with U+FFFD: a charset the body is not valid in is a server's mistake
      (Arabic windows-1256 bytes sent as ``charset=utf-8``): the first candidate the bytes are
      valid in (the page's ``<meta>`` charset, then detection).
    """
    # A NUL byte first: ten times cheaper to look for than a NUL character in the text.
    if b"\0" in body and "\0" in text and not encoding.startswith("utf-16"):
        utf16 = _utf16_without_bom(body)
        if utf16 is not None:
            return utf16
    if body.isascii():
        return text, encoding
    if encoding != "utf-8" and ("\ufffd" in text or _one_byte(encoding)):
        utf8 = _mostly_utf8(body)
        if utf8 is not None:
            return utf8, "utf-8"
    if "\ufffd" not in text or (encoding == "utf-8" and _mostly_utf8(body) is not None):
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


def _mostly_utf8(body: bytes) -> str | None:
    """``body`` read as UTF-8 when its non-ASCII bytes are UTF-8: all of them, or at least
    two valid characters for each invalid sequence (U+FFFD the page holds itself count as
    valid)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = body.decode("utf-8", "replace")
    bad = text.count("\ufffd") - body.count(_FFFD_UTF8)
    good = len(text) - len(text.encode("ascii", "ignore")) - bad
    return text if good >= 2 * bad else None


def _utf16_without_bom(body: bytes) -> tuple[str, str] | None:
    """UTF-16 text sent with no BOM and no label: NULs (the high bytes of ASCII markup), at
    least one byte in ten, nearly all at even or nearly all at odd offsets."""
    if len(body) < 16 or body.count(b"\0") * 10 < len(body):
        return None
    even, odd = body[0::2].count(0), body[1::2].count(0)
    encoding = "utf-16-be" if even > odd * 4 else "utf-16-le" if odd > even * 4 else None
    if encoding is None:
        return None
    try:
        return body.decode(encoding), encoding
    except UnicodeDecodeError:
        return None


# -- the decoding on record ------------------------------------------------------------------------
_FFFD_UTF8: Final = "\ufffd".encode()
# U+FFFD the decoding made (not the page's own) past this many per thousand characters, or
# mojibake: the sidecar's decoding is marked ``suspect`` and a warning says why.
REPLACEMENT_PER_MILLE: Final = 1
# charset_normalizer's mess ratio of a one-byte charset's text past this: mojibake (its own
# detection takes 0.2 as chaos; right text scores 0, Arabic read as windows-1252 over 1).
MOJIBAKE_MESS: Final = 0.3
_MESS_SAMPLE: Final = 20_000  # characters: the ratio of a whole page says no more
# Decoding.mojibake_reason: a one-byte charset's text that reads as mojibake (left as read:
# the bytes cannot say which charset was meant), or UTF-8 encoded twice (repaired).
MESS: Final = "mess"
DOUBLE_UTF8: Final = "double-utf8"


@dataclass(frozen=True, slots=True)
class Decoding:
    """How a page's bytes became its text, for the sidecar (``record()``)."""

    name: str  # the codec used (Python's name: utf-8, cp1256, cp1252 …)
    # bom | header | meta: the declaration followed; detected: the bytes decided (no
    # declaration, or one they disprove); fallback: no candidate fits the bytes
    source: str
    header: str | None = None  # the charset the Content-Type header names, as given
    meta: str | None = None  # the charset the page's <meta> names (Python's name for it)
    replacement_chars: int = 0  # U+FFFD the decoding put in (the page's own not counted)
    nul_dropped: int = 0  # NUL characters taken out of the text
    # the page's text reads as mojibake: a one-byte charset's text that reads as mojibake
    # (mojibake_reason MESS), or UTF-8 encoded twice (DOUBLE_UTF8: "Ã©" for "é")
    mojibake: bool = False
    mojibake_reason: str | None = None
    repaired: int = 0  # doubly encoded characters put back ("Ã©" -> "é") in the text
    # mojibake, or U+FFFD put in past REPLACEMENT_PER_MILLE of the text's characters
    suspect: bool = False

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "header": self.header,
            "meta": self.meta,
            "replacement_chars": self.replacement_chars,
            "nul_dropped": self.nul_dropped,
            "mojibake": self.mojibake,
            "mojibake_reason": self.mojibake_reason,
            "repaired": self.repaired,
            "suspect": self.suspect,
        }

    def warnings(self) -> list[str]:
        out = []
        if self.mojibake_reason == DOUBLE_UTF8:
            out.append(
                f"decoded as {self.name} ({self.source}): UTF-8 encoded twice (mojibake such "
                f"as 'Ã©' for 'é'); {self.repaired} characters repaired"
            )
        elif self.mojibake:
            out.append(f"decoded as {self.name} ({self.source}): the text reads as mojibake")
        if self.suspect and self.replacement_chars:
            out.append(
                f"decoded as {self.name} ({self.source}) with {self.replacement_chars} "
                "replacement characters (U+FFFD)"
            )
        if self.nul_dropped:
            out.append(f"{self.nul_dropped} NUL characters dropped from the page")
        return out


def settle_decoding(
    body: bytes, text: str, encoding: str, content_type: str | None
) -> tuple[str, Decoding]:
    """``text`` (``body`` as Scrapy read it in ``encoding``) mended (:func:`mend_decoding`),
    without NUL characters, doubly encoded UTF-8 repaired (:func:`repair_double_utf8`), and
    the decision on record: which charset, on whose word, what it cost (U+FFFD put in, NULs
    dropped) and whether the page reads as mojibake, and why."""
    text, encoding = mend_decoding(body, text, encoding)
    header = http_content_type_encoding(content_type or "")
    meta = html_body_declared_encoding(body)
    bom = read_bom(body)[0]
    replaced = 0
    if "\ufffd" in text:
        own = body.count(_FFFD_UTF8) if encoding == "utf-8" else 0
        replaced = max(text.count("\ufffd") - own, 0)
    if bom and resolve_encoding(bom) == encoding:
        source = "bom"
    elif header and resolve_encoding(header) == encoding:
        source = "header"
    elif meta and resolve_encoding(meta) == encoding:
        source = "meta"
    else:
        source = "fallback" if replaced and encoding != "utf-8" else "detected"
    dropped = text.count("\0") if b"\0" in body else 0  # no NUL byte, no NUL character
    if dropped:
        text = text.replace("\0", "")
    reason = MESS if _mojibake(text, encoding) else None
    repaired = 0
    if reason is None and _double_utf8_suspected(body, text, encoding, dropped):
        text, repaired = repair_double_utf8(text)
        reason = DOUBLE_UTF8 if repaired else None
    mojibake = reason is not None
    return text, Decoding(
        name=encoding,
        source=source,
        header=_label(content_type, header),
        meta=meta,
        replacement_chars=replaced,
        nul_dropped=dropped,
        mojibake=mojibake,
        mojibake_reason=reason,
        repaired=repaired,
        suspect=mojibake or replaced * 1000 > REPLACEMENT_PER_MILLE * max(len(text), 1),
    )


def _label(content_type: str | None, found: str | None) -> str | None:
    """The charset as the header wrote it (w3lib gives it resolved when it knows it)."""
    if not content_type or "charset" not in content_type.lower():
        return found
    value = content_type.lower().split("charset", 1)[1].lstrip(" =").split(";")[0]
    return value.strip(" \"'") or found


@functools.lru_cache(maxsize=64)
def _one_byte(encoding: str) -> bool:
    """A charset with one character per byte (windows-125x, ISO-8859-x, KOI8 …): text read
    in one is never invalid, so only its look says it is wrong."""
    if encoding.replace("_", "-").startswith(("utf", "ascii")):
        return False
    try:
        return len(bytes(range(256)).decode(encoding, "replace")) == 256
    except LookupError:
        return False


def _mojibake(text: str, encoding: str) -> bool:
    """A one-byte charset's text that reads as mojibake: letters of several scripts and
    symbols mixed in runs, as charset_normalizer's mess detector measures them."""
    if text.isascii() or not _one_byte(encoding):
        return False
    return mess_ratio(text[:_MESS_SAMPLE], maximum_threshold=1.0) > MOJIBAKE_MESS


# -- UTF-8 encoded twice ---------------------------------------------------------------------------
# UTF-8 text read as cp1252 (or Latin-1) and written out again as UTF-8, by a CMS, a database
# connection or a feed importer: each character became two to four, a lead (U+00C2-U+00F4,
# "Ã", "Ø", "â") and one to three continuations (U+0080-U+00BF, or cp1252's letters and
# punctuation for the bytes 0x80-0x9F): "Ã©" for "é", "Ø§Ù„" for "ال", "â€™" for "’". The page
# is valid UTF-8, so nothing in the decoding above can see it.
#
# Repaired, not only flagged: a run of those characters that is valid UTF-8 once each is put
# back to its byte is proof, as in mend_decoding (one-byte text is practically never valid
# UTF-8 by chance), and the text is the archive's readable, searchable copy (search, story
# keys and names need "الخارجية", not "Ø§Ù„Ø®Ø§Ø±Ø¬ÙŠØ©"); the WARC keeps the bytes as served and
# the sidecar says what was done (mojibake_reason, repaired). A run is taken only when its
# character lies in a script such text is made of (below) and, for three bytes, not only of
# typographic continuations: real pages hold Latin-1 letters next to Latin-1 signs that are
# valid UTF-8 too ("ß" + soft hyphen is U+07ED, "NESTLÉ®" holds U+026E, French "é”" + no-break
# space is U+9520); those are left alone. Checked over 1,304 pages (the dev sets and the
# mirror): 14 with doubly encoded characters found, every one a real one, no clean page touched.
_DOUBLE_BYTE: Final = {chr(b): b for b in range(0x80, 0xF5)} | {
    bytes([b]).decode("cp1252"): b
    for b in range(0x80, 0xA0)
    if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)  # undefined in cp1252: Latin-1's C1 controls
}
_DOUBLE_CONT: Final = "".join(sorted(c for c, b in _DOUBLE_BYTE.items() if b < 0xC0))
_DOUBLE_RE: Final = re.compile(
    f"[\u00c2-\u00df][{_DOUBLE_CONT}]"
    f"|[\u00e0-\u00ef][{_DOUBLE_CONT}]{{2}}"
    f"|[\u00f0-\u00f4][{_DOUBLE_CONT}]{{3}}"
)
# The same in the page's UTF-8 bytes, loosely (a lead is C3 82-B4; a continuation starts with
# C2, C5, C6, CB or E2 80/82/84): the cheap test that nearly every page passes at once. Then,
# from where it matched, exactly: the leads of the scripts below, the continuations' own
# bytes, three bytes not only typographic (a French "é" + no-break space + "»" passes the
# loose test; the exact one keeps such a page out of the slower scan of its text).
_DOUBLE_BYTES_RE: Final = re.compile(rb"\xc3[\x82-\xb4](?:[\xc2\xc5\xc6\xcb]|\xe2[\x80\x82\x84])")
_CONT_BYTES: Final = (
    rb"(?:\xc2[\x80-\xbf]|\xc5[\x92\x93\xa0\xa1\xb8\xbd\xbe]|\xc6\x92|\xcb[\x86\x9c]"
    rb"|\xe2\x80[\x93\x94\x98-\x9a\x9c-\x9e\xa0-\xa2\xa6\xb0\xb9\xba]|\xe2\x82\xac|\xe2\x84\xa2)"
)
_TYPOGRAPHIC_BYTES: Final = (
    rb"(?:\xc2[\xa0\xab\xbb\xad]|\xe2\x80[\x93\x94\x98-\x9a\x9c-\x9e\xa6\xb9\xba])"
)
_DOUBLE_BYTES_EXACT_RE: Final = re.compile(
    rb"\xc3(?:[\x82-\x86\x8b\x8d-\x94\x96-\x9b]"
    + _CONT_BYTES
    + rb"|[\xa0-\xaf](?!"
    + _TYPOGRAPHIC_BYTES * 2
    + rb")"
    + _CONT_BYTES * 2
    + rb"|[\xb0-\xb4]"
    + _CONT_BYTES * 3
    + rb")"
)
# Where a doubly encoded character may land: Latin-1 and Latin Extended-A, cp1252's three
# letters outside them (a thrice encoded page goes through them), Greek, Cyrillic, Hebrew,
# Arabic, the Indic scripts and Thai, Vietnamese, punctuation and symbols, CJK and kana, Hangul,
# private use (icon fonts) and the compatibility forms, emoji.
_DOUBLE_SCRIPTS: Final = (
    (0x0080, 0x017F),
    (0x0192, 0x0192),
    (0x02C6, 0x02C6),
    (0x02DC, 0x02DC),
    (0x0370, 0x03FF),
    (0x0400, 0x052F),
    (0x0590, 0x05FF),
    (0x0600, 0x06FF),
    (0x0900, 0x0EFF),
    (0x1E00, 0x1EFF),
    (0x2000, 0x2BFF),
    (0x3000, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xE000, 0xFFFF),
    (0x1F000, 0x1FAFF),
)
_TYPOGRAPHIC: Final = frozenset("\u00a0\u00ab\u00bb\u00ad‘’‚“”„‹›–—…")


def _double_utf8_suspected(body: bytes, text: str, encoding: str, nul_dropped: int) -> bool:
    """Whether ``text`` may hold doubly encoded UTF-8, cheaply: its UTF-8 (the body itself
    when read as UTF-8) holds a lead's bytes followed by a continuation's. A page without a
    Latin-1 letter (English, Arabic, Persian) is done in one ``memchr`` for byte C3; one
    with them in a scan of its bytes (the rules of :func:`_undouble`, except the exact
    script ranges of three and four bytes)."""
    if text.isascii():
        return False
    if encoding == "utf-8":
        utf8 = body.replace(b"\0", b"") if nul_dropped else body
    else:
        utf8 = text.encode("utf-8", "surrogatepass")
    if b"\xc3" not in utf8:
        return False
    loose = _DOUBLE_BYTES_RE.search(utf8)
    return loose is not None and _DOUBLE_BYTES_EXACT_RE.search(utf8, loose.start()) is not None


@functools.lru_cache(maxsize=4096)
def _undouble(run: str) -> str | None:
    """The character a doubly encoded ``run`` stands for, or None when it is not one."""
    try:
        char = bytes(_DOUBLE_BYTE[c] for c in run).decode("utf-8")
    except UnicodeDecodeError:
        return None
    code = ord(char)
    if not any(low <= code <= high for low, high in _DOUBLE_SCRIPTS):
        return None
    if len(run) == 3 and _TYPOGRAPHIC.issuperset(run[1:]):
        return None
    return char


def _c1_as_bytes(error: UnicodeError) -> tuple[bytes, int]:
    """Encoding to cp1252, the five bytes it leaves undefined (and the rest of Latin-1's C1
    controls, which a Latin-1 reading makes) as the bytes they stand for."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    run = error.object[error.start : error.end]
    if not all("\x80" <= c <= "\x9f" for c in run):
        raise error
    return run.encode("latin-1"), error.end


codecs.register_error("newsarchive-c1-bytes", _c1_as_bytes)
_OUT_OF_SCRIPT_RE: Final = re.compile(
    "[^\x00-\x7f" + "".join(f"{chr(low)}-{chr(high)}" for low, high in _DOUBLE_SCRIPTS) + "]"
)

_TYPOGRAPHIC_RUN_RE: Final = re.compile(f"[\u00e0-\u00ef][{''.join(sorted(_TYPOGRAPHIC))}]{{2}}")


def _undouble_whole(text: str) -> tuple[str, int] | None:
    """``text`` put back whole, when all of it is doubly encoded (the common case of a page
    that is: a codec's speed instead of a step per character), or None."""
    try:
        fixed = text.encode("cp1252", "newsarchive-c1-bytes").decode("utf-8")
    except UnicodeError:
        return None
    if fixed == text or _OUT_OF_SCRIPT_RE.search(fixed) or _TYPOGRAPHIC_RUN_RE.search(text):
        return None  # what _undouble would not take: a run at a time decides
    # Every non-ASCII character of the result was one run.
    return fixed, len(fixed) - len(fixed.encode("ascii", "ignore"))


# A stretch of text that may be doubly encoded: characters of runs, with the ASCII between
# them (a paragraph of mojibake Arabic is one stretch, put back by the codec in one call).
_DOUBLE_STRETCH_RE: Final = re.compile(
    f"[\u00c2-\u00f4][{_DOUBLE_CONT}\u00c2-\u00f4\t\n\r\x20-\x3b=\x3f-\x7e]*"
)


def _repair_round(text: str) -> tuple[str, int]:
    whole = _undouble_whole(text)
    if whole is not None:
        return whole
    parts: list[str] = []
    last = repaired = 0
    for stretch in _DOUBLE_STRETCH_RE.finditer(text):
        start, end = stretch.span()
        fixed = _undouble_whole(stretch.group())
        if fixed is not None:
            parts += (text[last:start], fixed[0])
            last = end
            repaired += fixed[1]
            continue
        for match in _DOUBLE_RE.finditer(text, start, end):
            char = _undouble(match.group())
            if char is not None:
                parts += (text[last : match.start()], char)
                last = match.end()
                repaired += 1
    if not repaired:
        return text, 0
    parts.append(text[last:])
    return "".join(parts), repaired


def repair_double_utf8(text: str) -> tuple[str, int]:
    """``text`` with its doubly encoded UTF-8 characters put back, and how many runs were:
    "Ã©" -> "é", "Ø§Ù„" -> "ال", "â€™" -> "’"; "ÃƒÂ©" (three times) -> "é" in two rounds,
    counted twice."""
    repaired = 0
    for _ in range(3):  # UTF-8 encoded three times is seen in the wild; more is not
        text, count = _repair_round(text)
        if not count:
            break
        repaired += count
    return text, repaired


# -- a payload that cannot give a whole page -------------------------------------------------------
# A content coding that does not decode to its end (a truncated stream, corrupt data, a checksum
# that fails) gives the start of a page at best: Scrapy, like browsers, keeps what came out, and
# an article cut after its headline and date became a 118-byte "text". The crawl and reextract
# ask this before they make a text of a payload; the WARC keeps the bytes either way.
TRUNCATED: Final = "truncated"  # the payload ends before its Content-Length or its coding's end
BAD_CODING: Final = "bad-content-coding"  # corrupt coded data, or a checksum that fails


def payload_problem(
    payload: bytes,
    content_encoding: Sequence[str],
    *,
    decoded: bytes | None = None,
    content_length: str | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[str, str] | None:
    """Why ``payload`` (as received, content codings on) cannot give the whole page: (cause,
    detail), the cause ``truncated`` or ``bad-content-coding``; None when it can.

    ``content_length``: the Content-Length header (left out when the body came chunked);
    ``decoded``: the payload with its codings undone, when the caller has it (Scrapy's body):
    a single gzip member or zlib stream is then checked against its own trailer (CRC-32 and
    size, or Adler-32), a few microseconds; anything else is decoded again, strictly. Bytes
    after a complete gzip member that start no other member are ignored, as Scrapy and
    browsers ignore them; an empty payload is left to the extraction (an empty document)."""
    if content_length is not None:
        try:
            expected = int(content_length.strip())
        except ValueError:
            expected = -1
        if len(payload) < expected:
            return TRUNCATED, f"{len(payload)} of the {expected} bytes its Content-Length gives"
    left = [token.strip().lower() for value in content_encoding for token in value.split(",")]
    undo: list[str] = []
    while left and left[-1] in SUPPORTED_CODINGS:
        undo.append(left.pop())
    if not undo or not payload:
        return None
    if decoded is not None and len(undo) == 1 and _trailer_matches(payload, undo[0], decoded):
        return None
    data = payload
    for coding in undo:
        try:
            data, problem = _strict_decode(coding, data, max_size)
        except ContentCodingError as exc:  # past the size limit: no page either
            return BAD_CODING, f"{coding}: {exc}"
        if problem is not None:
            return problem[0], f"{coding}: {problem[1]}"
    return None


def _trailer_matches(payload: bytes, coding: str, decoded: bytes) -> bool:
    """The coding's own check of its output: gzip's CRC-32 and size, zlib's Adler-32 (ISA-L's:
    a few microseconds for a page, where zlib's take 20 to 80)."""
    if coding in ("gzip", "x-gzip") and len(payload) >= 18 and payload[:2] == b"\x1f\x8b":
        crc, size = struct.unpack("<II", payload[-8:])
        return bool(isal_zlib.crc32(decoded) == crc and len(decoded) & 0xFFFFFFFF == size)
    if coding == "deflate" and len(payload) >= 6 and (payload[0] << 8 | payload[1]) % 31 == 0:
        return payload[0] & 0x0F == 8 and isal_zlib.adler32(decoded) == int.from_bytes(payload[-4:])
    return False


def _inflate_into(out: io.BytesIO, inflater: Any, data: bytes, limit: int) -> None:
    """All ``inflater`` makes of ``data`` into ``out``, a chunk at a time (never past
    ``limit``: ``ContentCodingError``)."""
    out.write(inflater.decompress(data, _CHUNK))
    while inflater.unconsumed_tail and not inflater.eof:
        _too_big(out.tell(), limit)
        out.write(inflater.decompress(inflater.unconsumed_tail, _CHUNK))
    _too_big(out.tell(), limit)


def _strict_decode(coding: str, data: bytes, limit: int) -> tuple[bytes, tuple[str, str] | None]:
    """``data`` with one coding undone, and what stopped it short of the coding's end."""
    out = io.BytesIO()
    if coding in ("gzip", "x-gzip"):
        while True:
            inflater = zlib.decompressobj(31)
            try:
                _inflate_into(out, inflater, data, limit)
            except zlib.error as exc:
                return out.getvalue(), (BAD_CODING, str(exc))
            if not inflater.eof:
                return out.getvalue(), (TRUNCATED, "the stream ends before its last member does")
            data = inflater.unused_data
            if data[:2] != b"\x1f\x8b":
                return out.getvalue(), None  # the end, or trailing bytes that are no member
    if coding == "deflate":
        inflater = zlib.decompressobj()
        try:
            _inflate_into(out, inflater, data, limit)
        except zlib.error:
            inflater = zlib.decompressobj(wbits=-15)  # raw deflate, as some servers send it
            out = io.BytesIO()
            try:
                _inflate_into(out, inflater, data, limit)
            except zlib.error as exc:
                return out.getvalue(), (BAD_CODING, str(exc))
        if not inflater.eof:
            return out.getvalue(), (TRUNCATED, "the stream ends before its last block")
        return out.getvalue(), None
    if coding == "br":
        import brotli

        decompressor = brotli.Decompressor()
        try:
            out.write(decompressor.process(data, output_buffer_limit=_CHUNK))
            while not decompressor.is_finished():
                _too_big(out.tell(), limit)
                chunk = decompressor.process(b"", output_buffer_limit=_CHUNK)
                if not chunk:
                    return out.getvalue(), (TRUNCATED, "the stream ends before its last block")
                out.write(chunk)
        except brotli.error as exc:
            return out.getvalue(), (BAD_CODING, str(exc))
        return out.getvalue(), None
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # before Python 3.14: the backport Scrapy depends on
        from backports import zstd  # type: ignore[no-redef,import-not-found,unused-ignore]
    while True:
        unzstd = zstd.ZstdDecompressor()
        try:
            out.write(unzstd.decompress(data, _CHUNK))
            while not unzstd.eof and not unzstd.needs_input:
                _too_big(out.tell(), limit)
                out.write(unzstd.decompress(b"", _CHUNK))
        except zstd.ZstdError as exc:
            return out.getvalue(), (BAD_CODING, str(exc))
        _too_big(out.tell(), limit)
        if not unzstd.eof:
            return out.getvalue(), (TRUNCATED, "the stream ends before its last frame")
        data = unzstd.unused_data
        if not data:
            return out.getvalue(), None
