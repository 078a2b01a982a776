"""The rules tier: microseconds, no model, only high-precision checks.

Each rule names a threat category and says why it fired. Rules look at the
normalised text of every non-assistant turn; template-token checks ignore
fenced and inline code, so a prompt *about* chat templates is not refused.
Coding prompts that merely mention security words must pass: every pattern
here needs an imperative aimed at the assistant's own instructions, or a
well-known jailbreak scaffold, not a topic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tandem.backends.base import ChatTurn
from tandem_gateway.guard.decision import ThreatName
from tandem_gateway.guard.normalize import normalize

_FLAGS = re.IGNORECASE | re.DOTALL


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    threat: ThreatName
    reason: str
    pattern: re.Pattern[str]
    outside_code_only: bool = False
    # Every match contains one of these (lower-case) words: a cheap substring test
    # skips the regex on the long prompts that contain none of them.
    keywords: tuple[str, ...] = ()

    def may_match(self, lowered: str) -> bool:
        return not self.keywords or any(word in lowered for word in self.keywords)


@dataclass(frozen=True, slots=True)
class RuleHit:
    rule: str
    threat: ThreatName
    reason: str
    turn_index: int


_PREVIOUS = (
    r"(?:previous|prior|above|earlier|preceding|foregoing|initial|original|system"
    r"|developer)"
)
_INSTRUCTIONS = (
    r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails"
    r"|constraints)"
)

RULES: tuple[Rule, ...] = (
    Rule(
        "ignore-previous-instructions",
        "prompt_injection",
        "asks the model to ignore or override its instructions",
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|skip)\b(?:\s+(?:all|any|every|of|the|your|my|these|those|its))*"
            rf"\s+{_PREVIOUS}\s+(?:\w+\s+)?{_INSTRUCTIONS}",
            _FLAGS,
        ),
        keywords=("ignore", "disregard", "forget", "override", "bypass", "skip"),
    ),
    Rule(
        "ignore-everything",
        "prompt_injection",
        "asks the model to discard everything it was told before",
        re.compile(
            r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:the\s+|your\s+)?(?:instructions|rules)\b"
            r"|\b(?:ignore|disregard|forget)\s+(?:all\s+of\s+)?(?:everything|the\s+above)"
            r"(?:\s+(?:above|before|previous|prior|so\s+far|you(?:'ve|\s+have|\s+were)?\s+been\s+told|we\s+discussed))?\s*(?:and|,|\.|-|$)"
            r"|\bvergiss\s+(?:alles|alle\s+(?:auftr[äa]ge|anweisungen))\b"
            r"|\b(?:obigen|vorherigen)\s+(?:anweisungen|ausf[üu]hrungen)\s+ignorieren\b",
            _FLAGS,
        ),
        keywords=("ignore", "disregard", "forget", "vergiss", "ignorieren"),
    ),
    Rule(
        "new-instructions-override",
        "prompt_injection",
        "tries to replace the model's instructions",
        re.compile(
            r"\b(?:your|the)\s+new\s+(?:instructions|task|rules)\s+(?:are|is)\b"
            r"|\bfrom\s+now\s+on\s*,?\s+you\s+(?:will|must|shall)\s+"
            r"(?:ignore|disregard|no longer follow)\b",
            _FLAGS,
        ),
        keywords=("new", "now"),
    ),
    Rule(
        "system-prompt-extraction",
        "exfiltration",
        "asks the model to reveal its system prompt or hidden instructions",
        re.compile(
            r"\b(?:print|reveal|show|display|repeat|output|leak|dump|disclose|recite|write\s+out|tell\s+me|give\s+me|share|spell\s+out)\b"
            r"[^.\n]{0,40}?\b(?:your|the|its)\s+(?:full\s+|entire\s+|exact\s+|original\s+|hidden\s+|secret\s+|initial\s+)*"
            r"(?:system\s+(?:prompt|message|instructions)|(?:hidden|secret|initial|original|starting|developer)\s+(?:prompt|instructions|message|configuration))"
            r"|\bwhat\s+(?:are|were)\s+your\s+(?:initial|original|starting|system|hidden|secret)\s+instructions\b"
            r"|\bwhat\s+(?:is|was)\s+written\s+(?:above|at\s+the\s+(?:beginning|start|top)\s+of\s+(?:this|the|your)\s+(?:prompt|conversation|instructions))",
            _FLAGS,
        ),
        keywords=("system", "prompt", "instruction", "message", "configuration", "written"),
    ),
    Rule(
        "credential-request",
        "exfiltration",
        "asks the assistant to hand over its own password or secret",
        re.compile(
            r"\b(?:what\s+is|what's|tell\s+me|give\s+me|share|reveal|provide|disclose)\b[^.?\n]{0,30}?"
            r"\byour\s+(?:password|passcode|passphrase|secret\s+(?:key|code|word|password)|api\s+keys?|access\s+token)\b",
            _FLAGS,
        ),
        keywords=("password", "passcode", "passphrase", "secret", "api", "token"),
    ),
    Rule(
        "dan-scaffold",
        "jailbreak",
        "uses the 'Do Anything Now' (DAN) jailbreak scaffold",
        re.compile(r"\bdo\s+anything\s+now\b|\bDAN\s+mode\b|\bact\s+as\s+(?:a\s+)?DAN\b", _FLAGS),
        keywords=("anything", "dan"),
    ),
    Rule(
        "unrestricted-mode",
        "jailbreak",
        "asks the model to enter an unrestricted or 'developer' mode",
        re.compile(
            r"\b(?:developer|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored)\s+mode\s+(?:enabled|activated|on)\b"
            r"|\benable\s+(?:developer|jailbreak|unrestricted|god)\s+mode\b"
            r"|\byou\s+are\s+(?:now\s+)?(?:free|freed|released|liberated|no\s+longer\s+bound)\s+(?:from|by)\s+(?:all\s+|any\s+|the\s+|your\s+)*(?:rules|restrictions|guidelines|policies|openai|filters|limitations)"
            r"|\b(?:without|free\s+of|no)\s+(?:any\s+)?(?:ethical|moral)\s+(?:or\s+\w+\s+)?(?:restrictions|guidelines|limits|constraints|boundaries)\b",
            _FLAGS,
        ),
        keywords=("mode", "free", "released", "liberated", "bound", "ethical", "moral"),
    ),
    Rule(
        "chat-template-tokens",
        "prompt_injection",
        "contains chat-template control tokens that could forge conversation turns",
        re.compile(
            r"<\|(?:im_start|im_end|system|user|assistant|begin_of_text|start_header_id|end_header_id|eot_id|endoftext)\|>"
            r"|\[/?INST\]|<</?SYS>>|<start_of_turn>|<end_of_turn>",
            re.IGNORECASE,
        ),
        outside_code_only=True,
        keywords=("<|", "inst]", "sys>>", "_of_turn>"),
    ),
    Rule(
        "markdown-exfiltration",
        "exfiltration",
        "builds a markdown image or link that would send data to an outside URL",
        re.compile(
            r"!\[[^\]]*\]\(\s*https?://[^)\s]*[?&][\w.-]+=(?:\{|\$\{|%7B|\[|<)"
            r"|!\[[^\]]*\]\(\s*https?://[^)\s]*(?:\{|\$\{|%7B)[^)]*\)",
            re.IGNORECASE,
        ),
        keywords=("![",),
    ),
)

# Indirect injection: instructions planted in content the assistant is given to
# read (a tool result, a fetched page, an e-mail). Each needs an instruction aimed
# at the model *and* an attack payload, so documentation that merely mentions
# keys, users or AI agents passes.
_ATTACK_VERB = (
    r"(?:ignore|disregard|forget|send|e-?mail|forward|upload|post|exfiltrate|transmit"
    r"|leak|reveal|print|output|execute|run|delete|curl|wget)"
)
_PRIVATE = (
    r"(?:~/\.ssh\b(?!/[\w.-]+\.pub)|\.ssh/id_(?:rsa|dsa|ecdsa|ed25519)\b(?!\.pub)"
    r"|~/\.aws(?:/credentials)?\b|\.aws/credentials\b|~/\.env\b|\.env\s+file"
    r"|/etc/(?:shadow|passwd)\b|~/\.netrc\b|~/\.kube/config\b|\.git-credentials\b"
    r"|(?:ssh|private|secret)\s+keys?\b|(?:all\s+|every\s+)?(?:the\s+)?(?:user'?s?|your)\s+"
    r"(?:api\s+keys?|passwords?|credentials|secrets|tokens|cookies|ssh\s+keys?|private\s+(?:files|data))"
    r"|all\s+(?:the\s+|of\s+the\s+)?(?:api\s+keys|passwords|environment\s+variables|env\s+vars"
    r"|credentials|secrets|tokens))"
)
_TARGET = (
    r"(?:https?://|ftp://|[\w.+-]+@[\w-]+\.[\w.]+|(?:this|that|the\s+following|my|our)\s+"
    r"(?:url|address|server|endpoint|e-?mail|webhook)|attacker|pastebin)"
)

INDIRECT_RULES: tuple[Rule, ...] = (
    Rule(
        "ignore-the-user",
        "prompt_injection",
        "content tells the assistant to ignore its user and do something else",
        re.compile(
            r"\b(?:ignore|disregard|forget)\s+(?:what\s+)?(?:the|your)\s+user(?:'s)?"
            r"(?:\s+(?:request|instructions?|question|task|prompt|message|asked|said|says|wants))?"
            rf"\s*(?:and|,|;|\.|:|-)\s*(?:(?:then|instead|now|please)\s*,?\s+)*{_ATTACK_VERB}\b",
            _FLAGS,
        ),
        keywords=("user",),
    ),
    Rule(
        "send-secrets-out",
        "exfiltration",
        "instructs the assistant to send private files or keys to an outside address",
        re.compile(
            r"(?:^|[.!?;:>\n]\s*|\b(?:and|then|please|must|now|also|instead)\s+)"
            r"(?:send|e-?mail|forward|upload|post|exfiltrate|transmit|leak|copy|paste|curl)\s+"
            r"(?:(?:the|all|of|contents?|your|user'?s?|files?|in|from)\s+){0,5}"
            rf"{_PRIVATE}[^\n]{{0,80}}?\b(?:to|at|into)\s+{_TARGET}",
            _FLAGS | re.MULTILINE,
        ),
        keywords=(
            ".ssh",
            ".aws",
            ".env",
            "/etc/",
            ".netrc",
            ".kube",
            "credential",
            "key",
            "password",
            "secret",
            "token",
            "cookie",
            "environment",
            "env var",
        ),
    ),
    Rule(
        "addressed-to-the-ai",
        "prompt_injection",
        "content addresses the AI reading it with an instruction",
        re.compile(
            r"\b(?:AI|LLM|language\s+model|assistant|agent|chatbot|copilot)s?\s*"
            r"(?:[:,]|\(|-|—)?\s*(?:reading\s+this\s*,?\s*)?"
            r"(?:when|if|once|after|as\s+soon\s+as)\s+you\s+(?:read|see|process|summari[sz]e|parse|"
            rf"encounter|find)\s+this\b[^\n]{{0,80}}?\b{_ATTACK_VERB}\b"
            r"|\b(?:note|message|instructions?|attention)\s+(?:to|for)\s+(?:any\s+|all\s+|the\s+)?"
            r"(?:AI|LLM|language\s+model|assistant|agent|chatbot)s?\b[^\n]{0,80}?"
            rf"\b{_ATTACK_VERB}\s+(?:all\s+|any\s+|the\s+|your\s+|previous|prior|~|\.|/)"
            r"|\bif\s+you\s+are\s+an?\s+(?:AI|LLM|language\s+model|assistant|agent|chatbot)\b"
            rf"[^\n]{{0,60}}?\b(?:you\s+must|must|should|please)\s+{_ATTACK_VERB}\b",
            _FLAGS,
        ),
        keywords=("ai", "llm", "model", "assistant", "agent", "chatbot", "copilot"),
    ),
    Rule(
        "hidden-comment-instruction",
        "prompt_injection",
        "hides an instruction to the model in an HTML comment",
        re.compile(
            r"<!--(?:(?!-->).){0,600}?(?:"
            r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:previous|prior|above|earlier"
            r"|the\s+user|your\s+(?:instructions|user|rules)|the\s+(?:above|previous|system))\b"
            r"|\b(?:AI|LLM|assistant|agent|model)s?\s*(?:[:,]|must\b)[^<]{0,80}?"
            rf"\b{_ATTACK_VERB}\b)",
            _FLAGS,
        ),
        keywords=("<!--",),
    ),
)

_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.DOTALL)


def strip_code(text: str) -> str:
    return _CODE.sub(" ", text)


class RulesTier:
    """Runs every rule over whole texts; the first hit decides."""

    def __init__(self, rules: Sequence[Rule] = (*RULES, *INDIRECT_RULES)) -> None:
        self._rules = tuple(rules)

    def check(self, turns: Sequence[ChatTurn]) -> RuleHit | None:
        """The first hit in any non-assistant turn's content."""
        for index, turn in enumerate(turns):
            if turn.role == "assistant":
                continue
            hit = self.check_text(turn.content)
            if hit is not None:
                return RuleHit(hit.rule, hit.threat, hit.reason, index)
        return None

    def check_text(self, text: str) -> RuleHit | None:
        """The first rule that matches anywhere in ``text`` (``turn_index`` -1)."""
        normal = normalize(text)
        if normal.tag_characters:
            return RuleHit(
                "unicode-tag-characters",
                "prompt_injection",
                "hides text in invisible Unicode tag characters",
                -1,
            )
        if normal.bidi_overrides:
            return RuleHit(
                "bidi-override",
                "prompt_injection",
                "contains bidirectional override characters that disguise text",
                -1,
            )
        prose: str | None = None
        lowered = normal.text.lower()
        for rule in self._rules:
            if not rule.may_match(lowered):
                continue
            target = normal.text
            if rule.outside_code_only:
                prose = strip_code(normal.text) if prose is None else prose
                target = prose
            if rule.pattern.search(target):
                return RuleHit(rule.name, rule.threat, rule.reason, -1)
        return None
