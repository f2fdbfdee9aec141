"""The same story across sources: MinHash signatures, LSH band keys, and the kind of link.

Finding and deciding are two steps. :func:`signature` sketches an article's word 5-shingles
(MinHash, 192 permutations, datasketch's ``affine64`` scheme, seed 1, each shingle hashed by
:func:`shingle_hash` from its words' hashes: the same text gives the same bytes in every
process and on every machine) and :func:`bands` cuts it into 64 bands of 3
rows, each a ``(band, hash)`` pair a SQL table indexes, so any process finds the articles that
share a band with a new one without an index in memory. The chance that a pair shares a band is
``1 - (1 - J**3)**64`` (:func:`candidate_probability`): 99.98 % at Jaccard 0.5 (the
near-duplicate threshold), 98.5 % at 0.4, 83 % at 0.3, and 8e-6 at 0.005, about the most that
two unrelated articles of the mirror share (0.004). Rewrites of one event share too few
5-shingles for that; :func:`name_keys` gives a second index, on the proper names a text has.

:func:`link_kind` then decides on the two texts themselves, exactly (a 192-permutation estimate
errs by ±0.036 at J = 0.5, enough to flip a pair near a threshold from one run to another):

- ``republication``: one text names the other's site as its source ("Source: Press TV") and
  contains at least half of the shorter text's 5-shingles;
- ``near-duplicate``: Jaccard of the 5-shingles ≥ 0.5, or one contains ≥ 80 % of the other;
- ``same-event``: a rewrite, not a copy. 5-shingles say little here (the three reports of the
  Pezeshkian–Mezher meeting share 3.5–6 % of them), so it is the share of the shorter text's
  word 3-shingles found in the other (≥ 0.10; 0.16–0.25 for those three, ≤ 0.054 for every
  other cross-site pair of the mirror), with at least two shared proper names (runs of
  capitalised words: "Jamil Mezher", "Popular Front"; 4–5 for those three, at most 2 for the
  others), and publication dates at most three days apart when both are known. The names
  guard against the stock phrases of official prose ("good neighborliness in the Islamic
  world"), which recur from one event to the next.

Word 5-shingles for the signature: fewer words make unrelated news look alike (3-shingles: up
to 0.024 Jaccard between unrelated articles of the mirror, against 0.004 for 5-shingles), more
words make an edited copy look new (each changed word breaks k shingles). Only words count:
text is NFKC-normalised and casefolded, apostrophes inside words dropped ("Iran’s" → "irans"),
everything else that is not a letter or digit separates words. Proper names need letter case,
so scripts without it (Arabic, Persian) get no names and so no same-event links.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import numpy.typing as npt

SHINGLE_WORDS: Final = 5
NUM_PERM: Final = 192
BANDS: Final = 64
ROWS: Final = 3
SEED: Final = 1
SCHEME: Final = "affine64"
#: How a shingle becomes the 64-bit number MinHash permutes (:func:`shingle_hash`).
SHINGLE_HASH: Final = "wordmix64"
#: Stored beside signatures and band keys: rows made with other parameters are not comparable
#: (``newsarchive reindex`` makes the keys of older rows again). The scheme before this one,
#: ``w5-affine64-p192-s1-b64x3``, hashed each shingle's UTF-8 by SHA-1: a third of a crawl's
#: cost of story keys (issue 22).
SIGNATURE_VERSION: Final = (
    f"w{SHINGLE_WORDS}-{SHINGLE_HASH}-{SCHEME}-p{NUM_PERM}-s{SEED}-b{BANDS}x{ROWS}"
)

NEAR_DUPLICATE_JACCARD: Final = 0.5
NEAR_DUPLICATE_CONTAINMENT: Final = 0.8
#: A text this short (in 5-shingles) is contained in too many others to call it a copy.
CONTAINMENT_MIN_SHINGLES: Final = 25
REPUBLICATION_CONTAINMENT: Final = 0.5
PHRASE_WORDS: Final = 3
SAME_EVENT_PHRASES: Final = 0.10
SAME_EVENT_NAMES: Final = 2
SAME_EVENT_DAYS: Final = 3.0

LinkKindName = Literal["republication", "near-duplicate", "same-event"]

# Source names as articles write them → the site keys of this project's spiders.
SOURCE_SITES: Final[Mapping[str, str]] = {
    "press tv": "presstv",
    "presstv": "presstv",
    "presstv ir": "presstv",
    "irna": "irna",
    "irna english": "irna",
    "islamic republic news agency": "irna",
    "president ir": "president",
    "iranian presidency": "president",
    "almasirah": "almasirah",
    "al masirah": "almasirah",
    "almasirah net": "almasirah",
    "masirah tv": "almasirah",
    "tdi": "tdi",
    "the diplomatic insight": "tdi",
    "diplomatic insight": "tdi",
}

_BAND_MASK: Final = (1 << 63) - 1
# An apostrophe between two word characters. The apostrophe is matched first and the word
# character before it looked back at: a look-behind first was tried at every character of
# the text (five times the time).
_APOSTROPHES = re.compile(r"['’ʼ`](?<=\w['’ʼ`])(?=\w)")
# Letters and digits, with the combining marks and joiners that belong inside a word.
_WORD = re.compile(r"(?:\w|[\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u200c\u200d])+")
# Each ASCII character that is no word character (\w: letters, digits, "_") → a space.
_ASCII_SEPARATORS: Final = str.maketrans(
    {c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")}
)
# Possessive quantifiers: a word is never given back to try the punctuation branch (the same
# tokens, a tenth less time).
_NAME_TOKEN = re.compile(r"\w++(?:['’]\w++)*+|[^\w\s]")
_POSSESSIVE: Final = ("'s", "’s")
# What closes a sentence, as the last character before any trailing space.
_SENTENCE_CLOSERS: Final = frozenset(".!?:;…\"”’')]")
# In an ASCII line, a capitalised token (at a token's start: no word character, nor a word
# character and an apostrophe, before it) followed after space alone by another, looked ahead
# at so that the pairs of three capitalised words in a row overlap: the pairs the tokens give
# (tokens are separated by space alone, and a capital is A-Z), without a list of every token.
_ASCII_PAIR = re.compile(r"(?<!\w)(?<!\w')([A-Z]\w*+(?:'\w++)*+)(?=\s++([A-Z]\w*+(?:'\w++)*+))")
# Words that open a sentence with a capital and so make no name with the word after them.
# fmt: off
_FUNCTION_WORDS: Final = frozenset(
    {
        "a", "about", "after", "against", "all", "also", "an", "and", "as", "at", "before", "but",
        "by", "during", "for", "from", "he", "her", "his", "however", "i", "if", "in", "into",
        "it", "its", "meanwhile", "of", "on", "or", "our", "she", "since", "so", "that", "the",
        "their", "these", "they", "this", "those", "to", "under", "we", "what", "when", "where",
        "which", "while", "who", "with", "you",
    }
)
# fmt: on


# ------------------------------------------------------------------------------- words


def words(text: str) -> list[str]:
    """The normalised words of a text: NFKC, casefolded, apostrophes dropped, no punctuation."""
    if text.isascii():
        # The same words at half the cost: ASCII needs no NFKC, casefolds as lower(), and its
        # word characters are letters, digits and "_": every other character separates.
        return _APOSTROPHES.sub("", text.lower()).translate(_ASCII_SEPARATORS).split()
    text = unicodedata.normalize("NFKC", text).casefold()
    return _WORD.findall(_APOSTROPHES.sub("", text))


def shingles(tokens: list[str], k: int = SHINGLE_WORDS) -> frozenset[str]:
    """The distinct runs of ``k`` consecutive words (a shorter text: itself as one shingle)."""
    if not tokens:
        return frozenset()
    if len(tokens) <= k:
        return frozenset((" ".join(tokens),))
    return frozenset(" ".join(tokens[i : i + k]) for i in range(len(tokens) - k + 1))


def names(text: str) -> frozenset[str]:
    """Proper-name word pairs ("jamil mezher", "popular front"), casefolded.

    Two capitalised words in a row, not split by punctuation, the first not a function word
    that a sentence may open with. Headlines and subheadings in title case are skipped (a
    line with no closing punctuation and mostly capitalised words): every pair in them would
    count.
    """
    found: set[str] = set()
    for line in unicodedata.normalize("NFKC", text).splitlines():
        if line.isascii() and line.rstrip()[-1:] in _SENTENCE_CLOSERS:
            # A sentence (never a headline) in ASCII, most of an English text: its pairs found
            # by one regex, without the list of every token.
            for pair in _ASCII_PAIR.findall(line):
                # A possessive is its name: "Iran's" is Iran.
                first, second = (token.removesuffix("'s") for token in pair)
                if first.casefold() not in _FUNCTION_WORDS:
                    found.add(f"{first} {second}".casefold())
            continue
        tokens = _NAME_TOKEN.findall(line)
        if "'" in line or "’" in line:
            tokens = [t[:-2] if t.endswith(_POSSESSIVE) else t for t in tokens]
        if _is_title(line, tokens):
            continue
        # Capitalised tokens looked at once each, not twice as both halves of a pair.
        capital = [token[:1].isupper() for token in tokens]
        for i in [i for i, (a, b) in enumerate(itertools.pairwise(capital)) if a and b]:
            first = tokens[i]
            if first.casefold() not in _FUNCTION_WORDS:
                found.add(f"{first} {tokens[i + 1]}".casefold())
    return frozenset(found)


# --------------------------------------------------------------------------- signature


@dataclass(frozen=True)
class Signature:
    """A text's MinHash as a database stores it.

    ``hashvalues``: ``NUM_PERM`` little-endian unsigned 64-bit integers (1536 bytes, a BLOB
    or BYTEA column); ``size``: how many distinct 5-shingles the text has (the containment
    estimate needs it). Rebuild one from a row with ``Signature(row.hashvalues, row.size)``.
    """

    hashvalues: bytes
    size: int

    def __post_init__(self) -> None:
        if len(self.hashvalues) != NUM_PERM * 8:
            raise ValueError(
                f"a signature has {NUM_PERM * 8} bytes of hash values, not {len(self.hashvalues)}"
            )
        if self.size < 0:
            raise ValueError(f"a signature's shingle count cannot be negative: {self.size}")

    def values(self) -> npt.NDArray[np.uint64]:
        """The hash values as numbers."""
        return np.frombuffer(self.hashvalues, dtype=np.dtype("<u8"))


# datasketch's ``affine64`` MinHash, computed here with numpy alone: importing datasketch
# imports its whole package, SciPy with it (51 MiB, half a second of each text crawl's CPU).
# The same bytes as ``datasketch.MinHash(num_perm=192, seed=1, scheme="affine64",
# hashfunc=...)`` fed the shingles, with :func:`shingle_hash` as its hash function
# (tests/test_text_similar.py compares the two): each shingle's 64-bit hash mixed by
# MurmurHash3's 64-bit finalizer, then permuted by ``a * h + b`` modulo 2**64 with the seed's
# odd ``a`` and its ``b``.
_FMIX_SHIFT: Final = np.uint64(33)
_FMIX_1: Final = np.uint64(0xFF51AFD7ED558CCD)
_FMIX_2: Final = np.uint64(0xC4CEB9FE1A85EC53)
_EMPTY: Final = np.uint64((1 << 64) - 1)
# A shingle's hash from its words' hashes: h = w1, then h = h * MIX ^ w for each next word
# (modulo 2**64). MIX is odd, so the order of the words counts; the golden ratio's bits.
_MIX: Final = 0x9E3779B97F4A7C15
_MIX_NP: Final = np.uint64(_MIX)
# Words hashed so far, by this process: a text's words are mostly words earlier texts had,
# so a lookup replaces most BLAKE2b calls. Forgotten whole past this many (about 4 MiB at
# most), so a long crawl's memory stays flat.
_WORD_HASHES_KEPT: Final = 1 << 15
_word_hashes: dict[str, int] = {}


def word_hash(word: str) -> int:
    """A word's 64-bit hash: the first 8 bytes of the BLAKE2b of its UTF-8, little-endian."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def shingle_hash(tokens: Sequence[str]) -> int:
    """A shingle's 64-bit hash, from its words' (:func:`word_hash`): the first word's hash,
    then for each next word the hash so far times ``_MIX`` XOR the word's, modulo 2**64.
    :func:`signature` computes the same for all of a text's shingles at once."""
    value = 0
    for i, token in enumerate(tokens):
        value = word_hash(token) if i == 0 else ((value * _MIX) & _U64) ^ word_hash(token)
    return value


