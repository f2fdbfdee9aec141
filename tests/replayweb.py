"""ReplayWeb.page (npm `replaywebpage`) on a loopback server, driven in Debian's Chromium.

The app's static files (``index.html``, ``ui.js``, ``sw.js``) and the WACZ files under test are
served by one threaded HTTP server on 127.0.0.1 (byte ranges included: ReplayWeb.page reads a
WACZ by ranges). A small page embeds the ``<replay-web-page>`` element; its service worker lives
under ``/replay/`` (the element's default ``replaybase``), which serves the app again. Chromium
reaches nothing but loopback: names resolve to nothing and other addresses go to a closed port.
"""

from __future__ import annotations

import mimetypes
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from playwright.sync_api import Error as PlaywrightError

from crawler.fetch.render import CHROMIUM_ARGS

# Where `scripts/bootstrap --test` unpacks the package (git ignores .venv/).
DEFAULT_APP = Path(__file__).resolve().parent.parent / ".venv" / "replaywebpage"
# Nothing but loopback: no name resolves, and any other address goes to a closed port (Chromium
# never sends loopback through a proxy).
LOOPBACK_ONLY = (
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
)
NOT_FOUND = "Archived Page Not Found"
EMBED = """<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <title>newsarchive: ReplayWeb.page test</title>
    <script src="/ui.js"></script>
  </head>
  <body style="margin: 0; height: 100vh">
    <script>
      const params = new URLSearchParams(location.search);
      const embed = document.createElement("replay-web-page");
      for (const name of ["source", "url", "view", "query", "embed"]) {
        if (params.get(name)) embed.setAttribute(name, params.get(name));
      }
      document.body.appendChild(embed);
    </script>
  </body>
</html>
"""
TYPES = {
    ".js": "application/javascript",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".wacz": "application/wacz+zip",
    ".gz": "application/octet-stream",
}
# Walks open shadow roots and same-origin frames: the app is Lit components all the way down.
DEEP_ALL = """
(selector) => {
  const found = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.matches(selector)) found.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return found;
}
"""
SEARCH_STATE = (
    "() => { const [view] = (" + DEEP_ALL + ')("wr-page-view");'
    """
  if (!view) return null;
  return {
    ready: Boolean(view.flex) && !view.updatingSearch && !view.loading,
    query: view.query,
    urls: (view.sortedPages || []).map((page) => page.url),
  };
}
"""
)


def squash(text: str) -> str:
    """``text`` with each run of white space (no-break spaces too) as one space."""
    return " ".join(text.split())


def app_dir() -> Path | None:
    """The unpacked package (``NEWSARCHIVE_REPLAYWEB`` or the bootstrap's place), if any."""
    env = os.environ.get("NEWSARCHIVE_REPLAYWEB")
    for candidate in ([Path(env)] if env else []) + [DEFAULT_APP]:
        if all((candidate / name).is_file() for name in ("index.html", "ui.js", "sw.js")):
            return candidate
    return None


