"""How the SDK's channels are built: keepalive, message size, and retries.

Retries come from the gRPC service config, so the gRPC library itself retries
an ``UNAVAILABLE`` call with exponential backoff, and only before the call is
committed: once the gateway has sent anything (a Route's decision), a failure
is the caller's to see. A Route that fails after it started is never replayed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import grpc
from pydantic import BaseModel, ConfigDict, Field

from tandem.services import GATEWAY_SERVICE
from tandem.serving import MAX_MESSAGE_BYTES

# Called before every call; returns metadata to send with it, e.g.
# (("authorization", "Bearer ..."),). Called each time, so tokens can rotate.
AuthHook = Callable[[], Iterable[tuple[str, str]]]


def bearer_token(token: str | Callable[[], str]) -> AuthHook:
    """An AuthHook sending ``authorization: Bearer <token>`` (a callable is asked each call)."""

    def hook() -> Iterable[tuple[str, str]]:
        value = token() if callable(token) else token
        return (("authorization", f"Bearer {value}"),)

    return hook


class ChannelConfig(BaseModel):
    """Channel-level settings of a Tandem client. The defaults suit a LAN gateway."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keepalive_time_s: float = Field(
        default=10.0, gt=0, description="Send an HTTP/2 keepalive ping after this much idle time."
    )
    keepalive_timeout_s: float = Field(
        default=5.0, gt=0, description="Drop the connection when a ping is unanswered this long."
    )
    max_message_bytes: int = Field(
        default=MAX_MESSAGE_BYTES, ge=1024, description="Largest message sent or received."
    )
    retry_max_attempts: int = Field(
        default=4,
        ge=1,
        le=5,
        description="Attempts per call (1 disables retries) while the gateway is UNAVAILABLE "
        "before answering anything. gRPC caps this at 5.",
    )
    retry_initial_backoff_s: float = Field(default=0.2, gt=0, description="First retry delay.")
    retry_max_backoff_s: float = Field(default=2.0, gt=0, description="Longest retry delay.")
    retry_backoff_multiplier: float = Field(default=2.0, gt=0, description="Backoff growth.")
    max_reconnect_backoff_s: float = Field(
        default=2.0, gt=0, description="Longest wait between reconnection attempts."
    )

    def service_config(self) -> str:
        """The gRPC service config JSON: the retry policy for every GatewayService method."""
        method: dict[str, object] = {"name": [{"service": GATEWAY_SERVICE}]}
        if self.retry_max_attempts > 1:
            method["retryPolicy"] = {
                "maxAttempts": self.retry_max_attempts,
                "initialBackoff": f"{self.retry_initial_backoff_s:.3f}s",
                "maxBackoff": f"{self.retry_max_backoff_s:.3f}s",
                "backoffMultiplier": self.retry_backoff_multiplier,
                "retryableStatusCodes": ["UNAVAILABLE"],
            }
        return json.dumps({"methodConfig": [method]})

    def options(self) -> list[tuple[str, str | int]]:
        return [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.keepalive_time_ms", int(self.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", int(self.max_reconnect_backoff_s * 1000)),
            ("grpc.enable_retries", 1 if self.retry_max_attempts > 1 else 0),
            ("grpc.service_config", self.service_config()),
        ]


def sync_channel(
    address: str, config: ChannelConfig, credentials: grpc.ChannelCredentials | None
) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(address, options=config.options())
    return grpc.secure_channel(address, credentials, options=config.options())


def async_channel(
    address: str, config: ChannelConfig, credentials: grpc.ChannelCredentials | None
) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=config.options())
    return grpc.aio.secure_channel(address, credentials, options=config.options())
