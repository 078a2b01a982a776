"""Secrets out of log lines: bearer tokens, API keys, private keys, passwords.

A small, high-precision list (the guard's own secret detection lives in the
gateway's guard package); ``RedactingFilter`` applies it to every record a
handler emits, so a secret that reaches a log call anyway (an error message
quoting a header, the ``--log-prompts`` debug switch) is masked.
"""

from __future__ import annotations

import logging
import re

MASK = "[REDACTED]"

_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
        r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}",
        r"\btdm_[A-Za-z0-9_-]{16,}",  # Tandem's own tokens
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
        r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",  # GitHub tokens
        r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
        r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}\b",  # OpenAI / Anthropic keys
        r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b",  # Slack tokens
        r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google API keys
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
        r"\bsha256:[0-9a-f]{64}\b",  # token hashes: not secret, but no reason to log them
    )
)
# key=value / key: value with a secret-sounding key keeps the key, masks the value.
_ASSIGNMENT = re.compile(
    r"(?i)\b((?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|token|authorization)"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;]{4,})"
)


def redact(text: str) -> str:
    """``text`` with every secret it recognises replaced by ``[REDACTED]``."""
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return _ASSIGNMENT.sub(lambda m: m.group(1) + MASK, text)


class RedactingFilter(logging.Filter):
    """Formats each record's message once, redacted, so no handler sees the raw text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a RedactingFilter to every handler of ``logger`` (the root by default), once."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
