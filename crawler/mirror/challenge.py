"""An ArvanCloud-style cookie challenge in front of a mirrored site.

A request without valid ``__arcsjs`` / ``__arcsjsc`` cookies is answered with a short page whose
script computes them (``'value_v1': eval("…")``, ``'value': eval("…")``, the shape of
ArvanCloud's own page), sets them and reloads. ``__arcsjsc`` is a token the mirror issued,
``__arcsjs`` a hash of it with the mirror's secret, so only a client that ran the script passes.
A token expires after ``ttl`` seconds or, with ``max_uses``, after that many requests: the
client then gets the challenge again.

In ``routes.json``: ``"challenge": {"ttl": 3600, "max_uses": 0}`` (both optional).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any, Protocol

from crawler.mirror.messages import MirrorResponse, RouteError

COOKIE_ANSWER = "__arcsjs"
COOKIE_TOKEN = "__arcsjsc"
_KEYS = frozenset({"ttl", "max_uses"})

_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="robots" content="noindex, nofollow">
<title>Checking your browser | ArvanCloud</title></head>
<body><div class="arvancloud-challenge"><p>Checking your browser before accessing the site.</p>
<noscript>Please enable JavaScript and cookies to continue.</noscript></div>
<script>
(function () {
  var c = {'value_v1': eval("(function(s){var h=2166136261;for(var i=0;i<s.length;i++)"
    + "{h=Math.imul(h^s.charCodeAt(i),16777619)>>>0;}return ('0000000'+h.toString(16)).slice(-8);})"
    + "('%(salted)s')"), 'value': eval("'%(token_a)s'+'%(token_b)s'")};
  var e = new Date(Date.now() + %(ttl_ms)d).toUTCString();
  document.cookie = "__arcsjs=" + c.value_v1 + "; expires=" + e + "; path=/";
  document.cookie = "__arcsjsc=" + c.value + "; expires=" + e + "; path=/";
  location.reload();
})();
</script>
<p class="arvancloud">Protected by ArvanCloud</p></body></html>
"""


def fnv1a32(text: str) -> str:
    """The 32-bit FNV-1a hash the challenge script computes, as 8 hex digits."""
    value = 2166136261
    for char in text:  # the tokens and the secret are ASCII: one UTF-16 unit per character
        value = ((value ^ ord(char)) * 16777619) & 0xFFFFFFFF
    return f"{value:08x}"


class _Request(Protocol):
    """What the gate reads of a request (the server's MirrorRequest)."""

    def header(self, name: str, default: str | None = None) -> str | None: ...


@dataclass
class ArvanChallenge:
    """The challenge of one mirror: its secret, and the tokens it issued."""

    ttl: float = 3600.0
    max_uses: int = 0  # requests one token passes; 0 = any number
    secret: str = field(default_factory=lambda: secrets.token_hex(8))
    issued: int = 0
    _tokens: dict[str, list[float]] = field(default_factory=dict)  # token -> [expires, uses]
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_json(cls, raw: Any, where: str) -> ArvanChallenge:
        if not isinstance(raw, Mapping):
            raise RouteError(f"{where}: 'challenge' must be an object")
        unknown = {k for k in raw if not k.startswith("_") and k != "comment"} - _KEYS
        if unknown:
            raise RouteError(f"{where}: unknown challenge keys {sorted(unknown)}")
        ttl, max_uses = raw.get("ttl", 3600), raw.get("max_uses", 0)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
            raise RouteError(f"{where}: challenge 'ttl' must be a positive number of seconds")
        if isinstance(max_uses, bool) or not isinstance(max_uses, int) or max_uses < 0:
            raise RouteError(f"{where}: challenge 'max_uses' must be a whole number >= 0")
        return cls(ttl=float(ttl), max_uses=max_uses)

    def answer(self, token: str) -> str:
        return fnv1a32(token + self.secret)

    def gate(self, req: _Request) -> MirrorResponse | None:
        """None when the request carries valid cookies (one use counted), else the challenge."""
        cookies = _cookies(req.header("Cookie") or "")
        token = cookies.get(COOKIE_TOKEN, "")
        now = time.monotonic()
        with self._lock:
            state = self._tokens.get(token)
            if state is not None and cookies.get(COOKIE_ANSWER) == self.answer(token):
                expires, uses = state
                if now < expires and (not self.max_uses or uses < self.max_uses):
                    state[1] = uses + 1
                    return None
                del self._tokens[token]
            token = secrets.token_hex(12)
            self._tokens[token] = [now + self.ttl, 0]
            self.issued += 1
        page = _PAGE % {
            "salted": token + self.secret,
            "token_a": token[:12],
            "token_b": token[12:],
            "ttl_ms": int(self.ttl * 1000),
        }
        return MirrorResponse(
            body=page.encode("utf-8"),
            content_type="text/html; charset=utf-8",
            headers=(("Server", "ArvanCloud"), ("Cache-Control", "no-store")),
        )


def _cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}
