"""The egress guard: no connection to a private, loopback or link-local address.

Checked before any connection is made: in the download handler (crawler/fetch/download.py) for
every request, so every redirect hop (a new request) too, and in the browser's egress proxy
(crawler/fetch/egress.py) for every connection Chromium opens. The rule
(``ARCHIVE_NETGUARD_*``, settings/defaults.py):

* Refused: every address that is not public unicast: private (10/8, 172.16/12, 192.168/16),
  shared (100.64/10), loopback, link-local (169.254/16 with the cloud metadata address
  169.254.169.254, fe80::/10), unique-local (fc00::/7), multicast, unspecified, reserved and
  documentation ranges; IPv4 inside IPv6 (::ffff:a.b.c.d, 6to4, Teredo) counts as the IPv4 one.
* Direct connection: the host name is resolved with the crawl's resolver (Scrapy's caching one,
  whose answer the connection then uses) and the answer checked; an IP literal is checked as it is.
* Through a proxy: the crawler connects to the proxy only. The proxy named by ``ARCHIVE_PROXY``
  is trusted because the operator named it (the loopback mirror in tests and the demo); a proxy
  from anywhere else (request meta, environment) is checked like a target. The target's name is
  resolved by the proxy, not here: its IP literals and ``localhost`` names are refused, and the
  proxy must refuse private addresses itself (an egress proxy such as smokescreen does).
* ``ARCHIVE_NETGUARD_ALLOW``: networks exempted (CIDR), e.g. an intranet site to archive.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self
from urllib.parse import urlsplit

from scrapy.exceptions import IgnoreRequest

from crawler.options import setting_bool

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.settings import BaseSettings
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str], Awaitable[list[str]]]

STATS_REFUSED = "archive/netguard/refused"
STATS_REFUSED_KIND = "archive/netguard/refused/{kind}"

_COMPATIBLE = ipaddress.IPv6Network("::/96")  # IPv4-compatible IPv6, deprecated
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class ForbiddenAddressError(IgnoreRequest):
    """A request whose connection would go to a forbidden address: refused, never sent."""

    def __init__(self, url: str, host: str, address: str, kind: str) -> None:
        where = host if host == address else f"{host} is {address},"
        super().__init__(f"{url}: {where} a {kind} address (not in ARCHIVE_NETGUARD_ALLOW)")
        self.url, self.host, self.address, self.kind = url, host, address, kind


def address_kind(address: str | IPAddress) -> str | None:
    """Why an address is forbidden ("private", "loopback", ...), or None for a public one."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return address_kind(inner)
        if ip in _COMPATIBLE and not (ip.is_loopback or ip.is_unspecified):
            return address_kind(ipaddress.IPv4Address(int(ip)))
    for kind, test in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unique-local", ip in _UNIQUE_LOCAL),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved or not ip.is_global),
    ):
        if test:
            return kind
    return None


@dataclass(frozen=True, slots=True)
class NetGuardConfig:
    """The ARCHIVE_NETGUARD_* settings, checked (settings/defaults.py documents each)."""

    enabled: bool
    allow: tuple[IPNetwork, ...]
    proxy: str

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> NetGuardConfig:
        raw = settings.get("ARCHIVE_NETGUARD_ALLOW") or ""
        wanted = "networks in CIDR notation, comma-separated (e.g. 10.20.0.0/16,fd00::/8)"
        if isinstance(raw, str):
            items = raw.split(",")
        elif isinstance(raw, (list, tuple, set, frozenset)):
            items = [str(i) for i in raw]
        else:
            raise ValueError(f"ARCHIVE_NETGUARD_ALLOW must be {wanted}, got {raw!r}")
        allow = []
        for item in (i.strip() for i in items):
            if not item:
                continue
            try:
                allow.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                which = "" if item == str(raw).strip() else f" ({item!r} is not a network)"
                raise ValueError(
                    f"ARCHIVE_NETGUARD_ALLOW must be {wanted}, got {raw!r}{which}"
                ) from None
        enabled = settings.get("ARCHIVE_NETGUARD_ENABLED")
        return cls(
            enabled=True if enabled is None else setting_bool(settings, "ARCHIVE_NETGUARD_ENABLED"),
            allow=tuple(allow),
            proxy=str(settings.get("ARCHIVE_PROXY") or ""),
        )


def _host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:  # a malformed IPv6 literal
        return ""