def _token_hashes(tokens: list[str]) -> npt.NDArray[np.uint64]:
    """Each token's :func:`word_hash`, known words looked up."""
    known = _word_hashes
    if len(known) > _WORD_HASHES_KEPT:
        known.clear()  # a dict of other threads' too: each lookup below is one dict operation
    out = []
    for token in tokens:
        value = known.get(token)
        if value is None:
            value = known[token] = word_hash(token)
        out.append(value)
    return np.array(out, dtype=np.uint64)


_U32: Final = 0xFFFFFFFF
_U64: Final = (1 << 64) - 1


def _mersenne_twister(seed: int) -> random.Random:
    """A Mersenne Twister in the state numpy's legacy ``RandomState(seed)`` starts from
    (MT19937's ``init_genrand``): the same 32-bit outputs, from ``getrandbits(32)``."""
    state = [seed & _U32]
    for i in range(1, 624):
        prev = state[-1]
        state.append((1812433253 * (prev ^ (prev >> 30)) + i) & _U32)
    gen = random.Random()
    gen.setstate((3, (*state, 624), None))
    return gen


def _randint_u64(gen: random.Random, high: int) -> int:
    """``RandomState.randint(0, high, dtype=np.uint64)``'s draw for a bound past 2**32: two
    32-bit outputs (high word first) masked to the bound's bits, drawn again while past it.
    (numpy draws below 2**32 from one output: not needed here, so refused.)"""
    top = high - 1
    if not _U32 < top <= _U64:
        raise ValueError(f"a bound past 2**32 and up to 2**64, not {high}")
    if top == _U64:
        return (gen.getrandbits(32) << 32) | gen.getrandbits(32)
    mask = (1 << top.bit_length()) - 1
    while True:
        value = ((gen.getrandbits(32) << 32) | gen.getrandbits(32)) & mask
        if value <= top:
            return value


