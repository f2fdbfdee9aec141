"""Who may read a served archive: credentials hashed at rest (HTTP basic or bearer tokens), and
the ``Host`` names ``serve`` answers to (a wrong one is refused, against DNS rebinding).

A credentials file (``serve --auth-file``, or the same lines in ``$NEWSARCHIVE_SERVE_AUTH``)
holds one ``name:hash`` a line, ``#`` comments allowed:

- ``alice:scrypt$16384$8$1$<salt>$<hash>`` — a password, checked by scrypt (HTTP basic:
  user ``alice``); ``newsarchive serve --hash-password`` makes the line.
- ``ci:sha256$<hex>`` — a random token, checked by SHA-256 (``Authorization: Bearer <token>``,
  or HTTP basic with any user name and the token as password); ``newsarchive serve --new-token
  ci`` makes a token and its line. SHA-256 is enough for a token of 256 random bits, not for a
  password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from crawler.access.query import AccessError

AUTH_ENV = "NEWSARCHIVE_SERVE_AUTH"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
# Credentials that passed, by a digest of what was sent: scrypt runs once per user and secret.
_CACHE_SIZE = 256


class AuthFileError(AccessError):
    """A credentials file or variable that cannot be used: one line, naming the place."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(secret: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` of a password."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def hash_token(token: str) -> str:
    return "sha256$" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Credential:
    name: str
    scheme: str  # "scrypt" or "sha256"
    cost: tuple[int, int, int]  # scrypt's N, r, p (unused for sha256)
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, line: str, where: str) -> Credential:
        name, sep, stored = line.partition(":")
        if not sep or not _NAME.match(name):
            raise AuthFileError(
                f"{where}: not a 'name:hash' line (a name of letters, digits, . _ @ + -)"
            )
        parts = stored.split("$")
        try:
            if parts[0] == "sha256" and len(parts) == 2:
                digest = bytes.fromhex(parts[1])
                if len(digest) == 32:
                    return cls(name, "sha256", (0, 0, 0), b"", digest)
            if parts[0] == "scrypt" and len(parts) == 6:
                n, r, p = (int(v) for v in parts[1:4])
                # scrypt needs 128·N·r bytes: at most 128 MiB a check.
                if n > 1 and n & (n - 1) == 0 and r > 0 and 128 * n * r <= 2**27 and 0 < p <= 16:
                    return cls(name, "scrypt", (n, r, p), _unb64(parts[4]), _unb64(parts[5]))
        except (ValueError, binascii.Error):
            pass
        raise AuthFileError(
            f"{where}: {name}'s hash is neither scrypt$N$r$p$salt$hash (serve --hash-password) "
            "nor sha256$<64 hex digits> (serve --new-token)"
        )

    def verify(self, secret: str) -> bool:
        data = secret.encode("utf-8")
        if self.scheme == "sha256":
            return hmac.compare_digest(hashlib.sha256(data).digest(), self.digest)
        n, r, p = self.cost
        try:
            found = hashlib.scrypt(
                data, salt=self.salt, n=n, r=r, p=p, dklen=len(self.digest), maxmem=2**28
            )
        except ValueError:  # beyond what this machine's OpenSSL gives scrypt: no match
            return False
        return hmac.compare_digest(found, self.digest)


class Credentials:
    """The users and tokens that may read; ``check`` takes an ``Authorization`` header."""

    def __init__(self, entries: Sequence[Credential], origin: str = "") -> None:
        self.entries = list(entries)
        self.origin = origin
        self.by_name = {c.name: c for c in self.entries}
        self._passed: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()
        # A password check for names that have none, at the file's own scrypt cost.
        costs = [c.cost for c in self.entries if c.scheme == "scrypt"]
        n, r, p = max(costs) if costs else (SCRYPT_N, SCRYPT_R, SCRYPT_P)
        self._decoy = Credential("", "scrypt", (n, r, p), os.urandom(16), os.urandom(32))

    @classmethod
    def parse(cls, lines: Iterable[str], origin: str) -> Credentials:
        entries = []
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if line and not line.startswith("#"):
                entries.append(Credential.parse(line, f"{origin} line {number}"))
        if not entries:
            raise AuthFileError(f"{origin}: no credentials in it")
        return cls(entries, origin)

    @classmethod
    def load(cls, path: str | None, environ: dict[str, str] | None = None) -> Credentials | None:
        """From ``path`` (``--auth-file``), else from ``$NEWSARCHIVE_SERVE_AUTH`` (lines, or
        entries separated by spaces), else None: no authentication."""
        if path:
            try:
                text = Path(path).expanduser().read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise AuthFileError(f"--auth-file {path}: {reason}") from None
            return cls.parse(text.splitlines(), f"--auth-file {path}")
        value = (environ if environ is not None else dict(os.environ)).get(AUTH_ENV, "")
        if value.strip():
            return cls.parse(value.split(), f"${AUTH_ENV}")
        return None

    def check(self, header: str | None) -> str | None:
        """The name of whoever ``Authorization`` proves to be, None when it proves nothing."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return self._token(value)
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep:
            return None
        key = hashlib.sha256(f"{user}\0{secret}".encode()).digest()
        with self._lock:
            if key in self._passed:
                self._passed.move_to_end(key)
                return self._passed[key]
        entry = self.by_name.get(user)
        if entry is None or entry.scheme != "scrypt":
            # The same scrypt work for a name not in the file: a refusal's time does not
            # say which names exist.
            self._decoy.verify(secret)
            passed = False
        else:
            passed = entry.verify(secret)
        name = entry.name if entry is not None and passed else self._token(secret)
        if name is not None:
            with self._lock:
                self._passed[key] = name
                while len(self._passed) > _CACHE_SIZE:
                    self._passed.popitem(last=False)
        return name

    def _token(self, token: str) -> str | None:
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for entry in self.entries:  # every one compared, in constant time each
            if entry.scheme == "sha256" and hmac.compare_digest(digest, entry.digest):
                found = entry.name
        return found


# -- Host ----------------------------------------------------------------------------------------
def host_name(header: str) -> str:
    """The name in a ``Host`` header: no port, no brackets, lower case, no final dot."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The bound address (unless a wildcard), the local names, and ``--allowed-host`` names
    (``*``: any, which gives up the protection against DNS rebinding)."""
    names = {host_name(n) if n != "*" else "*" for n in extra if n.strip()}
    names.update(_LOCAL_NAMES)
    address = bound.strip("[]").lower()
    try:
        if not ipaddress.ip_address(address).is_unspecified:
            names.add(address)
    except ValueError:
        names.add(host_name(address))
    return frozenset(names)


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    if "*" in allowed:
        return True
    return bool(header) and host_name(header or "") in allowed