def _endpoint(url: str) -> tuple[str, int | None]:
    """Host and port of a proxy URL: trust goes to that one listener, not the whole host."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return ("", None)
    return (_host_of(url), port)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's answer for one host: ``kind`` is set when ``address`` is forbidden."""

    host: str
    addresses: list[str]
    address: str | None
    kind: str | None

    @property
    def refused(self) -> bool:
        return self.kind is not None

    def reason(self) -> str:
        where = self.host if self.host == self.address else f"{self.host} is {self.address},"
        return f"{where} a {self.kind} address (not in ARCHIVE_NETGUARD_ALLOW)"


class NetGuard:
    """Decides, before a connection, whether a request may go out (see the module docstring)."""

    def __init__(
        self,
        config: NetGuardConfig,
        resolve: Resolve,
        stats: StatsCollector | None = None,
    ) -> None:
        self.config = config
        self.resolve = resolve
        self.stats = stats
        self._trusted_proxy = _endpoint(config.proxy) if config.proxy else None

    @classmethod
    def from_settings(cls, settings: BaseSettings, stats: StatsCollector | None = None) -> Self:
        return cls(NetGuardConfig.from_settings(settings), twisted_resolve, stats)

    def forbidden(self, address: str) -> str | None:
        """The kind of a forbidden address, None when it may be connected to."""
        ip = _literal(address)
        if ip is None:
            return "unresolvable"
        if any(ip in net for net in self.config.allow if net.version == ip.version):
            return None
        return address_kind(ip)

    async def check(self, request: Request) -> None:
        """Raise ForbiddenAddressError (counted) if the request would reach a forbidden address."""
        if not self.config.enabled:
            return
        proxy = str(request.meta.get("proxy") or "")
        target = _host_of(request.url)
        if proxy:
            # The proxy resolves the target: what can be told without a lookup is checked here.
            await self._check_host(request, target, resolve=False)
            proxy_url = proxy if "://" in proxy else f"http://{proxy}"
            if _endpoint(proxy_url) != self._trusted_proxy:
                await self._check_host(request, _host_of(proxy_url), resolve=True)
        else:
            await self._check_host(request, target, resolve=True)

    async def vet(self, host: str, *, proxied: bool) -> Verdict:
        """For the egress proxy: the addresses ``host`` may be connected at, or why not.

        Direct connections use one of ``addresses`` (the answer checked, no second lookup
        that could differ); through the upstream proxy only what can be told without a lookup
        is checked (IP literals, ``localhost`` names), as for Scrapy's proxied requests.
        """
        if not self.config.enabled:
            return Verdict(host, [], None, None)
        addresses = await self._addresses(host, resolve=not proxied)
        for address in addresses:
            kind = self.forbidden(address)
            if kind is not None:
                return Verdict(host, addresses, address, kind)
        return Verdict(host, addresses, None, None)

    def count(self, kind: str) -> None:
        if self.stats is not None:
            self.stats.inc_value(STATS_REFUSED)
            self.stats.inc_value(STATS_REFUSED_KIND.format(kind=kind))

    async def _addresses(self, host: str, *, resolve: bool) -> list[str]:
        if not host:
            return [""]
        if _literal(host) is not None:
            return [host]
        if host in _LOCAL_NAMES or host.endswith(".localhost"):
            return ["127.0.0.1"]
        if not resolve:
            return []
        try:
            return await self.resolve(host) or [""]
        except OSError:
            return []  # no answer: the connection fails on its own, with the resolver's error

    async def _check_host(self, request: Request, host: str, *, resolve: bool) -> None:
        for address in await self._addresses(host, resolve=resolve):
            kind = self.forbidden(address)
            if kind is None:
                continue
            self.count(kind)
            error = ForbiddenAddressError(request.url, host, address, kind)
            logger.warning("Refused %s", error)
            raise error


async def twisted_resolve(host: str) -> list[str]:
    """The host's address from the reactor's resolver: the cached answer the connection uses."""
    from scrapy.utils.defer import maybe_deferred_to_future
    from twisted.internet import reactor
    from twisted.internet.error import DNSLookupError

    try:
        address = await maybe_deferred_to_future(reactor.resolve(host))  # type: ignore[arg-type]
    except DNSLookupError as exc:
        raise OSError(str(exc)) from exc
    return [str(address)]