class ReplayError(AssertionError):
    """ReplayWeb.page did not show what was asked for in time; carries what it showed."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: Path
    files: dict[str, Path]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _resolve(self, path: str) -> tuple[bytes | Path | None, str]:
        if path in ("/", "/embed.html"):
            return EMBED.encode(), TYPES[".html"]
        if path in self.server.files:
            return self.server.files[path], TYPES[".wacz"]
        # The service worker's scope serves the app again (its page loads ./ui.js there).
        rel = path.removeprefix("/replay/") if path.startswith("/replay/") else path[1:]
        if rel == "":
            rel = "index.html"
        app = self.server.app.resolve()
        target = (app / rel).resolve()
        if not target.is_relative_to(app) or not target.is_file():
            return None, ""
        kind = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0]
        return target, kind or "application/octet-stream"

    def _serve(self, body: bool) -> None:
        found, kind = self._resolve(unquote(urlsplit(self.path).path))
        if found is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        data = found if isinstance(found, bytes) else found.read_bytes()
        status, start, end = HTTPStatus.OK, 0, len(data)
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if ranged and (ranged[1] or ranged[2]):
            if ranged[1]:
                start = int(ranged[1])
                end = min(int(ranged[2]) + 1, len(data)) if ranged[2] else len(data)
            else:
                start = max(len(data) - int(ranged[2]), 0)
            if start >= len(data) or start >= end:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Cache-Control", "no-store")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        if kind == TYPES[".js"]:
            self.send_header("Service-Worker-Allowed", "/")
        self.end_headers()
        if body:
            self.wfile.write(data[start:end])


class ReplayWeb:
    """A loopback server for the app and some WACZ files, and a Chromium to look with."""

    def __init__(self, server: _Server, browser: Any) -> None:
        self.server = server
        self.browser = browser
        host, port = server.server_address[:2]
        self.base = f"http://{host!s}:{port}"
        # Requests any page made to anything but this server (there should be none).
        self.outside: list[str] = []

    def add(self, wacz: Path) -> str:
        """Serve ``wacz``; returns its path on the server (the embed's ``source``)."""
        path = f"/wacz/{len(self.server.files)}/{wacz.name}"
        self.server.files[path] = wacz
        return path

    @contextmanager
    def _open(self, **params: str) -> Iterator[Any]:
        # A fresh context each time: its own service worker, cache and IndexedDB.
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        context.on("request", self._note)
        try:
            page = context.new_page()
            page.goto(f"{self.base}/embed.html?{urlencode(params)}")
            yield page
        finally:
            context.close()

    def _note(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and (
            f"{parts.scheme}://{parts.netloc}" != self.base
        ):
            self.outside.append(request.url)

    def replay_text(self, source: str, url: str, expect: str = "", timeout: float = 45) -> str:
        """The visible text of archived ``url`` as replayed from ``source``.

        Waits until the archived page's frame shows ``expect`` (white space aside; with no
        ``expect``, any text at all); raises
        `ReplayError` with what the app showed instead (e.g. "Archived Page Not Found").
        """
        with self._open(source=source, url=url, embed="replayonly") as page:
            deadline = time.monotonic() + timeout
            text = ""
            not_found_since: float | None = None
            while time.monotonic() < deadline:
                for frame in page.frames:
                    if "mp_/" not in frame.url or not frame.url.endswith(url):
                        continue
                    try:
                        text = str(frame.locator("body").inner_text(timeout=2000))
                    except PlaywrightError:  # a frame being replaced while read
                        continue
                    if text.strip() and squash(expect) in squash(text):
                        return text
                # ReplayWeb.page's own answer for a URL its index lacks or it cannot read: final
                # once it has stood for a few seconds.
                if NOT_FOUND in text:
                    not_found_since = not_found_since or time.monotonic()
                    if time.monotonic() - not_found_since > 3:
                        break
                page.wait_for_timeout(250)
            raise ReplayError(
                f"{url} did not replay from {source} with {expect!r}; the replayed "
                f"frame showed {text[:500]!r}; the app showed: {self._app_text(page)[:1500]!r}"
            )

    def search(self, source: str, query: str, timeout: float = 45) -> list[str]:
        """The pages ReplayWeb.page's full-text search lists for ``query`` (their URLs).

        Types ``query`` into the pages view's search box once its text index is built, as a
        reader would, and returns the listed results once the search has settled.
        """
        with self._open(source=source, view="pages") as page:
            deadline = time.monotonic() + timeout
            app = self._app_frame(page, deadline)
            state = self._settled(app, deadline, lambda s: s["ready"])
            box = app.locator("wr-page-view input.input").first
            box.fill(query, timeout=max(1000, (deadline - time.monotonic()) * 1000))
            state = self._settled(app, deadline, lambda s: s["ready"] and s["query"] == query)
            if state is None:
                raise ReplayError(
                    f"search for {query!r} in {source} did not finish within {timeout:.0f} s; "
                    f"the app showed: {self._app_text(page)[:1500]!r}"
                )
            urls: list[str] = state["urls"]
            return urls

    def _app_frame(self, page: Any, deadline: float) -> Any:
        while time.monotonic() < deadline:
            for frame in page.frames:
                if urlsplit(frame.url).path == "/replay/":
                    try:
                        if frame.evaluate(SEARCH_STATE) is not None:
                            return frame
                    except PlaywrightError:  # reloaded while the worker starts
                        pass
            page.wait_for_timeout(250)
        raise ReplayError(f"ReplayWeb.page's pages view did not open: {self._app_text(page)!r}")

    @staticmethod
    def _settled(app: Any, deadline: float, done: Any) -> dict[str, Any] | None:
        """The search view's state once ``done`` holds for it twice in a row, half a second
        apart (a search runs after a 250 ms pause in typing)."""
        last = None
        while time.monotonic() < deadline:
            state: dict[str, Any] | None = app.evaluate(SEARCH_STATE)
            if state is not None and done(state):
                if state == last:
                    return state
                last = state
            else:
                last = None
            app.wait_for_timeout(500)
        return None

    @staticmethod
    def _app_text(page: Any) -> str:
        texts = []
        for frame in page.frames:
            try:
                texts.append(frame.locator("body").inner_text(timeout=1000))
            except PlaywrightError:  # diagnostics only
                continue
        return " | ".join(t.strip() for t in texts if t.strip())


@contextmanager
def replayweb(app: Path, chromium: Path) -> Iterator[ReplayWeb]:
    """The server on a free loopback port and a headless Chromium; both stop on exit."""
    from playwright.sync_api import sync_playwright

    server = _Server(("127.0.0.1", 0), _Handler)
    server.app = app
    server.files = {}
    thread = threading.Thread(target=server.serve_forever, name="replayweb", daemon=True)
    thread.start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(chromium), args=[*CHROMIUM_ARGS, *LOOPBACK_ONLY]
            )
            try:
                yield ReplayWeb(server, browser)
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
