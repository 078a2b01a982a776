"""A server's security, built once from its settings: the gate, TLS, options, warnings."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

import grpc

from tandem.security.interceptor import CallGate, GatePolicy
from tandem.security.limits import ClientLimiter, ClientLimits
from tandem.security.redact import install_log_redaction
from tandem.security.tls import ServerTls
from tandem.security.tokens import TokenTable
from tandem.serving import server_options
from tandem.settings import ServerSecuritySettings, parse_host_port

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warnings(listen: str, *, auth: bool, tls: bool, role: str) -> list[str]:
    """What is dangerous about listening on ``listen`` with this configuration."""
    host, _ = parse_host_port(listen)
    if is_loopback(host):
        return []
    where = "ALL INTERFACES" if host in ("0.0.0.0", "::", "") else host
    warnings = []
    if not auth:
        warnings.append(
            f"SECURITY: the {role} listens on {where} WITHOUT AUTHENTICATION: anyone who can "
            f"reach {listen} can use it. Set --auth-tokens-file (see docs/security.md)."
        )
    if not tls:
        warnings.append(
            f"SECURITY: the {role} listens on {where} WITHOUT TLS: prompts, answers"
            + (" and bearer tokens" if auth else "")
            + " cross the network in plaintext. Set --tls-cert/--tls-key."
        )
    return warnings


@dataclass(frozen=True)
class ServerSecurity:
    gate: CallGate
    tls: ServerTls | None
    options: tuple[tuple[str, int], ...]
    warnings: tuple[str, ...]

    @classmethod
    def from_settings(
        cls, settings: ServerSecuritySettings, *, role: str, listen: str, node: str = ""
    ) -> ServerSecurity:
        """Raises ValueError (TokenFileError, TlsConfigError) for settings that cannot work."""
        tokens = None
        if settings.auth_tokens_file is not None or settings.auth_tokens:
            tokens = TokenTable.load(settings.auth_tokens_file, settings.auth_tokens)
            if not len(tokens):
                raise ValueError(f"{role}: authentication is on but no token is listed")
        tls = ServerTls.from_paths(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        gate = CallGate(
            GatePolicy(
                role=role,
                node=node or role,
                tokens=tokens,
                open_reflection=settings.open_reflection,
                max_messages=settings.max_messages,
                log_prompts=settings.log_prompts,
            ),
            ClientLimiter(
                ClientLimits(
                    requests_per_second=settings.requests_per_second,
                    burst=settings.request_burst,
                    max_open_calls=settings.max_streams_per_client,
                )
            ),
        )
        options = server_options(
            max_receive_bytes=settings.max_message_bytes,
            idle_s=settings.max_connection_idle_s,
            age_s=settings.max_connection_age_s,
            age_grace_s=settings.max_connection_age_grace_s,
        )
        warnings = exposure_warnings(
            listen, auth=tokens is not None, tls=tls is not None, role=role
        )
        return cls(gate, tls, options, tuple(warnings))

    @property
    def credentials(self) -> grpc.ServerCredentials | None:
        return self.tls.credentials() if self.tls else None

    def announce(self) -> None:
        """Log how the server is protected, loudly when it is exposed; redact secrets in logs."""
        install_log_redaction()
        tokens = self.gate.policy.tokens
        role = self.gate.policy.role
        auth = (
            f"bearer tokens ({len(tokens)} clients)" if tokens is not None else "no authentication"
        )
        transport = ("mutual TLS" if self.tls.mutual else "TLS") if self.tls else "plaintext"
        log.info("%s: %s, %s", role, transport, auth)
        for warning in self.warnings:
            log.warning("%s", warning)
        if self.gate.policy.log_prompts:
            log.warning("%s: --log-prompts is ON: prompt text goes to the log (debug only)", role)