@functools.cache
def _permutations() -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """The seed's ``(a, b)``, drawn once per process as datasketch draws them (numpy's
    ``RandomState(SEED)``, ``randint`` for ``a`` then ``b``), here without numpy.random:
    importing it cost each text crawl 2.4 MiB of RSS (issue 22); tests/test_text_similar.py
    compares the two."""
    gen = _mersenne_twister(SEED)
    a = [(_randint_u64(gen, 1 << 63) * 2 + 1) & _U64 for _ in range(NUM_PERM)]
    b = [_randint_u64(gen, 1 << 64) for _ in range(NUM_PERM)]
    return np.array(a, dtype=np.uint64), np.array(b, dtype=np.uint64)


# Shingles permuted at once: a (shingles x NUM_PERM) array of a whole article (~1,000
# shingles, 1.5 MB, a fresh mmap and its page faults each time) cost twice the CPU of blocks
# of 64 rows (96 KiB, under glibc's mmap threshold). The block is now made once per thread
# and kept, so it may be larger: 128 rows (192 KiB) are a tenth cheaper per text than 64 made
# at each call. The minimum is the same either way.
_BATCH: Final = 128
_blocks = threading.local()


def _block() -> npt.NDArray[np.uint64]:
    """This thread's scratch block of ``_BATCH`` permuted rows (signatures run in the crawl's
    text thread and in reindex's, never two at once on one thread)."""
    block: npt.NDArray[np.uint64] | None = getattr(_blocks, "block", None)
    if block is None:
        block = _blocks.block = np.empty((_BATCH, NUM_PERM), dtype=np.uint64)
    return block


