"""Threshold study for issue 20: every cross-site pair of a store's article texts, measured.

    python -m bench.related /tmp/simdemo
    python -m bench.related /tmp/simdemo --expect almasirah/53210,irna/85859288,president/158877
    python -m bench.related /tmp/simdemo --same-site

Reads ``<store>/text/<site>/…/<id>[.v<N>].txt`` with their JSON sidecars (the newest version of
each article; a text without a sidecar takes its site from the folder under ``text/``), and
prints for each pair of articles of different sites: the MinHash estimate of the 5-shingle
Jaccard, the exact Jaccard (J5) and containment (C5), the share of the smaller text's
3-shingles in the other (P3), the proper names both have, whether the pair shares an LSH band,
the days between their publication dates, and the link :func:`crawler.text.similar.link_kind`
decides, on the texts alone and with the dates. Then, per measure, the lowest value among the
linked pairs (or the pairs ``--expect`` names as one event) and the highest among the others.

Make a store from the loopback mirror with ``newsarchive demo --store /tmp/simdemo``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from crawler.text.similar import (
    NEAR_DUPLICATE_JACCARD,
    SAME_EVENT_DAYS,
    SAME_EVENT_NAMES,
    SAME_EVENT_PHRASES,
    SIGNATURE_VERSION,
    Link,
    Overlap,
    Signature,
    bands,
    link_kind,
    overlap,
    republication_source,
    signature,
    similarity,
)


@dataclass(frozen=True)
class Doc:
    site: str
    article_id: str
    text: str
    published: datetime | None
    version: int

    @property
    def name(self) -> str:
        return f"{self.site}/{self.article_id}"


@dataclass(frozen=True)
class Row:
    a: Doc
    b: Doc
    estimate: float
    measured: Overlap
    shares_band: bool
    days: float | None
    link: Link | None
    dated_link: Link | None


def load(store: Path) -> list[Doc]:
    """The newest version of every article text under the store's ``text/``."""
    root = store / "text" if (store / "text").is_dir() else store
    newest: dict[tuple[str, str], Doc] = {}
    for path in sorted(root.rglob("*.txt")):
        sidecar = path.with_suffix(".json")
        meta = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else {}
        site = meta.get("site") or path.relative_to(root).parts[0]
        article_id = meta.get("article_id") or path.stem.split(".v")[0]
        published = meta.get("published")
        doc = Doc(
            site=site,
            article_id=str(article_id),
            text=path.read_text(encoding="utf-8"),
            published=datetime.fromisoformat(published) if published else None,
            version=int(meta.get("version") or 1),
        )
        key = (doc.site, doc.article_id)
        if key not in newest or newest[key].version < doc.version:
            newest[key] = doc
    return sorted(newest.values(), key=lambda d: (d.site, d.article_id))


def measure(docs: list[Doc], *, same_site: bool) -> list[Row]:
    sigs: dict[str, Signature] = {d.name: signature(d.text) for d in docs}
    keys = {name: set(bands(sig)) for name, sig in sigs.items()}
    rows = []
    for a, b in itertools.combinations(docs, 2):
        if a.site == b.site and not same_site:
            continue
        # Same-site pairs are measured without their sites (link_kind never links those).
        a_site, b_site = (a.site, b.site) if a.site != b.site else (None, None)
        days = (
            abs((a.published - b.published).total_seconds()) / 86400
            if a.published and b.published
            else None
        )
        rows.append(
            Row(
                a=a,
                b=b,
                estimate=similarity(sigs[a.name], sigs[b.name]),
                measured=overlap(a.text, b.text),
                shares_band=bool(keys[a.name] & keys[b.name]),
                days=days,
                link=link_kind(a.text, b.text, a_site=a_site, b_site=b_site),
                dated_link=link_kind(
                    a.text,
                    b.text,
                    a_site=a_site,
                    b_site=b_site,
                    a_published=a.published,
                    b_published=b.published,
                ),
            )
        )
    rows.sort(key=lambda r: (-r.measured.phrases, r.a.name, r.b.name))
    return rows


def _short(doc: Doc) -> str:
    return doc.name if len(doc.name) <= 30 else doc.name[:29] + "…"


def _link(link: Link | None) -> str:
    return f"{link.kind} {link.score:.3f}" if link else "-"


