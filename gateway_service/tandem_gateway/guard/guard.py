"""The decision pipeline: secrets, rules, cache, classifier, then the judge; policy on failure.

``screen`` runs every tier that needs no model call and either decides or
leaves the judge a list of pieces to read; ``finish`` runs the judge on them.
``decide`` is both. The split lets the service start the worker speculatively
between the two, and only for requests the fast tiers passed.

Every piece of the request (``items.py``: system prompt, user turns, tool
results, tool-call arguments, tool definitions) is screened whole by the
rules and the classifier, and by the judge window by window (``judge_prompt``);
each piece's verdict is cached on its own, so turn N of an agent conversation
costs the judge only the messages it has not read yet.

Which tier decides, by backend (``GuardOptions.from_settings``):

- embedded default: the judge is not called; the classifier decides verdict
  and difficulty (its threshold keeps benign refusals at about 1.5% in
  grouped cross-validation);
- Ollama (llama3.1:8b): the judge decides; the classifier only refuses what
  it scores above every benign prompt it has seen (``prescreen``), which saves
  the judge call and adds no false refusal on the dev set;
- the judge failing (error, timeout, unparsable answer): fail closed (refuse)
  by default, or fail open (allow, unless the classifier flags it); logged
  loudly either way and never cached.

A threat inside a tool result is an indirect injection: the request is refused
(default) or, with ``indirect = "withhold"``, that tool result is replaced by a
note and the rest is answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tandem.backends import BackendError
from tandem.backends.base import ChatTurn, ToolDefinition
from tandem.settings import GatewaySettings
from tandem_gateway.guard.cache import VerdictCache, message_key
from tandem_gateway.guard.classifier import GuardClassifier, MessageAssessment
from tandem_gateway.guard.decision import DIFFICULTY_NAMES, DifficultyName, GuardDecision, TierName
from tandem_gateway.guard.items import (
    CLASSIFIED_KINDS,
    DATA_KINDS,
    ScreenItem,
    items_of,
    newest_user,
    withhold,
)
from tandem_gateway.guard.judge import Judge, JudgeError, NoJudge
from tandem_gateway.guard.judge_prompt import MAX_CONTEXT_CHARS, windows_of
from tandem_gateway.guard.options import GuardOptions
from tandem_gateway.guard.rules import RulesTier
from tandem_gateway.guard.secrets import scan_secrets
from tandem_gateway.guard.tasktype import task_type_of

log = logging.getLogger(__name__)

# Messages up to this long are scored on the event loop when no window needs the
# sentence encoder (n-grams only, well under a millisecond); a message that needs
# the encoder, or is longer, is scored in a thread.
INLINE_CLASSIFIER_CHARS = 1_000

_RANK = {name: rank for rank, name in enumerate(DIFFICULTY_NAMES)}
_JUDGED_INJECTION = "the judge found instructions aimed at the assistant"
Verdicts = tuple[tuple[ScreenItem, GuardDecision], ...]


@dataclass(frozen=True, slots=True)
class Screening:
    """What the fast tiers found. ``decision`` set: final; else the judge reads ``pending``."""

    turns: tuple[ChatTurn, ...]  # to forward: secrets redacted, withheld tool results replaced
    # The turns differ from the request's messages (secrets redacted or tool results
    # withheld): the worker must get ``turns``.
    redacted: bool
    started: float
    decision: GuardDecision | None = None
    pending: tuple[ScreenItem, ...] = ()
    known: Verdicts = ()  # pieces already decided (cache, classifier)
    user: ScreenItem | None = None  # the newest user turn: difficulty and task type are its
    context: str = ""  # that turn, clipped: shown to the judge with data
    flag: MessageAssessment | None = None  # the classifier's top score among ``pending``
    pre_difficulty: DifficultyName | None = None
    withheld: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def difficulty(self) -> DifficultyName | None:
        """The best difficulty known before the judge (for speculative dispatch)."""
        return self.decision.difficulty if self.decision is not None else self.pre_difficulty

    def forwarded(self, decision: GuardDecision) -> tuple[ChatTurn, ...]:
        """The conversation the worker gets once ``decision`` allowed it."""
        later = {i: _JUDGED_INJECTION for i in decision.withheld if i not in self.withheld}
        return withhold(self.turns, later) if later else self.turns

    def after(self, decision: GuardDecision) -> Screening:
        """This screening with the tool results ``decision`` withheld replaced too."""
        if set(decision.withheld) <= set(self.withheld):
            return self
        return dataclasses.replace(
            self, turns=self.forwarded(decision), redacted=True, withheld=decision.withheld
        )


class Guard:
    """Screens a request; never raises for a judge failure (policy decides)."""

    def __init__(
        self,
        judge: Judge,
        options: GuardOptions,
        *,
        classifier: GuardClassifier | None = None,
        rules: RulesTier | None = None,
    ) -> None:
        self.judge = judge
        self.classifier = classifier
        self.options = options
        self._rules = rules or RulesTier()
        self.cache = VerdictCache(options.cache_size, options.cache_ttl_s)
        self._decide_at = self._threshold(options.decide_threshold, "decide")
        self._prescreen_at = self._threshold(options.prescreen_threshold, "prescreen")
        self.version = "|".join(
            (
                judge.version,
                classifier.version if classifier else "no-classifier",
                f"{self._decide_at}/{self._prescreen_at}",
                f"judge={options.use_judge}/{options.enforce_judge}",
                f"window={options.window_chars}/{options.window_overlap_chars}",
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
        return self.options.judge_decides and self.judge.in_use

    @property
    def judge_runs(self) -> bool:
        return self.options.use_judge and self.judge.in_use

    @property
    def mode(self) -> str:
        tiers = ["rules"]
        if self.classifier is not None:
            tiers.append("classifier (prescreen)" if self.judge_decides else "classifier")
        if self.judge_runs:
            tiers.append("judge" if self.judge_decides else "judge (advisory)")
        return " -> ".join(tiers)

    async def decide(
        self, turns: Sequence[ChatTurn], tools: Sequence[ToolDefinition] = ()
    ) -> GuardDecision:
        return await self.finish(await self.screen(turns, tools))

    # --- the fast tiers -------------------------------------------------------------

    async def screen(
        self, turns: Sequence[ChatTurn], tools: Sequence[ToolDefinition] = ()
    ) -> Screening:
        """Every tier that needs no model call, on every piece, whole.

        The classifier's sentence encoder never runs on the event loop: ~8 ms of CPU
        for a short window, ~30 ms for a full one, and the gateway's other streams and
        health checks must not wait for that. A short message the encoder gate passes
        on its n-grams is scored inline; the rest in a thread.
        """
        started = time.monotonic()
        notes: list[str] = []
        forwarded, redacted = tuple(turns), False
        if self.options.secrets != "off":
            scan = scan_secrets(forwarded)
            if scan.findings:
                if self.options.secrets == "refuse":
                    return _final(
                        forwarded,
                        started,
                        notes,
                        GuardDecision(
                            verdict="refuse",
                            tier="rules",
                            reason=f"contains a secret ({scan.describe()}); refused by the secrets "
                            "policy: remove it and resend",
                            message_index=scan.findings[0].turn_index,
                        ),
                    )
                forwarded, redacted = scan.turns, True
                notes.append(f"redacted {scan.describe()}")
        items = items_of(forwarded, tools)
        withheld: dict[int, str] = {}

        def refuse_or_withhold(item: ScreenItem, refusal: GuardDecision) -> GuardDecision | None:
            if self._withholds(item):
                assert item.message_index is not None
                withheld[item.message_index] = refusal.reason
                notes.append(f"withheld the tool result in {item.label}: {refusal.reason}")
                return None
            return _naming(item, refusal)

        user = newest_user(items)
        known: list[tuple[ScreenItem, GuardDecision]] = []
        pending: list[ScreenItem] = []
        flag: MessageAssessment | None = None
        pre_difficulty: DifficultyName | None = None
        fresh: TierName | None = None
        for item in items:
            # A message seen before (same role, same normalised text, same guard) is
            # answered from the cache: it passed or failed every tier then, so turn N
            # of a conversation costs the tiers only its new messages.
            key = message_key(item.kind, item.text, self.version)
            cached = self.cache.get(key)
            if cached is not None:
                if item is user:
                    pre_difficulty = cached.difficulty
                if cached.refused:
                    refusal = refuse_or_withhold(
                        item,
                        dataclasses.replace(
                            cached,
                            tier="cache",
                            reason=f"cached {cached.tier} verdict: {cached.reason}",
                        ),
                    )
                    if refusal is not None:
                        return _final(forwarded, started, notes, refusal, redacted)
                    continue
                known.append((item, cached))
                continue
            hit = self._rules.check_text(item.text)  # the whole text, however long
            if hit is not None:
                refusal = refuse_or_withhold(
                    item,
                    GuardDecision(
                        verdict="refuse",
                        tier="rules",
                        reason=f"{hit.reason} (rule {hit.rule})",
                        threats=(hit.threat,),
                    ),
                )
                if refusal is not None:
                    return _final(forwarded, started, notes, refusal, redacted)
                continue
            assessment = await self._assess(item)
            if assessment is not None:
                if item is user:
                    pre_difficulty = assessment.difficulty
                threshold = self._prescreen_at if self.judge_decides else self._decide_at
                if assessment.score >= threshold:
                    verdict = _classifier_refuses(assessment, threshold)
                    self.cache.put(key, verdict)
                    refusal = refuse_or_withhold(item, verdict)
                    if refusal is not None:
                        return _final(forwarded, started, notes, refusal, redacted)
                    continue
            if self.judge_decides:
                pending.append(item)
                if assessment is not None and (flag is None or assessment.score > flag.score):
                    flag = assessment
                continue
            verdict = self._fast_allow(assessment)
            if assessment is not None:
                self.cache.put(key, verdict)
            fresh = verdict.tier
            known.append((item, verdict))
            if self.judge_runs:  # advisory
                pending.append(item)
        if withheld:
            forwarded = withhold(forwarded, withheld)
        base = Screening(
            forwarded,
            redacted or bool(withheld),
            started,
            known=tuple(known),
            user=user,
            context=user.text[:MAX_CONTEXT_CHARS] if user else "",
            flag=flag,
            pre_difficulty=pre_difficulty,
            withheld=tuple(withheld),
            notes=tuple(notes),
        )
        if pending:
            return dataclasses.replace(base, pending=tuple(pending))
        decision = self._allowed(base, base.known, fresh)
        return dataclasses.replace(
            base, decision=_with_notes(decision, notes, time.monotonic() - started)
        )

    async def _assess(self, item: ScreenItem) -> MessageAssessment | None:
        if self.classifier is None or item.kind not in CLASSIFIED_KINDS:
            return None
        turn = item.as_turn()
        if len(item.text) <= INLINE_CLASSIFIER_CHARS:
            # n-grams only, a fraction of a millisecond: most short messages end here.
            quick = self.classifier.assess_message_without_encoder(turn)
            if quick is not None:
                return quick
        return await asyncio.to_thread(self.classifier.assess_message, turn)

    def _withholds(self, item: ScreenItem) -> bool:
        return self.options.indirect == "withhold" and item.kind in DATA_KINDS

    @property
    def _fast_tier(self) -> TierName:
        return "classifier" if self.classifier is not None else "rules"

    def _fast_allow(self, assessment: MessageAssessment | None) -> GuardDecision:
        if assessment is None:
            return GuardDecision(verdict="allow", tier="rules", reason="passed the rules tier")
        return GuardDecision(
            verdict="allow",
            tier="classifier",
            reason=f"classifier: no threat (score {assessment.score:.2f} < {self._decide_at:.2f})",
            difficulty=assessment.difficulty,
        )

    def _allowed(
        self, screening: Screening, verdicts: Verdicts, fresh: TierName | None
    ) -> GuardDecision:
        """The request's allow: difficulty and task type are its newest user turn's."""
        user = screening.user
        mine = next((v for item, v in verdicts if item is user), None)
        difficulty = mine.difficulty if mine else screening.pre_difficulty
        task_type = (mine.task_type if mine else "") or task_type_of(
            user.text if user else screening.turns[-1].content
        )
        if fresh is None and verdicts:  # every piece from the cache
            source = mine or verdicts[-1][1]
            tier: TierName = "cache"
            reason = f"cached {source.tier} verdict: {source.reason}"
        elif fresh is None:
            tier, reason = "rules", "nothing to screen"
        else:
            tier = fresh
            reason = (
                mine.reason
                if mine is not None and mine.tier == fresh
                else {
                    "judge": "judge: no threat in the new messages",
                    "classifier": "classifier: no threat in the new messages",
                }.get(fresh, "passed the rules tier")
            )
        return GuardDecision(
            verdict="allow",
            tier=tier,
            reason=reason,
            difficulty=difficulty,
            task_type=task_type,
            withheld=screening.withheld,
        )

    # --- the judge ------------------------------------------------------------------

    async def finish(self, screening: Screening) -> GuardDecision:
        """The final decision: the screening's, or the judge's under the policy."""
        if screening.decision is not None:
            return screening.decision
        try:
            judged = await self._judge_pending(screening)
        except (JudgeError, BackendError, TimeoutError) as exc:
            decision = self._judge_failed(exc, screening)
        else:
            decision = (self._judge_enforced if self.judge_decides else self._judge_advised)(
                screening, judged
            )
        return _with_notes(decision, screening.notes, time.monotonic() - screening.started)

    async def _judge_pending(self, screening: Screening) -> Verdicts:
        """Each pending piece, window by window; the newest user turn first. Stops at
        the first refusal that refuses the request (a withheld one does not)."""
        order = sorted(screening.pending, key=lambda item: item is not screening.user)
        judged: list[tuple[ScreenItem, GuardDecision]] = []
        for item in order:
            verdict = await self._judge_item(item, screening.context)
            judged.append((item, verdict))
            if verdict.refused and self.judge_decides and not self._withholds(item):
                break
        return tuple(judged)

    async def _judge_item(self, item: ScreenItem, context: str) -> GuardDecision:
        windows = windows_of(
            item.kind,
            item.text,
            item.message_index,
            size=self.options.window_chars,
            overlap=self.options.window_overlap_chars,
            context=context,
        )
        difficulty: DifficultyName | None = None
        task_type = ""
        for window in windows:
            async with asyncio.timeout(self.options.judge_timeout_s):
                output = await self.judge.judge(window)
            if output.verdict == "refuse":
                verdict = GuardDecision(
                    verdict="refuse",
                    tier="judge",
                    reason=output.reason or "judged a threat",
                    threats=tuple(dict.fromkeys(output.threats)),
                    window_index=window.window_index,
                )
                break
            if output.difficulty and (
                difficulty is None or _RANK[output.difficulty] > _RANK[difficulty]
            ):
                difficulty, task_type = output.difficulty, output.task_type
        else:
            verdict = GuardDecision(
                verdict="allow",
                tier="judge",
                reason=f"judge: allowed ({len(windows)} window{'s' if len(windows) > 1 else ''})",
                difficulty=difficulty,
                task_type=task_type,
            )
        if self.judge_decides:
            self.cache.put(message_key(item.kind, item.text, self.version), verdict)
        return verdict

    def _judge_enforced(self, screening: Screening, judged: Verdicts) -> GuardDecision:
        withheld = list(screening.withheld)
        for item, verdict in judged:
            if not verdict.refused:
                continue
            if not self._withholds(item):
                return _naming(item, verdict)
            assert item.message_index is not None
            withheld.append(item.message_index)
            log.warning("withheld the tool result in %s: %s", item.label, verdict.reason)
        allowed = self._allowed(screening, screening.known + judged, "judge")
        if len(withheld) == len(screening.withheld):
            return allowed
        return dataclasses.replace(
            allowed,
            withheld=tuple(withheld),
            reason=f"{allowed.reason}; withheld the tool result in message"
            f"{'s' if len(withheld) > 1 else ''} {', '.join(map(str, withheld))} "
            f"({_JUDGED_INJECTION})",
        )

    def _judge_advised(self, screening: Screening, judged: Verdicts) -> GuardDecision:
        base = self._allowed(screening, screening.known, self._fast_tier)
        flagged = [
            f"{item.label}: {', '.join(v.threats) or 'a threat'} ({v.reason})"
            for item, v in judged
            if v.refused
        ]
        if not flagged:
            return base
        return dataclasses.replace(
            base,
            reason=f"{base.reason}; judge flagged {'; '.join(flagged)}; advisory only, "
            "not enforced",
        )

    def _judge_failed(self, exc: BaseException, screening: Screening) -> GuardDecision:
        what = (
            f"timed out after {self.options.judge_timeout_s:.1f}s"
            if isinstance(exc, TimeoutError)
            else str(exc)
        )
        if not self.judge_decides:
            log.warning("advisory judge failed (%s); the earlier tiers passed the request", what)
            base = self._allowed(screening, screening.known, self._fast_tier)
            return dataclasses.replace(
                base, reason=f"{base.reason}; advisory judge unavailable ({what})"
            )
        if self.options.fail_open:
            flag = screening.flag
            if flag is not None and flag.score >= self._decide_at:
                log.error(
                    "GUARD FAIL-OPEN: judge failed (%s); the classifier flags the request: refused",
                    what,
                )
                decision = _classifier_refuses(flag, self._decide_at)
                return dataclasses.replace(
                    decision, reason=f"judge unavailable ({what}); {decision.reason}"
                )
            log.error("GUARD FAIL-OPEN: judge failed (%s); request ALLOWED without the judge", what)
            base = self._allowed(screening, screening.known, "policy")
            return dataclasses.replace(
                base,
                tier="policy",
                reason=f"judge unavailable ({what}); allowed by fail-open policy",
                difficulty=base.difficulty or "medium",
            )
        log.error("GUARD FAIL-CLOSED: judge failed (%s); request refused", what)
        return GuardDecision(
            verdict="refuse",
            tier="policy",
            reason=f"the screening model is unavailable ({what}); refused by fail-closed policy",
        )


def _classifier_refuses(assessment: MessageAssessment, threshold: float) -> GuardDecision:
    return GuardDecision(
        verdict="refuse",
        tier="classifier",
        reason=f"classifier: likely {assessment.category.replace('_', ' ')} "
        f"(score {assessment.score:.2f} >= {threshold:.2f})",
        threats=(assessment.category,),
        difficulty=assessment.difficulty,
    )


def _naming(item: ScreenItem, refusal: GuardDecision) -> GuardDecision:
    """An item's refusal as the request's: it names the message (and window) in the
    decision's fields; the reason names it too, except a judge's own words about a
    message (its index is in the fields), and a tool definition has no index."""
    own_words = refusal.tier == "judge" and item.message_index is not None
    return dataclasses.replace(
        refusal,
        reason=refusal.reason if own_words else f"{refusal.reason} in {item.label}",
        message_index=item.message_index,
    )


def _final(
    turns: tuple[ChatTurn, ...],
    started: float,
    notes: Sequence[str],
    decision: GuardDecision,
    redacted: bool = False,
) -> Screening:
    decision = _with_notes(decision, notes, time.monotonic() - started)
    return Screening(turns, redacted, started, decision, notes=tuple(notes))


def _with_notes(decision: GuardDecision, notes: Sequence[str], latency_s: float) -> GuardDecision:
    reason = decision.reason if not notes else f"{decision.reason} [{'; '.join(notes)}]"
    return dataclasses.replace(decision, reason=reason, latency_s=latency_s, notes=tuple(notes))


def build_guard(settings: GatewaySettings, judge: Judge | None) -> Guard:
    """The gateway's guard as its settings describe it; ``judge`` None: no judge is used
    (the server makes an ``LlmJudge`` over the judge backend only when one is)."""
    options = GuardOptions.from_settings(settings)
    classifier = GuardClassifier.load(settings.classifier_path) if settings.classifier else None
    return Guard(judge or NoJudge(), options, classifier=classifier)
