"""The decision pipeline: rules tier, then the LLM judge, then policy."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from tandem.backends import BackendError
from tandem.backends.base import ChatTurn
from tandem_gateway.guard.decision import GuardDecision
from tandem_gateway.guard.judge import JudgeError, LlmJudge
from tandem_gateway.guard.rules import RulesTier

log = logging.getLogger(__name__)


class Guard:
    """Screens a conversation; never raises for a judge failure (policy decides)."""

    def __init__(
        self,
        judge: LlmJudge,
        *,
        rules: RulesTier | None = None,
        judge_timeout_s: float,
        fail_open: bool = False,
        enforce_judge: bool = True,
    ) -> None:
        self.judge = judge
        self._rules = rules or RulesTier()
        self._judge_timeout_s = judge_timeout_s
        self._fail_open = fail_open
        self._enforce_judge = enforce_judge

    async def decide(self, turns: Sequence[ChatTurn]) -> GuardDecision:
        started = time.monotonic()
        hit = self._rules.check(turns)
        if hit is not None:
            return GuardDecision(
                verdict="refuse",
                tier="rules",
                reason=f"{hit.reason} (rule {hit.rule}, message {hit.turn_index})",
                threats=(hit.threat,),
                latency_s=time.monotonic() - started,
            )
        try:
            async with asyncio.timeout(self._judge_timeout_s):
                output = await self.judge.judge(turns)
        except (JudgeError, BackendError, TimeoutError) as exc:
            return self._judge_failed(exc, started)
        verdict = output.verdict
        threats = tuple(dict.fromkeys(output.threats)) if verdict == "refuse" else ()
        reason = output.reason or ("allowed" if verdict == "allow" else "judged a threat")
        if verdict == "refuse" and not self._enforce_judge:
            flagged = ", ".join(threats) or "a threat"
            verdict, threats = "allow", ()
            reason = f"judge flagged {flagged} ({reason}); advisory only, not enforced"
        return GuardDecision(
            verdict=verdict,
            tier="judge",
            reason=reason,
            threats=threats,
            difficulty=output.difficulty,
            task_type=output.task_type,
            latency_s=time.monotonic() - started,
        )

    def _judge_failed(self, exc: BaseException, started: float) -> GuardDecision:
        what = (
            f"timed out after {self._judge_timeout_s:.1f}s"
            if isinstance(exc, TimeoutError)
            else str(exc)
        )
        if not self._enforce_judge:
            log.warning("advisory judge failed (%s); the rules tier passed the request", what)
            return GuardDecision(
                verdict="allow",
                tier="policy",
                reason=f"advisory judge unavailable ({what}); the rules tier passed it",
                latency_s=time.monotonic() - started,
            )
        if self._fail_open:
            log.error("GUARD FAIL-OPEN: judge failed (%s); request ALLOWED unscreened", what)
            return GuardDecision(
                verdict="allow",
                tier="policy",
                reason=f"judge unavailable ({what}); allowed by fail-open policy",
                difficulty="medium",
                task_type="general",
                latency_s=time.monotonic() - started,
            )
        log.error("GUARD FAIL-CLOSED: judge failed (%s); request refused", what)
        return GuardDecision(
            verdict="refuse",
            tier="policy",
            reason=f"the screening model is unavailable ({what}); refused by fail-closed policy",
            latency_s=time.monotonic() - started,
        )
