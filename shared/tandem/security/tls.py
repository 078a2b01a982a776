"""TLS credentials from PEM files: a server's (TLS, or mutual TLS) and a channel's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


class TlsConfigError(ValueError):
    """A TLS setting that cannot work; the message names it."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A server's certificate and key, and the CA its clients' certificates must chain to
    (``client_ca`` set = mutual TLS: a client without such a certificate is refused)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_paths(
        cls, cert: Path | None, key: Path | None, client_ca: Path | None
    ) -> ServerTls | None:
        if cert is None and key is None:
            if client_ca is not None:
                raise TlsConfigError("--tls-client-ca needs --tls-cert and --tls-key")
            return None
        if cert is None or key is None:
            raise TlsConfigError("TLS needs both --tls-cert and --tls-key")
        return cls(cert, key, client_ca)

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        roots = _read(self.client_ca, "client CA") if self.client_ca else None
        return grpc.ssl_server_credentials(
            [(_read(self.key, "TLS key"), _read(self.cert, "TLS certificate"))],
            root_certificates=roots,
            require_client_auth=roots is not None,
        )


def channel_credentials(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    """TLS channel credentials trusting ``ca`` (None: the system roots), presenting
    ``cert``/``key`` when given (mutual TLS)."""
    if (cert is None) != (key is None):
        raise TlsConfigError("a client certificate needs both its certificate and its key")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "CA") if ca else None,
        private_key=_read(key, "TLS key") if key else None,
        certificate_chain=_read(cert, "TLS certificate") if cert else None,
    )