def signature(text: str) -> Signature:
    """The MinHash of the text's word 5-shingles (deterministic: fixed seed and scheme)."""
    hv = _shingle_hashes(words(text))
    values = np.full(NUM_PERM, _EMPTY, dtype=np.uint64)
    if len(hv):
        hv ^= hv >> _FMIX_SHIFT
        hv *= _FMIX_1
        hv ^= hv >> _FMIX_SHIFT
        hv *= _FMIX_2
        hv ^= hv >> _FMIX_SHIFT
        a, b = _permutations()
        block = _block()
        for start in range(0, len(hv), _BATCH):
            rows = block[: min(_BATCH, len(hv) - start)]
            np.multiply(hv[start : start + _BATCH, None], a, out=rows)
            rows += b
            np.minimum(values, rows.min(axis=0), out=values)
    return Signature(values.astype("<u8").tobytes(), len(hv))


def _shingle_hashes(tokens: list[str], k: int = SHINGLE_WORDS) -> npt.NDArray[np.uint64]:
    """:func:`shingle_hash` of each distinct shingle of :func:`shingles` (sorted): every run
    of ``k`` words mixed at once by numpy from the words' hashes, then the repeats dropped.
    (Two distinct shingles with one 64-bit hash would count once: about one text in 10**13.)"""
    if not tokens:
        return np.empty(0, dtype=np.uint64)
    words_hashed = _token_hashes(tokens)
    k = min(k, len(tokens))  # a shorter text is one shingle of all its words
    count = len(tokens) - k + 1
    mixed = words_hashed[:count].copy()
    for i in range(1, k):
        mixed *= _MIX_NP
        mixed ^= words_hashed[i : i + count]
    return np.unique(mixed)


