"""TLS: certificates per host (found the way Prosody finds them, or generated), contexts,
and the data SCRAM-PLUS binds to.

For each host the certificate comes from, in order: the host's ``ssl = { certificate, key }``
option; ``<certificates>/<host>.crt`` + ``.key``; ``<certificates>/<host>/fullchain.pem`` +
``privkey.pem``. If none exists, a local test CA (``ca.pem``, made once) signs a certificate for
the host, written to ``<certificates>/<host>.crt`` / ``.key`` and reused on later starts.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from minixmpp.config import Config, ConfigError, HostConfig
from minixmpp.sasl import end_point_hash

log = logging.getLogger("minixmpp.tls")


@dataclass(frozen=True)
class CertPair:
    certificate: Path
    key: Path


class TlsContexts:
    """An SSLContext per host; the direct-TLS and HTTPS contexts pick the host by SNI."""

    def __init__(self, pairs: dict[str, CertPair]) -> None:
        self.pairs = pairs
        self._contexts = {host: _context(pair) for host, pair in pairs.items()}
        self._https = {host: _context(pair, "http/1.1") for host, pair in pairs.items()}
        self._end_points: dict[int, bytes] = {}
        for host, ctx in self._contexts.items():
            self._end_points[id(ctx)] = _end_point(pairs[host].certificate)
        first = next(iter(pairs))
        self.direct = _context(pairs[first])
        self._end_points[id(self.direct)] = self._end_points[id(self._contexts[first])]
        self.direct.sni_callback = self._sni
        self.https = _context(pairs[first], "http/1.1")
        self.https.sni_callback = self._sni_https

    def context_for(self, host: str) -> ssl.SSLContext:
        return self._contexts.get(host, self.direct)

    def end_point_hash(self, ctx: ssl.SSLContext) -> bytes | None:
        return self._end_points.get(id(ctx))

    def _sni(self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if server_name:
            ctx = self._contexts.get(server_name.lower().rstrip("."))
            if ctx is not None:
                sslobj.context = ctx

    def _sni_https(
        self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        if server_name:
            ctx = self._https.get(server_name.lower().rstrip("."))
            if ctx is not None:
                sslobj.context = ctx


def _context(pair: CertPair, alpn: str = "xmpp-client") -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols([alpn])  # XEP-0368's xmpp-client, or http/1.1 for HTTPS
    ctx.num_tickets = 1  # TLS 1.3 resumption needs one; OpenSSL's default sends two
    ctx.load_cert_chain(pair.certificate, pair.key)
    return ctx


def _end_point(certificate: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    algorithm = cert.signature_hash_algorithm
    return end_point_hash(
        cert.public_bytes(serialization.Encoding.DER), algorithm.name if algorithm else None
    )


def certificates(config: Config, *, generate: bool = True) -> dict[str, CertPair]:
    """Find (or create) each host's certificate and key."""
    pairs: dict[str, CertPair] = {}
    for host in config.hosts.values():
        pair = find_certificate(config, host)
        if pair is None:
            if not generate:
                raise ConfigError(f'no certificate for VirtualHost "{host.name}"')
            pair = generate_test_certificate(config.resolve(host.options.certificates), host.name)
        pairs[host.name] = pair
    return pairs


def find_certificate(config: Config, host: HostConfig) -> CertPair | None:
    if host.options.ssl is not None:
        pair = CertPair(
            config.resolve(host.options.ssl.certificate), config.resolve(host.options.ssl.key)
        )
        for path in (pair.certificate, pair.key):
            if not path.is_file():
                raise ConfigError(f'VirtualHost "{host.name}": ssl file {path} not found')
        return pair
    folder = config.resolve(host.options.certificates)
    for pair in (
        CertPair(folder / f"{host.name}.crt", folder / f"{host.name}.key"),
        CertPair(folder / host.name / "fullchain.pem", folder / host.name / "privkey.pem"),
    ):
        if pair.certificate.is_file() and pair.key.is_file():
            return pair
    return None


def verify_pair(pair: CertPair) -> None:
    """Raise ConfigError, naming the files, unless the certificate and key load and match."""
    for what, path in (("certificate", pair.certificate), ("key", pair.key)):
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
        if b"-----BEGIN " not in pem:
            raise ConfigError(f"{what} {path} is not in PEM format")
    try:
        _context(pair)
        _end_point(pair.certificate)
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"cannot use certificate {pair.certificate} with key {pair.key}: {reason}"
        ) from None


def load_contexts(config: Config) -> TlsContexts:
    try:
        pairs = certificates(config)
        for host, pair in pairs.items():
            try:
                verify_pair(pair)  # a message that names the file
            except ConfigError as exc:
                raise ConfigError(f'VirtualHost "{host}": {exc}') from None
        return TlsContexts(pairs)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"TLS certificate problem: {exc}") from exc


# -- the local test CA -------------------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ensure_test_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The test CA in ``folder`` (ca.pem, ca.key), created on first use."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    if cert_path.is_file() and key_path.is_file():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minixmpp local test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("generated a local test CA in %s; clients can trust %s", folder, cert_path)
    return cert, key


def generate_test_certificate(folder: Path, host: str) -> CertPair:
    """A certificate for ``host`` signed by the local test CA, written into ``folder``."""
    ca_cert, ca_key = ensure_test_ca(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(host)]
    if host == "localhost":
        names += [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pair = CertPair(folder / f"{host}.crt", folder / f"{host}.key")
    _write_private(pair.key, _key_pem(key))
    pair.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("generated a test certificate for %s in %s", host, pair.certificate)
    return pair


def tls_failure(exc: BaseException) -> str:
    """Why a TLS handshake failed, for the log: OpenSSL's reason without the source line."""
    text = str(exc) or type(exc).__name__
    return _SSL_SOURCE.sub("", text) if isinstance(exc, ssl.SSLError) else text


_SSL_SOURCE = re.compile(r" \(_ssl\.c:\d+\)$")
