"""What the doubly encoded UTF-8 check costs per page (issue 23), by CPU time.

For 100 KB pages (English, Arabic, Persian, French, German; clean, then the Arabic one encoded
twice) and for the mirror's article pages, each round times: the pre-check alone
(``_double_utf8_suspected``, what every clean page pays), the whole decoding
(``decode_page``: Scrapy's inference, mending, the record and the check) and, for a page that
holds doubly encoded text, the repair. Rounds are interleaved; the best round of each is
printed (load from elsewhere counts least), with the machine's load beside it.

    python -m bench.decoding [--rounds 5] [--repeat 200]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from crawler.text.page import _double_utf8_suspected, decode_page, repair_double_utf8

SITES = Path(__file__).resolve().parent.parent / "crawler" / "mirror" / "sites"
SIZE = 100_000
PARAGRAPHS = {
    "english": "The minister’s aide said on Tuesday that “talks” would resume in Geneva. ",
    "arabic": "أعلن وزير الخارجية اليوم عن مبادرة جديدة للسلام في المنطقة. ",
    "persian": "پيام چهارم گفتگو درباره صلح و همکاری‌های منطقه‌ای امروز منتشر شد. ",
    "french": "Le ministre a déclaré que les négociations reprendront à Genève « bientôt ». ",
    "german": "Der Außenminister erklärte, die Gespräche würden in Genf fortgesetzt. ",
}


def _page(paragraph: str) -> bytes:
    head = "<html><head><meta charset='utf-8'><title>A story</title></head><body><article>"
    out = head
    while len(out.encode()) < SIZE:
        out += f"<p class='para'>{paragraph * 4}</p>\n"
    return (out + "</article></body></html>").encode()


def _twice(data: bytes) -> bytes:
    return "".join(
        chr(b) if b in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else bytes([b]).decode("cp1252") for b in data
    ).encode()


def _cpu_us(fn: Callable[[], object], repeat: int) -> float:
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    pages = {name: _page(p) for name, p in PARAGRAPHS.items()}
    pages["arabic encoded twice"] = _twice(pages["arabic"])
    # A clean page whose second half is doubly encoded: repaired a run at a time.
    half = len(pages["arabic"].decode()) // 2
    pages["arabic, half encoded twice"] = (
        pages["arabic"].decode()[:half] + _twice(pages["arabic"].decode()[half:].encode()).decode()
    ).encode()
    mirror = [p.read_bytes() for p in sorted(SITES.glob("*/*.html"))]
    ctype = "text/html; charset=utf-8"
    decoded = {name: decode_page(body, ctype)[0] for name, body in pages.items()}
    plain = {name: body.decode() for name, body in pages.items()}

    jobs: dict[str, Callable[[], object]] = {}
    for name, body in pages.items():
        text = plain[name]
        jobs[f"{name}: pre-check"] = lambda b=body, t=text: _double_utf8_suspected(b, t, "utf-8", 0)
        jobs[f"{name}: decode_page"] = lambda b=body: decode_page(b, ctype)
    for name in ("arabic encoded twice", "arabic, half encoded twice"):
        jobs[f"{name}: repair"] = lambda t=plain[name]: repair_double_utf8(t)
    mirror_text = [m.decode() for m in mirror]
    jobs[f"mirror ({len(mirror)} pages): pre-check, per page"] = lambda: [
        _double_utf8_suspected(b, t, "utf-8", 0) for b, t in zip(mirror, mirror_text, strict=True)
    ]
    jobs[f"mirror ({len(mirror)} pages): decode_page, per page"] = lambda: [
        decode_page(b, ctype) for b in mirror
    ]
    assert decoded["arabic encoded twice"] == plain["arabic"]
    assert decoded["arabic, half encoded twice"] == plain["arabic"]
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for label, fn in jobs.items():
            repeat = args.repeat if "mirror" not in label else max(args.repeat // 20, 1)
            took = _cpu_us(fn, repeat)
            if "mirror" in label:
                took /= len(mirror)
            best[label] = min(best.get(label, took), took)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min); best of {args.rounds} rounds, CPU time")
    for label, took in best.items():
        print(f"  {label:48s} {took:10.1f} us")


if __name__ == "__main__":
    main()
