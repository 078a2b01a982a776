"""Secrets pasted into a prompt: found, then redacted or refused (never logged).

High-precision patterns only (a key's documented shape), so ordinary code
that merely mentions keys passes. What is reported is the kind of secret and
where, never the secret itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tandem.backends.base import ChatTurn

SecretsPolicy = Literal["redact", "refuse", "off"]

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("AWS secret access key", re.compile(
        r"(?i)(?<=aws_secret_access_key)(\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b")),
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}\b"
                                  r"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}\b|\bsk-[A-Za-z0-9]{48}\b")),
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
        return f"{', '.join(kinds)} in message{'s' if len(where) > 1 else ''} {', '.join(map(str, where))}"


def scan_secrets(turns: Sequence[ChatTurn]) -> SecretScan:
    """Find secrets in every turn (assistant turns too: they go to the worker)."""
    findings: list[SecretFinding] = []
    cleaned: list[ChatTurn] = []
    for index, turn in enumerate(turns):
        text = turn.content
        for kind, pattern in _PATTERNS:
            if pattern.search(text) is None:
                continue
            findings.append(SecretFinding(kind, index))
            marker = f"[REDACTED {kind}]"
            if kind == "AWS secret access key":
                text = pattern.sub(lambda m: m.group(1) + marker, text)
            else:
                text = pattern.sub(marker, text)
        # replace(): a redacted turn keeps its tool calls and the call id it answers.
        cleaned.append(turn if text == turn.content else dataclasses.replace(turn, content=text))
    return SecretScan(tuple(cleaned), tuple(findings))
