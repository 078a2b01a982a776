"""What the sync and asyncio clients share: construction and per-call arguments."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import grpc

from tandem.metadata import REQUEST_ID_KEY, new_request_id
from tandem.sdk.channel import AuthHook, ChannelConfig
from tandem.security.client import ClientSecurity, client_settings
from tandem.v1 import gateway_pb2_grpc

# Cluster status is a quick look: it never waits as long as a generation may.
STATUS_TIMEOUT_S = 10.0

ChannelT = TypeVar("ChannelT", grpc.Channel, grpc.aio.Channel)


class ClientBase(Generic[ChannelT]):
    """Holds the channel, the stub and the per-call defaults.

    ``address`` defaults to ``$TANDEM_CLIENT_GATEWAY``, else 127.0.0.1:50051 (as
    for ``tandem ask``). ``timeout_s`` is each call's default deadline (None:
    none); ``wait_for_ready`` queues calls while the gateway is unreachable
    instead of failing at once; ``auth`` adds metadata to every call;
    ``credentials`` switches to TLS; ``channel`` tunes keepalive, message size
    and retries.

    Given neither ``auth`` nor ``credentials``, the client uses the client
    settings as ``tandem ask`` does: ``TANDEM_CLIENT_TOKEN_FILE`` for the token,
    ``TANDEM_CLIENT_TLS_CA`` / ``_TLS_CERT`` / ``_TLS_KEY`` for TLS, from the
    environment or the ``$TANDEM_ENV_FILE`` that ``tandem setup`` wrote.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout_s: float | None = 600.0,
        wait_for_ready: bool = False,
        auth: AuthHook | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        channel: ChannelConfig | None = None,
    ) -> None:
        if address is None or (auth is None and credentials is None):
            settings = client_settings()
            address = address or settings.gateway
            if auth is None and credentials is None:
                security = ClientSecurity.from_settings(settings)
                auth, credentials = security.auth_hook(), security.credentials
        self.address = address
        self._timeout_s = timeout_s
        self._wait_for_ready = wait_for_ready
        self._auth = auth
        self._channel: ChannelT = self._open_channel(
            self.address, channel or ChannelConfig(), credentials
        )
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)

    def _open_channel(
        self, address: str, config: ChannelConfig, credentials: grpc.ChannelCredentials | None
    ) -> ChannelT:
        raise NotImplementedError

    def _call_kwargs(
        self,
        *,
        timeout_s: float | None = None,
        request_id: str | None = None,
        cap_s: float | None = None,
        deadline: bool = True,
    ) -> dict[str, Any]:
        """Keyword arguments for a stub call.

        ``timeout_s`` overrides the client's deadline for this call; ``cap_s``
        bounds it; ``deadline=False`` sends none (long-lived watches).
        """
        timeout = (timeout_s if timeout_s is not None else self._timeout_s) if deadline else None
        if cap_s is not None:
            timeout = cap_s if timeout is None else min(timeout, cap_s)
        metadata = [(REQUEST_ID_KEY, request_id or new_request_id())]
        if self._auth is not None:
            metadata.extend((key.lower(), value) for key, value in self._auth())
        return {
            "timeout": timeout,
            "metadata": tuple(metadata),
            "wait_for_ready": self._wait_for_ready,
        }
