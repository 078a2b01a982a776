"""A local certificate authority and the node certificates of the Mac topology.

``tandem certs --out DIR`` writes::

    ca.pem          the CA certificate: every node and client trusts it
    ca-key.pem      the CA key: keep it off the Macs once the certificates are made
    gateway.pem     the gateway's certificate (server for clients, client for workers)
    gateway-key.pem
    worker.pem      the worker's certificate (server for the gateway)
    worker-key.pem

Keys are ECDSA P-256; files holding keys are written mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_SANS = ("localhost", "127.0.0.1", "169.254.19.104")
DEFAULT_DAYS = 825
_UTC = dt.UTC


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tandem"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(entry: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        return x509.DNSName(entry)


def _window(days: float, not_before: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    start = not_before or (dt.datetime.now(_UTC) - dt.timedelta(minutes=5))
    return start, start + dt.timedelta(days=days)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as PEM."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(
        cls,
        name: str = "Tandem local CA",
        *,
        days: float = DEFAULT_DAYS,
        not_before: dt.datetime | None = None,
    ) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = _window(days, not_before)
        subject = _name(name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path}: not an EC private key")
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    def issue(
        self,
        common_name: str,
        sans: Sequence[str] = DEFAULT_SANS,
        *,
        days: float = DEFAULT_DAYS,
        not_before: dt.datetime | None = None,
        server: bool = True,
        client: bool = True,
    ) -> Issued:
        """A node certificate for ``sans`` (host names and IP addresses)."""
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = _window(days, not_before)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data``; a private file is created mode 0600 (never world-readable, even briefly)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    if private:
        os.chmod(path, 0o600)


@dataclass(frozen=True)
class NodeFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Bundle:
    """Where ``generate_bundle`` put everything."""

    ca: Path
    ca_key: Path
    gateway: NodeFiles
    worker: NodeFiles


def bundle_paths(out: Path) -> Bundle:
    return Bundle(
        ca=out / "ca.pem",
        ca_key=out / "ca-key.pem",
        gateway=NodeFiles(out / "gateway.pem", out / "gateway-key.pem"),
        worker=NodeFiles(out / "worker.pem", out / "worker-key.pem"),
    )


def generate_bundle(
    out: Path,
    *,
    gateway_sans: Sequence[str] = DEFAULT_SANS,
    worker_sans: Sequence[str] = DEFAULT_SANS,
    days: float = DEFAULT_DAYS,
    overwrite: bool = False,
) -> Bundle:
    """A new CA and the gateway and worker certificates in ``out``.

    An existing CA in ``out`` is reused (so re-issuing a node certificate does
    not invalidate the other); node files are refused if present unless
    ``overwrite``.
    """
    paths = bundle_paths(out)
    out.mkdir(parents=True, exist_ok=True)
    nodes = [paths.gateway.cert, paths.gateway.key, paths.worker.cert, paths.worker.key]
    existing = [p for p in nodes if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{', '.join(str(p) for p in existing)} already exist; pass --force to replace them"
        )
    if paths.ca.exists() and paths.ca_key.exists():
        ca = CertificateAuthority.load(paths.ca, paths.ca_key)
    else:
        ca = CertificateAuthority.create(days=max(days, DEFAULT_DAYS))
        write_file(paths.ca_key, ca.key_pem, private=True)
        write_file(paths.ca, ca.cert_pem)
    for node, common_name, sans, client in (
        (paths.gateway, "tandem-gateway", gateway_sans, True),
        (paths.worker, "tandem-worker", worker_sans, False),
    ):
        issued = ca.issue(common_name, sans, days=days, server=True, client=client)
        write_file(node.key, issued.key_pem, private=True)
        write_file(node.cert, issued.cert_pem)
    return paths
