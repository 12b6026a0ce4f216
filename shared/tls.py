"""Mutual TLS between data planes and the control plane: certificate files and a development
certificate authority.

Each data plane presents a client certificate whose common name is its node id; the control
plane requires one signed by the fleet CA and refuses a node that claims another id.

Rotation without downtime: the control plane re-reads its files whenever they change (new
handshakes use the new certificate); data planes read theirs at start, so they take new
certificates in a rolling restart. During a CA rotation every CA file holds both CAs until
all certificates are re-issued.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def from_env(cls, prefix: str, env: Mapping[str, str] | None = None) -> TlsFiles | None:
        """``<prefix>_CA``, ``<prefix>_CERT`` and ``<prefix>_KEY``; None when none is set;
        ValueError when only some are."""
        env = os.environ if env is None else env
        values = [env.get(f"{prefix}_{name}", "") for name in ("CA", "CERT", "KEY")]
        if not any(values):
            return None
        if not all(values):
            raise ValueError(f"{prefix}_CA, {prefix}_CERT and {prefix}_KEY go together")
        return cls(*(Path(v) for v in values))

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(CA bundle, certificate chain, private key) as PEM bytes."""
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()

    def stamp(self) -> tuple[float, ...]:
        """Changes when any of the files changes (for reloading)."""
        return tuple(p.stat().st_mtime_ns for p in (self.ca, self.cert, self.key))


# --- a development CA (`make certs`) -------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ASC development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(common_name: str = "ASC development CA", days: int = 3650) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a self-signed CA."""
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    common_name: str,
    *,
    server_names: Sequence[str] = (),
    client: bool = False,
    days: int = 365,
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) signed by the CA: a server certificate for ``server_names``
    (DNS names or IP addresses) and/or a client certificate named ``common_name``."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _key()
    now = dt.datetime.now(dt.UTC)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    if server_names:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server_names:
        alt: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)
