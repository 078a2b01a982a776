"""Secrets pasted into a prompt: found, then redacted or refused (never logged).

High-precision patterns only (a key's documented shape), so ordinary code
that merely mentions keys passes. What is reported is the kind of secret and
where, never the secret itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tandem.backends.base import ChatTurn

SecretsPolicy = Literal["redact", "refuse", "off"]

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
        ),
    ),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    (
        "AWS secret access key",
        re.compile(r"(?i)(?<=aws_secret_access_key)(\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}\b"),
    ),
    (
        "GitHub token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b"),
    ),
    (
        "OpenAI API key",
        re.compile(
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"
            r"T3BlbkFJ[A-Za-z0-9_-]{20,}\b"
            r"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}\b|\bsk-[A-Za-z0-9]{48}\b"
        ),
    ),
    ("Anthropic API key", re.compile(r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,}\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[0-9]{8,}-[A-Za-z0-9-]{10,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("Stripe secret key", re.compile(r"\b[rs]k_live_[0-9A-Za-z]{24,}\b")),
)


@dataclass(frozen=True, slots=True)
class SecretFinding:
    kind: str
    turn_index: int


@dataclass(frozen=True, slots=True)
class SecretScan:
    turns: tuple[ChatTurn, ...]  # with every secret replaced by a [REDACTED ...] marker
    findings: tuple[SecretFinding, ...]

    def describe(self) -> str:
        kinds = sorted({f.kind for f in self.findings})
        where = sorted({f.turn_index for f in self.findings})
        plural = "s" if len(where) > 1 else ""
        return f"{', '.join(kinds)} in message{plural} {', '.join(map(str, where))}"


def scan_secrets(turns: Sequence[ChatTurn]) -> SecretScan:
    """Find secrets in every turn (assistant turns too: they go to the worker)."""
    findings: list[SecretFinding] = []
    cleaned: list[ChatTurn] = []
    for index, turn in enumerate(turns):
        kinds: list[str] = []
        text = _redact(turn.content, kinds)
        calls = tuple(
            dataclasses.replace(call, arguments=_redact_value(call.arguments, kinds))
            for call in turn.tool_calls
        )
        findings.extend(SecretFinding(kind, index) for kind in dict.fromkeys(kinds))
        if kinds:  # keep the turn's other fields (tool_call_id, tool_name)
            turn = dataclasses.replace(turn, content=text, tool_calls=calls)
        cleaned.append(turn)
    return SecretScan(tuple(cleaned), tuple(findings))


def _redact(text: str, kinds: list[str]) -> str:
    for kind, pattern in _PATTERNS:
        if pattern.search(text) is None:
            continue
        kinds.append(kind)
        marker = f"[REDACTED {kind}]"
        if kind == "AWS secret access key":
            text = pattern.sub(_after_prefix(marker), text)
        else:
            text = pattern.sub(marker, text)
    return text


def _after_prefix(marker: str) -> Callable[[re.Match[str]], str]:
    """A replacement keeping the match's first group (``aws_secret_access_key = ``)."""
    return lambda match: match.group(1) + marker


def _redact_value(value: Any, kinds: list[str]) -> Any:
    """Tool-call arguments with every string in them redacted (JSON-shaped values)."""
    if isinstance(value, str):
        return _redact(value, kinds)
    if isinstance(value, Mapping):
        return {key: _redact_value(item, kinds) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item, kinds) for item in value]
    return value
