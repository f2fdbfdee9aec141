"""Benchmark: a rendered crawl of synthetic JavaScript pages through the loopback mirror.

    python -m bench.render                # 500 pages
    python -m bench.render --pages 100 --max-pages 8

Each page is a shell whose script fetches the article from a JSON endpoint and inserts it (as
president.ir does); every page is rendered in Chromium, its network traffic and DOM archived,
its text extracted. The mirror runs in this process, the crawl in a child process; prints
pages/s, the CPU time per page (the crawl's Python process, where the egress proxy relays and
archives every exchange, and all of it: crawl, Playwright's driver and Chromium's processes),
and the peak memory of the crawl process with its Chromium and Playwright children (the sum of
their RSS, and of their PSS, which counts shared pages once).

To compare with another revision (e.g. before the egress proxy), run this file from there:
``git worktree add /tmp/before <rev> && cp bench/render.py /tmp/before/bench/ && cd /tmp/before
&& python -m bench.render --pages 100``; alternate the two, take the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
HOST = "render.bench.newsarchive.test"
BASE = f"https://{HOST}"
_WORDS = ("minister", "talks", "summit", "council", "trade", "energy", "border", "envoy", "reform")

APP_JS = b"""(function () {
  var app = document.getElementById("app");
  fetch(app.getAttribute("data-src")).then(function (r) { return r.json(); })
    .then(function (page) { app.innerHTML = page.html; });
})();
"""


def shell(n: int) -> bytes:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>Bench article {n}</title>"
        '<link rel="stylesheet" href="/static/site.css"></head><body>'
        f'<div id="app" data-src="/api/page/{n}">Loading…</div>'
        '<script src="/static/app.js"></script></body></html>'
    ).encode()


def article_json(n: int) -> bytes:
    rng = random.Random(n)
    paragraphs = "".join(
        "<p>" + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(40, 90))) + ".</p>"
        for _ in range(rng.randint(8, 20))
    )
    html = f'<h1>Bench article {n}</h1><div class="story">{paragraphs}</div>'
    return json.dumps({"html": html}).encode()


def install(server: Any) -> None:
    from crawler.mirror.messages import MirrorResponse

    def handler(req: Any) -> Any:
        path = req.path
        if path == "/robots.txt":
            return MirrorResponse(body=b"User-agent: *\nAllow: /\n", content_type="text/plain")
        if path == "/static/app.js":
            return MirrorResponse(body=APP_JS, content_type="application/javascript")
        if path == "/static/site.css":
            return MirrorResponse(body=b"body{margin:0}", content_type="text/css")
        kind, _, number = path.strip("/").rpartition("/")
        if not number.isdigit():
            return None
        if kind == "a":
            return MirrorResponse(body=shell(int(number)), content_type="text/html; charset=utf-8")
        if kind == "api/page":
            return MirrorResponse(
                body=article_json(int(number)), content_type="application/json", encoding="gzip"
            )
        return None

    server.add_handler(HOST, "/", handler)


# ------------------------------------------------------------------ the crawl (child process)


def crawl(pages: int, settings: dict[str, str]) -> None:
    import scrapy
    from scrapy.crawler import CrawlerProcess
    from scrapy.http import Response
    from scrapy.utils.project import get_project_settings

    from crawler.constants import META_RENDER, META_RENDER_READY
    from crawler.crawl.items import ArticlePage
    from crawler.text.extract import SiteRules

    class RenderBenchSpider(scrapy.Spider):
        name = "renderbench"
        allowed_domains: ClassVar[list[str]] = [HOST]
        rules = SiteRules(title=("h1",), body=("div.story",))

        async def start(self) -> AsyncIterator[scrapy.Request]:
            for n in range(pages):
                yield scrapy.Request(
                    f"{BASE}/a/{n}", meta={META_RENDER: True, META_RENDER_READY: "div.story"}
                )

        def parse(self, response: Response) -> Any:
            yield ArticlePage(
                url=response.url,
                site=self.name,
                article_id=response.url.rsplit("/", 1)[1],
                html=response.text,
                encoding="utf-8",
                status=response.status,
                request_url=response.url,
                discovery=[{"via": "bench", "source": BASE}],
            )

    os.environ["SCRAPY_SETTINGS_MODULE"] = "settings"
    project = get_project_settings()
    project.setdict(settings, priority="cmdline")
    process = CrawlerProcess(project)
    crawler = process.create_crawler(RenderBenchSpider)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats() if crawler.stats else {}
    keys = (
        "archive/render/pages",
        "archive/articles/new",
        "archive/render/timeout",
        "archive/render/not_ready",
    )
    own = resource.getrusage(resource.RUSAGE_SELF)
    figures: dict[str, float] = {k: stats.get(k, 0) for k in keys}
    figures["cpu_crawl_process"] = own.ru_utime + own.ru_stime
    print(json.dumps(figures), flush=True)


# ------------------------------------------------------------------ measuring


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # the process is gone
                todo.extend(int(c) for c in task.read_text().split())
    return out


def _memory(pid: int) -> tuple[int, int]:
    """RSS and PSS (bytes) of a process and all its descendants."""
    rss = pss = 0
    for member in _tree(pid):
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in ("Rss", "Pss"):
                    kb = int(value.split()[0]) * 1024
                    rss, pss = (rss + kb, pss) if name == "Rss" else (rss, pss + kb)
        except (OSError, ValueError):
            continue
    return rss, pss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.render",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--max-pages", type=int, default=4, help="ARCHIVE_RENDER_MAX_PAGES")
    parser.add_argument("--crawl", nargs=2, metavar=("PAGES", "SETTINGS_JSON"), help="internal")
    ns = parser.parse_args(argv)
    if ns.crawl:
        crawl(int(ns.crawl[0]), json.loads(ns.crawl[1]))
        return 0

    from crawler.mirror.server import MirrorServer

    store = tempfile.mkdtemp(prefix="bench-render-")
    with MirrorServer([]) as mirror:
        install(mirror)
        settings = {
            "ARCHIVE_STORE_URI": store,
            "ARCHIVE_PROXY": mirror.proxy_url,
            "ARCHIVE_RENDER_TRUSTED_SPKI": mirror.spki_sha256,
            "ARCHIVE_RENDER_MAX_PAGES": str(ns.max_pages),
            "ARCHIVE_CATALOG_ENABLED": "False",
            "DOWNLOAD_DELAY": "0",
            "AUTOTHROTTLE_ENABLED": "False",
            "CONCURRENT_REQUESTS_PER_DOMAIN": str(ns.max_pages * 2),
            "LOG_LEVEL": "WARNING",
        }
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.render", "--crawl", str(ns.pages), json.dumps(settings)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        peak = [0, 0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                rss, pss = _memory(proc.pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        elapsed = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        done.set()
        sampler.join()
    figures = json.loads(out.strip().splitlines()[-1])
    rendered = int(figures["archive/render/pages"])
    # Every process of the crawl's tree that was waited for: Chromium's, the driver, the crawl.
    cpu_all = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    cpu_crawl = float(figures.pop("cpu_crawl_process"))
    print(f"pages rendered and archived: {rendered} of {ns.pages} ({figures})")
    print(f"elapsed: {elapsed:.1f} s (browser start included), {rendered / elapsed:.2f} pages/s")
    per_page = max(rendered, 1)
    print(
        f"CPU per page: {1000 * cpu_crawl / per_page:.1f} ms in the crawl's Python process, "
        f"{1000 * cpu_all / per_page:.1f} ms in all (crawl + Playwright + Chromium)"
    )
    print(
        f"peak memory, crawl + Chromium + Playwright: RSS sum {peak[0] / 2**20:.0f} MB, "
        f"PSS sum {peak[1] / 2**20:.0f} MB"
    )
    return 0 if proc.returncode == 0 and rendered == ns.pages else 1


if __name__ == "__main__":
    sys.exit(main())
