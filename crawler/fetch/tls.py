"""A throwaway certificate authority: one CA, a leaf certificate per host on demand.

The loopback mirror serves its sites with one (crawler/mirror/), and each crawl's egress proxy
terminates Chromium's TLS with another (crawler/fetch/egress.py) that only that Chromium trusts.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import logging
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

CA_CERT_FILE = "mirror-ca.pem"
CA_KEY_FILE = "mirror-ca.key"
LEAF_KEY_FILE = "mirror-leaf.key"
_CA_NAME = "newsarchive loopback mirror CA"
# Under the 398 days browsers accept for a server certificate.
_LEAF_DAYS = 397


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: handshakes several times cheaper than RSA-2048, accepted by every client we use.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: expected an EC private key")
    return key


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def spki_pin(public_key: Any) -> str:
    """Base64 SHA-256 of a public key's SubjectPublicKeyInfo: Chromium's SPKI pin format."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def der_spki_pin(der_cert: bytes) -> str:
    """The SPKI pin of a certificate given in DER (a TLS peer's)."""
    return spki_pin(x509.load_der_x509_certificate(der_cert).public_key())


class CertificateAuthority:
    """Self-signed CA kept as PEM files in a directory, issuing cached per-host leaf contexts.

    Every leaf certificate shares one key, so one SPKI pin (``spki_sha256``) covers all hosts:
    Chromium accepts it with ``--ignore-certificate-errors-spki-list``.
    """

    def __init__(self, directory: Path | None = None, *, name: str = _CA_NAME) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.name = name
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="newsarchive-ca-")
            directory = Path(self._tmp.name)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}
        cert_path = self.directory / CA_CERT_FILE
        key_path = self.directory / CA_KEY_FILE
        leaf_key_path = self.directory / LEAF_KEY_FILE
        if cert_path.is_file() and key_path.is_file() and leaf_key_path.is_file():
            self._ca_key = _load_key(key_path)
            self._ca_cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            self._leaf_key = _load_key(leaf_key_path)
            logger.debug("Reusing the CA in %s", self.directory)
        else:
            self._ca_key = _new_key()
            self._ca_cert = self._make_ca_cert()
            self._leaf_key = _new_key()
            for path, data in (
                (key_path, _key_pem(self._ca_key)),
                (leaf_key_path, _key_pem(self._leaf_key)),
                (cert_path, self._ca_cert.public_bytes(serialization.Encoding.PEM)),
            ):
                path.write_bytes(data)
                if path.suffix == ".key":
                    path.chmod(0o600)
            logger.debug("Created the CA %r in %s", self.name, self.directory)
        self._leaf_key_pem = _key_pem(self._leaf_key)

    @property
    def cert_path(self) -> Path:
        """PEM file of the CA certificate."""
        return self.directory / CA_CERT_FILE

    @property
    def spki_sha256(self) -> str:
        """Base64 SHA-256 of the leaf certificates' public key (Chromium SPKI pin)."""
        return spki_pin(self._leaf_key.public_key())

    def _make_ca_cert(self) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name[:64])])
        public = self._ca_key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )

    def leaf_cert(self, host: str) -> x509.Certificate:
        """A fresh leaf certificate for ``host`` signed by the CA."""
        now = dt.datetime.now(dt.UTC)
        public = self._leaf_key.public_key()
        ca_ski = self._ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(self._ca_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName([_san(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
            .sign(self._ca_key, hashes.SHA256())
        )

    def server_context(self, host: str) -> ssl.SSLContext:
        """A cached server-side SSLContext presenting a leaf certificate for ``host``."""
        host = host.lower()
        with self._lock:
            ctx = self._contexts.get(host)
            if ctx is not None:
                return ctx
            cert = self.leaf_cert(host)
            chain = cert.public_bytes(serialization.Encoding.PEM) + self._ca_cert.public_bytes(
                serialization.Encoding.PEM
            )
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_alpn_protocols(["http/1.1"])
            # load_cert_chain takes files only; they hold no secret beyond the leaf key on disk.
            with tempfile.TemporaryDirectory(prefix="newsarchive-leaf-") as tmp:
                chain_path = Path(tmp) / "chain.pem"
                key_path = Path(tmp) / "key.pem"
                chain_path.write_bytes(chain)
                key_path.write_bytes(self._leaf_key_pem)
                ctx.load_cert_chain(chain_path, key_path)
            self._contexts[host] = ctx
            logger.debug("Issued a certificate for %s", host)
            return ctx

    def cleanup(self) -> None:
        """Remove the CA directory if this object created it as a temporary one."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