def bands(sig: Signature) -> list[tuple[int, int]]:
    """``(band, hash)`` pairs, 64 of them, for an index on (band, hash); none for no text.

    Two signatures that share a pair are candidates. The hash is the first 63 bits of a
    BLAKE2b of the band's three hash values: it fits a signed 64-bit column, and it is the same
    in every process (Python's ``hash()`` is not).
    """
    if sig.size == 0:
        return []
    raw = sig.hashvalues
    width = ROWS * 8
    return [(band, _key63(raw[band * width : (band + 1) * width])) for band in range(BANDS)]


def name_keys(text: str) -> list[int]:
    """63-bit keys of the text's proper names (:func:`names`), sorted, for an index on them.

    Same-event pairs share too few 5-shingles for the bands to find them (the Mezher reports:
    Jaccard 0.035–0.061); they share names. Articles of other sites published within a few
    days that share two or more of these keys are the candidates :func:`link_kind` decides on.
    """
    return sorted({_key63(name.encode("utf-8")) for name in names(text)})


def _key63(data: bytes) -> int:
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "little") & _BAND_MASK


def candidate_probability(jaccard: float) -> float:
    """The chance that two texts with this Jaccard share at least one band."""
    return float(1.0 - (1.0 - jaccard**ROWS) ** BANDS)


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard of the two texts' 5-shingle sets; 0.0 if either text has no words."""
    if a.size == 0 or b.size == 0:
        return 0.0
    return float(np.count_nonzero(a.values() == b.values())) / NUM_PERM


def containment(a: Signature, b: Signature) -> float:
    """Estimated share of the smaller text's 5-shingles found in the other (0.0 to 1.0).

    A republication that cuts or adds a paragraph keeps a high containment where its Jaccard
    drops. From Jaccard and the set sizes: |A ∩ B| = J (|A| + |B|) / (1 + J).
    """
    jaccard = similarity(a, b)
    if jaccard == 0.0:
        return 0.0
    shared = jaccard * (a.size + b.size) / (1.0 + jaccard)
    return min(1.0, shared / min(a.size, b.size))


# ------------------------------------------------------------------------ attribution

