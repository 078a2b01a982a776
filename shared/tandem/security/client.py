"""The calling side: a bearer token on every call, and TLS channel credentials."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tandem.security.tls import channel_credentials
from tandem.security.tokens import AUTHORIZATION_KEY
from tandem.serving import CHANNEL_OPTIONS
from tandem.settings import ClientSettings, GatewaySettings

ChannelFactory = Callable[[str], grpc.aio.Channel]
ENV_FILE_VARIABLE = "TANDEM_ENV_FILE"


def client_settings(env_file: str | Path | None = None) -> ClientSettings:
    """The client settings (``TANDEM_CLIENT_*``) from the environment and the env file:
    ``env_file``, else ``$TANDEM_ENV_FILE`` (the file ``tandem setup`` wrote)."""
    chosen = env_file if env_file is not None else os.environ.get(ENV_FILE_VARIABLE) or None
    return ClientSettings(_env_file=chosen)  # type: ignore[call-arg]


def read_token_file(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read token file {path}: {exc.strerror}") from exc
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"token file {path} must hold exactly one token")
    return token


class _WithHeader:
    def __init__(self, header: tuple[str, str]) -> None:
        self._header = header

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add(*self._header)
        return details._replace(metadata=metadata)


class _UnaryUnary(_WithHeader, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_WithHeader, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_WithHeader, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStream(_WithHeader, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def bearer_token_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors adding ``authorization: Bearer <token>`` to every call of a channel.

    One per call kind: grpc.aio files an interceptor under the first kind it
    implements only, so a single class implementing all four would miss three.
    """
    header = (AUTHORIZATION_KEY, f"Bearer {token}")
    return [_UnaryUnary(header), _UnaryStream(header), _StreamUnary(header), _StreamStream(header)]


@dataclass(frozen=True)
class SecureChannels:
    """Opens channels with one configuration: TLS or not, a token or not."""

    credentials: grpc.ChannelCredentials | None = None
    token: str | None = None
    server_name: str | None = None
    options: tuple[tuple[str, Any], ...] = CHANNEL_OPTIONS

    def __call__(self, address: str) -> grpc.aio.Channel:
        interceptors = bearer_token_interceptors(self.token) if self.token else None
        options = list(self.options)
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        if self.credentials is None:
            return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
        return grpc.aio.secure_channel(
            address, self.credentials, options=options, interceptors=interceptors
        )

    @property
    def description(self) -> str:
        transport = "plaintext" if self.credentials is None else "TLS"
        return f"{transport}, {'with' if self.token else 'no'} token"


def worker_channels(settings: GatewaySettings) -> SecureChannels:
    """How the gateway reaches its workers, from its settings."""
    token = settings.worker_token.get_secret_value() if settings.worker_token else None
    if settings.worker_token_file is not None:
        token = read_token_file(settings.worker_token_file)
    tls_wanted = settings.worker_tls_ca or settings.worker_tls_cert or settings.worker_tls_key
    credentials = (
        channel_credentials(
            settings.worker_tls_ca, settings.worker_tls_cert, settings.worker_tls_key
        )
        if tls_wanted
        else None
    )
    return SecureChannels(credentials, token, settings.worker_tls_server_name)


@dataclass(frozen=True)
class ClientSecurity:
    """What a gateway client (``tandem ask``/``status``, the SDK) sends: its token
    as call metadata, and TLS credentials (None: plaintext)."""

    metadata: tuple[tuple[str, str], ...] = ()
    credentials: grpc.ChannelCredentials | None = None

    def auth_hook(self) -> Callable[[], tuple[tuple[str, str], ...]] | None:
        """The SDK's ``auth`` hook for this token, or None without one."""
        if not self.metadata:
            return None
        metadata = self.metadata
        return lambda: metadata

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> ClientSecurity:
        metadata: tuple[tuple[str, str], ...] = ()
        if settings.token_file is not None:
            metadata = ((AUTHORIZATION_KEY, f"Bearer {read_token_file(settings.token_file)}"),)
        credentials = None
        if settings.tls_ca or settings.tls_cert:
            credentials = channel_credentials(settings.tls_ca, settings.tls_cert, settings.tls_key)
        return cls(metadata, credentials)
