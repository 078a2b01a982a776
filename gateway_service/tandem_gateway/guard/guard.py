"""The decision pipeline: secrets, rules, cache, classifier, then the LLM judge; policy on failure.

``screen`` runs every tier that needs no model call (microseconds to about a
millisecond) and either decides or says the judge must; ``finish`` runs the
judge when needed. ``decide`` is both. The split lets the service start the
worker speculatively between the two, and only for requests the fast tiers
passed.

Which tier decides, by backend (see ``GuardOptions.from_settings``):

- embedded default: the judge is not called; the classifier decides verdict
  and difficulty (its threshold keeps benign refusals at about 1.5% in
  grouped cross-validation);
- Ollama (llama3.1:8b): the judge decides; the classifier only refuses what
  it scores above every benign prompt it has seen (``prescreen``), which saves
  the judge call and adds no false refusal on the dev set;
- the judge failing (error, timeout, unparsable answer): fail closed (refuse)
  by default, or fail open (allow, unless the classifier flags it); logged
  loudly either way and never cached.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tandem.backends import BackendError
from tandem.backends.base import ChatTurn
from tandem.settings import GatewaySettings
from tandem_gateway.guard.cache import VerdictCache, conversation_key
from tandem_gateway.guard.classifier import GuardClassifier, ThreatAssessment
from tandem_gateway.guard.decision import GuardDecision
from tandem_gateway.guard.judge import JudgeError, LlmJudge
from tandem_gateway.guard.judge_prompt import PROMPT_VERSION
from tandem_gateway.guard.rules import RulesTier
from tandem_gateway.guard.secrets import SecretsPolicy, scan_secrets
from tandem_gateway.guard.tasktype import task_type_of

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GuardOptions:
    """How the tiers combine (built from GatewaySettings)."""

    use_judge: bool = True
    decide_threshold: float | None = None  # None: the artifact's
    prescreen_threshold: float | None = None  # None: the artifact's
    cache_size: int = 4096
    cache_ttl_s: float = 600.0
    secrets: SecretsPolicy = "redact"

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> GuardOptions:
        return cls(
            use_judge=settings.judge_in_use,
            decide_threshold=settings.classifier_threshold,
            prescreen_threshold=settings.classifier_prescreen_threshold,
            cache_size=settings.verdict_cache_size,
            cache_ttl_s=settings.verdict_cache_ttl_s,
            secrets=settings.secrets_in_prompts,
        )


@dataclass(frozen=True, slots=True)
class Screening:
    """What the fast tiers found. ``decision`` set: final; else the judge must run."""

    turns: tuple[ChatTurn, ...]  # the conversation to forward (secrets redacted)
    redacted: bool
    started: float
    key: str
    decision: GuardDecision | None = None
    assessment: ThreatAssessment | None = None
    notes: tuple[str, ...] = ()

    @property
    def difficulty(self) -> str | None:
        """The best difficulty known before the judge (for speculative dispatch)."""
        if self.decision is not None:
            return self.decision.difficulty
        return self.assessment.difficulty if self.assessment else None


class Guard:
    """Screens a conversation; never raises for a judge failure (policy decides)."""

    def __init__(
        self,
        judge: LlmJudge | None,
        *,
        rules: RulesTier | None = None,
        judge_timeout_s: float,
        fail_open: bool = False,
        enforce_judge: bool = True,
        classifier: GuardClassifier | None = None,
        options: GuardOptions | None = None,
    ) -> None:
        self.judge = judge
        self.classifier = classifier
        self.options = options or GuardOptions()
        self._rules = rules or RulesTier()
        self._judge_timeout_s = judge_timeout_s
        self._fail_open = fail_open
        self._enforce_judge = enforce_judge
        self.cache = VerdictCache(self.options.cache_size, self.options.cache_ttl_s)
        self._decide_at = self._threshold(self.options.decide_threshold, "decide")
        self._prescreen_at = self._threshold(self.options.prescreen_threshold, "prescreen")
        self._version = "|".join(
            (
                PROMPT_VERSION,
                classifier.version if classifier else "no-classifier",
                f"{self._decide_at}/{self._prescreen_at}",
                f"judge={self.options.use_judge}/{enforce_judge}",
            )
        )

    def _threshold(self, override: float | None, name: str) -> float:
        if override is not None:
            return override
        if self.classifier is None:
            return float("inf")
        return float(getattr(self.classifier.thresholds, name))

    @property
    def judge_decides(self) -> bool:
        """The judge's verdict is final (else the classifier's or the rules')."""
        return self.options.use_judge and self._enforce_judge

    @property
    def mode(self) -> str:
        tiers = ["rules"]
        if self.classifier is not None:
            tiers.append("classifier (prescreen)" if self.judge_decides else "classifier")
        if self.options.use_judge:
            tiers.append("judge" if self._enforce_judge else "judge (advisory)")
        return " -> ".join(tiers)

    async def decide(self, turns: Sequence[ChatTurn]) -> GuardDecision:
        return await self.finish(self.screen(turns))

    def screen(self, turns: Sequence[ChatTurn]) -> Screening:
        """Every tier that needs no model call."""
        started = time.monotonic()
        notes: list[str] = []
        forwarded = tuple(turns)
        redacted = False
        if self.options.secrets != "off":
            scan = scan_secrets(forwarded)
            if scan.findings:
                if self.options.secrets == "refuse":
                    return self._final(forwarded, started, "", GuardDecision(
                        verdict="refuse",
                        tier="rules",
                        reason=f"contains a secret ({scan.describe()}); refused by the secrets "
                        "policy: remove it and resend",
                    ))
                forwarded, redacted = scan.turns, True
                notes.append(f"redacted {scan.describe()}")
        hit = self._rules.check(forwarded)
        if hit is not None:
            return self._final(forwarded, started, "", GuardDecision(
                verdict="refuse",
                tier="rules",
                reason=f"{hit.reason} (rule {hit.rule}, message {hit.turn_index})",
                threats=(hit.threat,),
            ), redacted=redacted, notes=notes)
        key = conversation_key(forwarded, self._version)
        cached = self.cache.get(key)
        if cached is not None:
            return self._final(forwarded, started, key, dataclasses.replace(
                cached, tier="cache", reason=f"cached {cached.tier} verdict: {cached.reason}",
            ), redacted=redacted, notes=notes)
        assessment = self.classifier.assess(forwarded) if self.classifier is not None else None
        if assessment is not None:
            threshold = self._prescreen_at if self.judge_decides else self._decide_at
            if assessment.score >= threshold:
                decision = _classifier_refuses(assessment, threshold, forwarded)
                self.cache.put(key, decision)
                return self._final(forwarded, started, key, decision, redacted=redacted, notes=notes,
                                   assessment=assessment)
            if not self.options.use_judge:
                decision = self._classifier_allows(assessment, forwarded)
                self.cache.put(key, decision)
                return self._final(forwarded, started, key, decision, redacted=redacted, notes=notes,
                                   assessment=assessment)
        elif not self.options.use_judge:
            decision = GuardDecision(verdict="allow", tier="rules",
                                     reason="passed the rules tier (classifier and judge off)",
                                     task_type=task_type_of(forwarded[-1].content))
            return self._final(forwarded, started, key, decision, redacted=redacted, notes=notes)
        return Screening(forwarded, redacted, started, key, None, assessment, tuple(notes))

    def _classifier_allows(self, assessment: ThreatAssessment, turns: Sequence[ChatTurn]) -> GuardDecision:
        return GuardDecision(
            verdict="allow",
            tier="classifier",
            reason=f"classifier: no threat (score {assessment.score:.2f} < {self._decide_at:.2f})",
            difficulty=assessment.difficulty,
            task_type=task_type_of(turns[-1].content),
        )

    def _final(
        self,
        turns: tuple[ChatTurn, ...],
        started: float,
        key: str,
        decision: GuardDecision,
        *,
        redacted: bool = False,
        notes: Sequence[str] = (),
        assessment: ThreatAssessment | None = None,
    ) -> Screening:
        decision = _with_notes(decision, notes, time.monotonic() - started)
        return Screening(turns, redacted, started, key, decision, assessment, tuple(notes))

    async def finish(self, screening: Screening) -> GuardDecision:
        """The final decision: the screening's, or the judge's under the policy."""
        if screening.decision is not None:
            return screening.decision
        started = screening.started
        try:
            if self.judge is None:
                raise JudgeError("no judge is configured")
            async with asyncio.timeout(self._judge_timeout_s):
                output = await self.judge.judge(screening.turns)
        except (JudgeError, BackendError, TimeoutError) as exc:
            return _with_notes(self._judge_failed(exc, screening), screening.notes,
                               time.monotonic() - started)
        threats = tuple(dict.fromkeys(output.threats)) if output.verdict == "refuse" else ()
        reason = output.reason or ("allowed" if output.verdict == "allow" else "judged a threat")
        if self._enforce_judge:
            decision = GuardDecision(
                verdict=output.verdict,
                tier="judge",
                reason=reason,
                threats=threats,
                difficulty=output.difficulty,
                task_type=output.task_type,
            )
        else:
            flagged = ", ".join(threats) or "a threat"
            advisory = f"judge flagged {flagged} ({reason}); advisory only, not enforced"
            if screening.assessment is not None:
                base = self._classifier_allows(screening.assessment, screening.turns)
                decision = dataclasses.replace(
                    base, reason=base.reason + (f"; {advisory}" if output.verdict == "refuse" else "")
                )
            else:
                decision = GuardDecision(
                    verdict="allow",
                    tier="judge",
                    reason=advisory if output.verdict == "refuse" else reason,
                    difficulty=output.difficulty,
                    task_type=output.task_type,
                )
        self.cache.put(screening.key, decision)
        return _with_notes(decision, screening.notes, time.monotonic() - started)

    def _judge_failed(self, exc: BaseException, screening: Screening) -> GuardDecision:
        what = (
            f"timed out after {self._judge_timeout_s:.1f}s"
            if isinstance(exc, TimeoutError)
            else str(exc)
        )
        assessment = screening.assessment
        if not self._enforce_judge:
            log.warning("advisory judge failed (%s); the earlier tiers passed the request", what)
            if assessment is not None:
                base = self._classifier_allows(assessment, screening.turns)
                return dataclasses.replace(base, reason=f"{base.reason}; advisory judge unavailable ({what})")
            return GuardDecision(
                verdict="allow",
                tier="policy",
                reason=f"advisory judge unavailable ({what}); the rules tier passed it",
            )
        if self._fail_open:
            if assessment is not None and assessment.score >= self._decide_at:
                log.error("GUARD FAIL-OPEN: judge failed (%s); the classifier flags the request: refused", what)
                decision = _classifier_refuses(assessment, self._decide_at, screening.turns)
                return dataclasses.replace(decision, reason=f"judge unavailable ({what}); {decision.reason}")
            log.error("GUARD FAIL-OPEN: judge failed (%s); request ALLOWED without the judge", what)
            return GuardDecision(
                verdict="allow",
                tier="policy",
                reason=f"judge unavailable ({what}); allowed by fail-open policy",
                difficulty=assessment.difficulty if assessment else "medium",
                task_type=task_type_of(screening.turns[-1].content),
            )
        log.error("GUARD FAIL-CLOSED: judge failed (%s); request refused", what)
        return GuardDecision(
            verdict="refuse",
            tier="policy",
            reason=f"the screening model is unavailable ({what}); refused by fail-closed policy",
        )