_SOURCE_NAME = r"(?P<name>[^\W\d_][\w.&' -]{0,60}?)"
_SOURCE_LINES = [
    re.compile(rf"^\(?\s*(?:source|sources|via)\s*[:：]\s*{_SOURCE_NAME}\s*[.)]*$", re.I),
    re.compile(rf"^\(?\s*via\s+{_SOURCE_NAME}\s*[.)]*$", re.I),
    # A dash, not a hyphen: "- Iran" is a list item.
    re.compile(rf"^[—–]\s*{_SOURCE_NAME}\s*\.?$", re.I),
    re.compile(
        rf"^(?:this|the)\s+(?:article|story|report|piece)\s+(?:was\s+)?(?:originally|first)\s+"
        rf"(?:published|appeared)\s+(?:by|on|in|at)\s+{_SOURCE_NAME}\s*[.)]*$",
        re.I,
    ),
]
# The same attribution at the end of the last paragraph: "… he said. (Source: IRNA)"
_SOURCE_TAIL = re.compile(rf"\((?:source|via)\s*[:：]?\s*{_SOURCE_NAME}\s*\)\s*\.?$", re.I)
_EDGE_LINES: Final = 3
_MAX_NAME_WORDS: Final = 6


def normalise_source(name: str) -> str:
    """A source name for comparison: NFKC, casefolded, words only, one space between them:
    "Press TV." → "press tv", "PressTV.ir" → "presstv ir"."""
    name = unicodedata.normalize("NFKC", name).casefold()
    return " ".join(_WORD.findall(_APOSTROPHES.sub("", name)))