def report(rows: list[Row], expected: list[set[str]], out: list[str]) -> None:
    out.append(
        f"{'pair':<62} {'est J5':>6} {'J5':>6} {'C5':>6} {'P3':>6} {'names':>5} {'band':>4} "
        f"{'days':>6}  link (text only) | link (dates ≤ {SAME_EVENT_DAYS:g} d)"
    )
    for r in rows:
        pair = f"{_short(r.a)} ~ {_short(r.b)}"
        days = f"{r.days:.1f}" if r.days is not None else "?"
        same = "  (same site)" if r.a.site == r.b.site else ""
        band = "yes" if r.shares_band else ""
        m = r.measured
        out.append(
            f"{pair:<62} {r.estimate:6.3f} {m.jaccard:6.3f} {m.containment:6.3f} "
            f"{m.phrases:6.3f} {len(m.names):5d} {band:>4} "
            f"{days:>6}  {_link(r.link)} | {_link(r.dated_link)}{same}"
        )
    cross = [r for r in rows if r.a.site != r.b.site]
    if expected:

        def is_true(r: Row) -> bool:
            return any({r.a.name, r.b.name} <= group for group in expected)

        true_rows = [r for r in cross if is_true(r)]
        false_rows = [r for r in cross if not is_true(r)]
        what = "expected"
    else:
        true_rows = [r for r in cross if r.link]
        false_rows = [r for r in cross if not r.link]
        what = "linked"
    out.append("")
    out.append(
        f"{len(cross)} cross-site pairs; {what}: {len(true_rows)}, others: {len(false_rows)}; "
        f"signatures {SIGNATURE_VERSION}"
    )
    if expected:
        for label, attr in (("text only", "link"), ("with dates", "dated_link")):
            hits = sum(1 for r in true_rows if getattr(r, attr))
            wrong = [r for r in false_rows if getattr(r, attr)]
            out.append(
                f"  {label}: {hits}/{len(true_rows)} expected pairs linked, "
                f"{len(wrong)} other pairs linked"
                + "".join(f"\n    wrongly linked: {r.a.name} ~ {r.b.name}" for r in wrong)
            )
            missed = [r for r in true_rows if not getattr(r, attr)]
            out.extend(
                f"    not linked: {r.a.name} ~ {r.b.name} ({r.days:.0f} days apart)"
                if r.days is not None
                else f"    not linked: {r.a.name} ~ {r.b.name}"
                for r in missed
            )
    measures = (
        ("P3 (same-event share)", lambda r: r.measured.phrases, SAME_EVENT_PHRASES),
        ("names shared", lambda r: float(len(r.measured.names)), float(SAME_EVENT_NAMES)),
        ("J5 exact", lambda r: r.measured.jaccard, NEAR_DUPLICATE_JACCARD),
        ("C5 exact", lambda r: r.measured.containment, None),
        ("J5 MinHash estimate", lambda r: r.estimate, None),
    )
    if true_rows and false_rows:
        for label, get, threshold in measures:
            low = min(true_rows, key=get)
            high = max(false_rows, key=get)
            ratio = get(low) / get(high) if get(high) else float("inf")
            gate = f", threshold {threshold:g}" if threshold is not None else ""
            out.append(
                f"  {label:<22} min {what} {get(low):.3f} ({_short(low.a)} ~ {_short(low.b)}), "
                f"max other {get(high):.3f} ({_short(high.a)} ~ {_short(high.b)}), "
                f"ratio {ratio:.1f}{gate}"
            )
    in_band = sum(1 for r in cross if r.shares_band)
    out.append(f"  cross-site pairs that share an LSH band: {in_band}")
    sources = sorted(
        {
            f"{d.name}: {src}"
            for r in rows
            for d in (r.a, r.b)
            if (src := republication_source(d.text)) is not None
        }
    )
    out.append("  named sources: " + ("; ".join(sources) if sources else "none"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", type=Path, help="a store directory (its text/ tree is read)")
    parser.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="SITE/ID,SITE/ID,…",
        help="articles about one event (repeatable): their pairs should link, no other should",
    )
    parser.add_argument(
        "--same-site", action="store_true", help="list pairs of one site as well (never linked)"
    )
    args = parser.parse_args(argv)
    docs = load(args.store)
    if len(docs) < 2:
        parser.error(f"{args.store}: fewer than two article texts found")
    expected = [set(group.split(",")) for group in args.expect]
    known = {d.name for d in docs}
    for name in set().union(*expected) - known if expected else set():
        parser.error(f"--expect: no article {name} in {args.store}")
    out: list[str] = []
    report(measure(docs, same_site=args.same_site), expected, out)
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
