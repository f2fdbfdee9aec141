"""The worker's payload digest check reads a ``sha1:BASE32`` label as a number: for every
label, it decides as the string comparison (then ``digest_matches``) did."""

from __future__ import annotations

import hashlib
import random

from crawler.access.records import digest_matches
from crawler.capture.records import sha1_digest
from crawler.crawl.reextract_worker import _sha1_label_value


def by_string(label: str, payload: bytes) -> bool | None:
    if label[:5].lower() == "sha1:" and sha1_digest(payload) == "sha1:" + label[5:].upper():
        return True
    return digest_matches(label, payload) if label else None


def by_number(label: str, payload: bytes) -> bool | None:
    number = _sha1_label_value(label)
    if number is not None and number == int.from_bytes(hashlib.sha1(payload).digest()):
        return True
    return digest_matches(label, payload) if label else None


def labels(payload: bytes, rng: random.Random) -> list[str]:
    right = sha1_digest(payload)
    value = right[5:]
    out = [
        right,
        right.lower(),
        "SHA1:" + value,
        "Sha1:" + value.lower(),
        right + " ",
        " " + right,
        right + "=",
        right[:-1],
        "sha1:" + value.replace("S", "ſ").replace("I", "ı"),  # upper() makes them S and I
        "sha-1:" + value,
        "sha2:" + value,  # the right symbols under another name
        "md5x:" + value,
        "sha1:" + hashlib.sha1(payload).hexdigest(),
        "sha256:" + hashlib.sha256(payload).hexdigest(),
        "sha1:",
        "",
        "md5:" + hashlib.md5(payload).hexdigest(),
    ]
    # A symbol of value below 10 as an Arabic-Indic digit, which int() reads as that value.
    low = [i for i, c in enumerate(value) if c in "ABCDEFGHIJ"]
    if low:
        at = low[0]
        out.append("sha1:" + value[:at] + chr(0x660 + ord(value[at]) - 65) + value[at + 1 :])
    for _ in range(40):  # one symbol changed, to another one or to what int() would take
        at = rng.randrange(32)
        symbol = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abz01890_+- =٣")
        out.append("sha1:" + value[:at] + symbol + value[at + 1 :])
    return out


def test_the_digest_check_decides_as_the_string_comparison() -> None:
    rng = random.Random(21)
    agreed = matched = 0
    for size in (0, 1, 100, 30_000):
        for _ in range(20):
            payload = rng.randbytes(size)
            for label in labels(payload, rng):
                assert by_number(label, payload) == by_string(label, payload), label
                agreed += 1
                matched += by_number(label, payload) is True
    assert matched > 100 and agreed - matched > 100


def test_only_a_32_symbol_sha1_label_reads_as_a_number() -> None:
    payload = b"page"
    value = sha1_digest(payload)[5:]
    assert _sha1_label_value("sha1:" + value) == int.from_bytes(hashlib.sha1(payload).digest())
    assert _sha1_label_value("SHA1:" + value.lower()) == _sha1_label_value("sha1:" + value)
    for other in ("sha1:" + value[:-1], "sha1:+" + value[1:], "sha1:_" + value[1:], "md5:" + value):
        assert _sha1_label_value(other) is None
