"""GuardOptions: every guard policy knob, built from GatewaySettings in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tandem.settings import GatewaySettings
from tandem_gateway.guard.secrets import SecretsPolicy

# What a threat found inside a tool result does: refuse the request, or replace
# that tool result with a note saying it was withheld, and carry on.
IndirectPolicy = Literal["refuse", "withhold"]


@dataclass(frozen=True, slots=True)
class GuardOptions:
    """How the tiers combine. Thresholds None: the classifier artifact's own."""

    use_judge: bool = True
    enforce_judge: bool = True  # False: the judge's refusals are advisory (logged in the reason)
    fail_open: bool = False  # the judge failing: allow unless the classifier flags it
    judge_timeout_s: float = 30.0  # for one judge call (one window)
    decide_threshold: float | None = None
    prescreen_threshold: float | None = None
    cache_size: int = 4096
    cache_ttl_s: float = 600.0
    secrets: SecretsPolicy = "redact"
    indirect: IndirectPolicy = "refuse"
    window_chars: int = 4000  # the judge reads a message in windows of this many characters
    window_overlap_chars: int = 400  # ...each overlapping the next by this many

    @property
    def judge_decides(self) -> bool:
        """The judge's verdict is final (else the classifier's or the rules')."""
        return self.use_judge and self.enforce_judge

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> GuardOptions:
        return cls(
            use_judge=settings.judge_in_use,
            enforce_judge=settings.enforce_judge,
            fail_open=settings.fail_open,
            judge_timeout_s=settings.judge_timeout_s,
            decide_threshold=settings.classifier_threshold,
            prescreen_threshold=settings.classifier_prescreen_threshold,
            cache_size=settings.verdict_cache_size,
            cache_ttl_s=settings.verdict_cache_ttl_s,
            secrets=settings.secrets_in_prompts,
            indirect=settings.indirect_injection,
            window_chars=settings.judge_window_chars,
            window_overlap_chars=settings.judge_window_overlap_chars,
        )