def _classifier_refuses(
    assessment: ThreatAssessment, threshold: float, turns: Sequence[ChatTurn]
) -> GuardDecision:
    return GuardDecision(
        verdict="refuse",
        tier="classifier",
        reason=f"classifier: likely {assessment.category.replace('_', ' ')} "
        f"(message {assessment.turn_index}, score {assessment.score:.2f} >= {threshold:.2f})",
        threats=(assessment.category,),
        difficulty=assessment.difficulty,
        task_type=task_type_of(turns[-1].content),
    )


def _with_notes(decision: GuardDecision, notes: Sequence[str], latency_s: float) -> GuardDecision:
    reason = decision.reason if not notes else f"{decision.reason} [{'; '.join(notes)}]"
    return dataclasses.replace(decision, reason=reason, latency_s=latency_s, notes=tuple(notes))


def build_guard(settings: GatewaySettings, judge: LlmJudge | None) -> Guard:
    """The gateway's guard as its settings describe it."""
    classifier = GuardClassifier.load(settings.classifier_path) if settings.classifier else None
    return Guard(
        judge,
        judge_timeout_s=settings.judge_timeout_s,
        fail_open=settings.fail_open,
        enforce_judge=settings.enforce_judge,
        classifier=classifier,
        options=GuardOptions.from_settings(settings),
    )
