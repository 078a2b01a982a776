"""What the guard decided, as plain data, and its wire form.

The guard's vocabulary (verdict, tier, difficulty and threat names) is derived
once, here, from the proto enums of ``tandem.v1`` (``VERDICT_ALLOW`` is
``"allow"``, ``THREAT_CATEGORY_PROMPT_INJECTION`` is ``"prompt_injection"``).
The ``Literal`` aliases are for the type checker; an import-time check keeps
them equal to the enums, so adding an enum value without naming it here fails
at once instead of on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast, get_args

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from tandem.protoutil import seconds_to_duration
from tandem.v1 import gateway_pb2

VerdictName = Literal["allow", "refuse"]
TierName = Literal["rules", "judge", "cache", "policy", "classifier"]
DifficultyName = Literal["low", "medium", "high"]
ThreatName = Literal["prompt_injection", "jailbreak", "harmful", "malicious_code", "exfiltration"]


def _names(enum: EnumTypeWrapper, prefix: str, alias: object) -> dict[str, int]:
    """``{"allow": VERDICT_ALLOW, ...}`` from the enum, checked against the Literal alias."""
    names = {
        name.removeprefix(prefix).lower(): value
        for name, value in enum.items()
        if value != 0  # *_UNSPECIFIED
    }
    if set(names) != set(get_args(alias)):
        raise RuntimeError(
            f"guard vocabulary out of date with {enum.DESCRIPTOR.full_name}: "
            f"{sorted(names)} != {sorted(get_args(alias))}"
        )
    return names


VERDICTS = _names(gateway_pb2.Verdict, "VERDICT_", VerdictName)
TIERS = _names(gateway_pb2.DecisionTier, "DECISION_TIER_", TierName)
DIFFICULTIES_BY_NAME = _names(gateway_pb2.Difficulty, "DIFFICULTY_", DifficultyName)
THREATS = _names(gateway_pb2.ThreatCategory, "THREAT_CATEGORY_", ThreatName)

# In enum order (the order the classifier's classes and the judge's schema use).
THREAT_NAMES = cast(tuple[ThreatName, ...], tuple(THREATS))
DIFFICULTY_NAMES = cast(tuple[DifficultyName, ...], tuple(DIFFICULTIES_BY_NAME))
VERDICT_NAMES = cast(tuple[VerdictName, ...], tuple(VERDICTS))


@dataclass(frozen=True, slots=True)
class GuardDecision:
    verdict: VerdictName
    tier: TierName
    reason: str
    threats: tuple[ThreatName, ...] = ()
    difficulty: DifficultyName | None = None
    task_type: str = ""
    latency_s: float = 0.0
    notes: tuple[str, ...] = field(default=())
    # The message (index in the request's messages) and the judge window in it that
    # decided a refusal; None when no single message decided.
    message_index: int | None = None
    window_index: int | None = None
    # Tool results replaced by a note under the 'withhold' indirect-injection policy.
    withheld: tuple[int, ...] = ()

    @property
    def refused(self) -> bool:
        return self.verdict == "refuse"

    def refusal_message(self) -> str:
        return f"Request refused by the Tandem gateway: {self.reason}"

    def to_proto(self) -> gateway_pb2.Decision:
        decision = gateway_pb2.Decision(
            task_type=self.task_type,
            reason=self.reason,
            latency=seconds_to_duration(self.latency_s),
        )
        # Enum fields set by number (the generated stubs type them as their enum classes).
        decision.verdict = VERDICTS[self.verdict]  # type: ignore[assignment]
        decision.tier = TIERS[self.tier]  # type: ignore[assignment]
        if self.difficulty:
            decision.difficulty = DIFFICULTIES_BY_NAME[self.difficulty]  # type: ignore[assignment]
        decision.threats.extend(THREATS[t] for t in self.threats)
        if self.message_index is not None:
            decision.message_index = self.message_index
        if self.window_index is not None:
            decision.window_index = self.window_index
        return decision
