"""Access rules for ``serve``, in the spirit of pywb's access controls: a takedown or an embargo
honoured without deleting a WARC.

An access file (``serve --access-file``) holds one rule a line, ``#`` comments allowed::

    block https://en.irna.ir/news/85859288/          # a URL, its queries, the paths under it
    block https://presstv.ir/Detail/2025*             # whatever starts so
    block site:tdi until 2026-01-01                   # an embargo: withheld until that day (UTC)
    allow https://thediplomaticinsight.com/public/    # an exception inside a blocked site
    block *.presstv.ir                                # a host and its subdomains
    block ir,irna,en)/photo                           # a SURT prefix, as pywb's rules give them

A URL (scheme and ``www.`` do not count: the rule is on its SURT), a host with ``*.``, a SURT
prefix, or ``site:<name>`` (the archive's site). The most specific rule decides: the longest
URL prefix, else the site's rule; of two rules on the same target the later one. ``until`` ends
a block on that day; nothing is withheld by default. A withheld capture is left out of every
listing and answer (as pywb's ``exclude``), and asked for by its id it is a 451.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import surt

from crawler.access.query import AccessError

logger = logging.getLogger(__name__)

CHALLENGE_PREFIX = "urn:challenge:"


class RulesError(AccessError):
    """An access file that cannot be used: one line naming the line at fault."""


@dataclass(frozen=True, slots=True)
class Rule:
    action: str  # "block" or "allow"
    target: str  # as written
    until: date | None
    line: int

    def in_force(self, today: date) -> bool:
        return self.until is None or today < self.until

    def describe(self) -> str:
        until = f" until {self.until.isoformat()}" if self.until else ""
        return f"{self.action} {self.target}{until}"


def surt_key(url: str) -> str:
    """The SURT a URL is indexed under (the CDX API's urlkey); a challenge line's own URL."""
    if url.startswith(CHALLENGE_PREFIX):
        url = url[len(CHALLENGE_PREFIX) :]
    try:
        return str(surt.surt(url))
    except Exception:  # surt raises what its parsers raise: such a URL has no SURT
        return url


def _prefixes(target: str) -> list[str]:
    """The prefixes of ``urlkey + " "`` a rule's target covers: a URL covers itself, its
    queries and the paths under it (``/news`` is not ``/newsroom``); a trailing ``*``, a host's
    root or a SURT as written cover whatever starts so."""
    if target.startswith("*."):
        host = surt_key("http://" + target[2:] + "/").split(")/", 1)[0]
        return [host + ")", host + ","]
    if "://" not in target and (")" in target or target.endswith(",")):
        return [target]  # a SURT prefix as written
    loose = target.endswith("*")
    url = target.removesuffix("*")
    key = surt_key(url if "://" in url else "http://" + url)
    if loose and url.endswith("/") and not key.endswith("/"):
        key += "/"
    if loose or key.endswith("/"):
        return [key]
    return [key + " ", key + "/", key + "?"]


def parse_rule(line: str, number: int, where: str) -> Rule:
    words = line.split()
    if len(words) not in (2, 4) or words[0] not in ("block", "allow"):
        raise RulesError(
            f"{where} line {number}: {line!r} is not 'block|allow TARGET [until YYYY-MM-DD]'"
        )
    until = None
    if len(words) == 4:
        if words[2] != "until" or words[0] != "block":
            raise RulesError(f"{where} line {number}: only a block ends, 'block TARGET until DAY'")
        try:
            until = date.fromisoformat(words[3])
        except ValueError:
            raise RulesError(
                f"{where} line {number}: {words[3]!r} is not a day (YYYY-MM-DD)"
            ) from None
    target = words[1]
    if target.startswith("site:") and len(target) == 5:
        raise RulesError(f"{where} line {number}: site: needs a site name")
    return Rule(words[0], target, until, number)


class AccessRules:
    """The rules of one access file: ``withheld(url, site)`` gives the rule that withholds a
    capture, or None."""

    def __init__(self, rules: Iterable[Rule], today: Callable[[], date] | None = None) -> None:
        self.rules = list(rules)
        self.today = today or (lambda: datetime.now(UTC).date())
        self._day: date | None = None
        self._keys: list[str] = []
        self._by_key: dict[str, Rule] = {}
        self._sites: dict[str, Rule] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.rules)

    @classmethod
    def parse(cls, text: str, where: str) -> AccessRules:
        rules = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if line:
                rules.append(parse_rule(line, number, where))
        return cls(rules)

    def _current(self) -> tuple[list[str], dict[str, Rule], dict[str, Rule]]:
        today = self.today()
        with self._lock:
            if self._day != today:
                by_key: dict[str, Rule] = {}
                sites: dict[str, Rule] = {}
                for rule in self.rules:  # a later rule on the same target replaces an earlier
                    if not rule.in_force(today):
                        continue
                    if rule.target.startswith("site:"):
                        sites[rule.target[5:]] = rule
                    else:
                        for prefix in _prefixes(rule.target):
                            by_key[prefix] = rule
                self._keys, self._by_key, self._sites = sorted(by_key), by_key, sites
                self._day = today
            return self._keys, self._by_key, self._sites

    def rule_for(self, urlkey: str, site: str | None = None) -> Rule | None:
        keys, by_key, sites = self._current()
        if urlkey.startswith(CHALLENGE_PREFIX):
            urlkey = surt_key(urlkey)
        found = _longest_prefix(keys, urlkey + " ")
        if found is not None:
            return by_key[found]
        return sites.get(site) if site is not None else None

    def withheld_key(self, urlkey: str, site: str | None = None) -> Rule | None:
        """The block that withholds a line of the index (its urlkey), or None."""
        rule = self.rule_for(urlkey, site)
        return rule if rule is not None and rule.action == "block" else None

    def withheld(self, url: str, site: str | None = None) -> Rule | None:
        """The block that withholds a capture of ``url`` (of ``site``), or None."""
        if not self.rules:
            return None
        return self.withheld_key(surt_key(url), site)


def _longest_prefix(keys: list[str], key: str) -> str | None:
    """The longest of the sorted ``keys`` that ``key`` starts with."""
    probe = key
    while True:
        index = bisect.bisect_right(keys, probe) - 1
        if index < 0:
            return None
        candidate = keys[index]
        if key.startswith(candidate):
            return candidate
        # No key between the candidate and the probe is a prefix: look below their common part.
        common = 0
        for a, b in zip(candidate, key, strict=False):
            if a != b:
                break
            common += 1
        probe = key[:common]


class RulesFile:
    """An access file, read again when it changes (looked at every ``every`` seconds at most).
    A file that goes missing or stops parsing keeps the rules last read: a takedown stays."""

    def __init__(self, path: str | Path, every: float = 2.0) -> None:
        self.path = Path(path).expanduser()
        self.every = every
        self._stamp: tuple[int, int] | None = None
        self._looked = 0.0
        self._lock = threading.Lock()
        self.rules = self._read()

    def _read(self) -> AccessRules:
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise RulesError(f"--access-file {self.path}: {reason}") from None
        rules = AccessRules.parse(text, f"--access-file {self.path}")
        self._stamp = (stat.st_size, stat.st_mtime_ns)
        return rules

    def current(self) -> AccessRules:
        now = time.monotonic()
        if now - self._looked >= self.every and self._lock.acquire(blocking=False):
            try:
                self._looked = now
                try:
                    stat = os.stat(self.path)
                    changed = (stat.st_size, stat.st_mtime_ns) != self._stamp
                except OSError as exc:
                    logger.error("access file %s: %s; the rules read before stay", self.path, exc)
                    changed = False
                if changed:
                    try:
                        self.rules = self._read()
                        count = len(self.rules.rules)
                        logger.info("access file %s read: %d rules", self.path, count)
                    except RulesError as exc:
                        logger.error("%s; the rules read before stay", exc)
            finally:
                self._lock.release()
        return self.rules