def republication_source(text: str) -> str | None:
    """The source a republished article names, normalised; None if it names none.

    Looks at the first and the last three lines (paragraphs) for a line that is only an
    attribution — "Source: Press TV", "(Source: IRNA)", "— Press TV", "via Tasnim", "This
    article was originally published by …" — and at the end of the last paragraph for "(Source:
    …)". The name comes back as :func:`normalise_source` gives it ("press tv", "saba");
    :func:`source_site` tells which of this project's sites it is, if any.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    edge = lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]
    for line in edge:
        for pattern in _SOURCE_LINES:
            match = pattern.match(line)
            if match and (name := _accept(match["name"])):
                return name
    if lines and (match := _SOURCE_TAIL.search(lines[-1])) and (name := _accept(match["name"])):
        return name
    return None


def _accept(raw: str) -> str | None:
    name = normalise_source(raw)
    if not name or len(name.split()) > _MAX_NAME_WORDS:
        return None
    return name


def source_site(name: str, source_sites: Mapping[str, str] = SOURCE_SITES) -> str | None:
    """The site key of a normalised source name ("press tv" → "presstv"), None if unknown."""
    return source_sites.get(name)


# ----------------------------------------------------------------------------- linking


class Overlap(NamedTuple):
    """What two texts share, exactly."""

    jaccard: float  # of the word 5-shingles
    containment: float  # of the smaller text's 5-shingles in the other
    phrases: float  # share of the smaller text's word 3-shingles in the other
    names: frozenset[str]  # proper names both texts have (capitalised word pairs, chained)
    shingles: int  # 5-shingles of the smaller text


class Link(NamedTuple):
    """A link between two articles: its kind and the measure that decided it.

    The score of a republication is the containment, of a near-duplicate the Jaccard, of a
    same-event link the 3-shingle share (all of :class:`Overlap`).
    """

    kind: LinkKindName
    score: float


def overlap(a_text: str, b_text: str) -> Overlap:
    """The exact measures :func:`link_kind` decides on (and ``bench/related.py`` prints)."""
    a_words, b_words = words(a_text), words(b_text)
    a5, b5 = shingles(a_words), shingles(b_words)
    a3, b3 = shingles(a_words, PHRASE_WORDS), shingles(b_words, PHRASE_WORDS)
    return Overlap(
        jaccard=_ratio(len(a5 & b5), len(a5 | b5)),
        containment=_ratio(len(a5 & b5), min(len(a5), len(b5))),
        phrases=_ratio(len(a3 & b3), min(len(a3), len(b3))),
        names=_chained(names(a_text) & names(b_text)),
        shingles=min(len(a5), len(b5)),
    )


def link_kind(
    a_text: str,
    b_text: str,
    *,
    a_site: str | None = None,
    b_site: str | None = None,
    a_published: datetime | None = None,
    b_published: datetime | None = None,
    max_days: float = SAME_EVENT_DAYS,
    source_sites: Mapping[str, str] = SOURCE_SITES,
) -> Link | None:
    """The kind of link between two articles of different sites, or None.

    ``a_site``/``b_site`` (site keys such as "presstv") let a text that names the other's
    site as its source be a republication; without them there are none. ``a_published`` and
    ``b_published`` (naive ones are taken as UTC), when both are given, must be at most
    ``max_days`` apart for a same-event link; copies link whenever they were published.
    ``source_sites`` maps normalised source names to site keys. Two articles of one site are
    never linked: a site's own copies are versions or duplicates of one article, the catalog's
    business.
    """
    if a_site is not None and a_site == b_site:
        return None
    measured = overlap(a_text, b_text)
    copy_sized = measured.shingles >= CONTAINMENT_MIN_SHINGLES
    if (
        measured.containment >= REPUBLICATION_CONTAINMENT
        and copy_sized
        and (_names_site(a_text, b_site, source_sites) or _names_site(b_text, a_site, source_sites))
    ):
        return Link("republication", measured.containment)
    if measured.jaccard >= NEAR_DUPLICATE_JACCARD or (
        measured.containment >= NEAR_DUPLICATE_CONTAINMENT and copy_sized
    ):
        return Link("near-duplicate", measured.jaccard)
    if (
        measured.phrases >= SAME_EVENT_PHRASES
        and len(measured.names) >= SAME_EVENT_NAMES
        and _within(a_published, b_published, max_days)
    ):
        return Link("same-event", measured.phrases)
    return None


def related_pairs(
    keys: Iterable[tuple[str, list[tuple[int, int]]]],
) -> set[tuple[str, str]]:
    """The candidate pairs among articles given as ``(id, bands(signature))``: the pairs that
    share a band, each once, ids in order. What a SQL self-join on (band, hash) returns."""
    buckets: dict[tuple[int, int], list[str]] = {}
    for article, article_bands in keys:
        for key in article_bands:
            buckets.setdefault(key, []).append(article)
    pairs: set[tuple[str, str]] = set()
    for members in buckets.values():
        ordered = sorted(set(members))
        pairs.update(
            (first, second) for i, first in enumerate(ordered) for second in ordered[i + 1 :]
        )
    return pairs


def _is_title(line: str, tokens: list[str]) -> bool:
    """A headline or subheading in title case: no closing punctuation, most words capitalised."""
    if line.rstrip()[-1:] in _SENTENCE_CLOSERS:
        return False
    long_words = [t for t in tokens if len(t) > 3 and t[0].isalpha()]
    return sum(t[0].isupper() for t in long_words) * 2 > len(long_words)


def _chained(pairs: frozenset[str]) -> frozenset[str]:
    """Shared name pairs joined where they continue each other: "united nations", "nations
    security" and "security council" are one name, "united nations security council"."""
    follows: dict[str, list[str]] = {}
    seconds = set()
    for pair in sorted(pairs):
        first, second = pair.split(" ", 1)
        follows.setdefault(first, []).append(second)
        seconds.add(second)
    chained: set[str] = set()
    used: set[tuple[str, str]] = set()
    starts = [w for w in sorted(follows) if w not in seconds] + sorted(follows)
    for start in starts:
        for second in follows.get(start, []):
            if (start, second) in used:
                continue
            chain = [start, second]
            used.add((start, second))
            while nexts := [w for w in follows.get(chain[-1], []) if (chain[-1], w) not in used]:
                used.add((chain[-1], nexts[0]))
                chain.append(nexts[0])
            chained.add(" ".join(chain))
    return frozenset(chained)


def _names_site(text: str, site: str | None, source_sites: Mapping[str, str]) -> bool:
    if site is None:
        return False
    source = republication_source(text)
    return source is not None and source_site(source, source_sites) == site


def _within(a: datetime | None, b: datetime | None, max_days: float) -> bool:
    if a is None or b is None:
        return True
    a = a if a.tzinfo else a.replace(tzinfo=UTC)
    b = b if b.tzinfo else b.replace(tzinfo=UTC)
    return abs(a - b) <= timedelta(days=max_days)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
