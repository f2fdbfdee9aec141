"""System calls per object written by ``LocalStore.put_bytes`` and the spool's ``write_aside``
(a figure the machine's load does not move, unlike their CPU time).

    .venv/bin/python -m bench.store_syscalls [--tree DIR]

Runs 1,000 writes of a 3 KB text into one directory (made by 50 writes before) under
``strace -f``, in a child process importing ``crawler`` from ``--tree`` (a source tree, e.g.
``git archive REV | tar -x -C DIR``; default this checkout), and prints the calls counted
after the warm-up, by name.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import os, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import crawler.store.base as base, crawler.store.spool as spool
tmp = tempfile.mkdtemp()
if sys.argv[2] == "spool":
    put = spool.Backlog(Path(tmp) / "spool", "crawl-1", "s3://bucket/").write_aside
else:
    put = base.LocalStore(Path(tmp) / "store").put_bytes
for i in range(50):
    put(f"text/site/2024/01/02/warm-{i}.txt", b"x" * 3000)
os.write(2, b"MARK\\n")
for i in range(1000):
    put(f"text/site/2024/01/02/slug-{i}.txt", b"x" * 3000)
"""


def count(tree: Path, target: str) -> collections.Counter[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trace"
        subprocess.run(
            ["strace", "-f", "-o", str(out), sys.executable, "-c", _CHILD, str(tree), target],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        lines = out.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if 'write(2, "MARK' in line)
    calls: collections.Counter[str] = collections.Counter()
    for line in lines[start + 1 :]:
        name = line.split(maxsplit=1)[-1].split("(", 1)[0]
        if name.isidentifier():
            calls[name] += 1
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    for target in ("store", "spool"):
        calls = count(args.tree.resolve(), target)
        named = ", ".join(f"{name} {n / 1000:g}" for name, n in calls.most_common() if n >= 500)
        print(f"{target}: {sum(calls.values()) / 1000:.1f} system calls per object ({named})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
