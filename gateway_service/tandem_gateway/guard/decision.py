"""What the guard decided, as plain data, and its wire form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tandem.protoutil import seconds_to_duration
from tandem.v1 import gateway_pb2

VerdictName = Literal["allow", "refuse"]
TierName = Literal["rules", "classifier", "judge", "cache", "policy"]
DifficultyName = Literal["low", "medium", "high"]
ThreatName = Literal["prompt_injection", "jailbreak", "harmful", "malicious_code", "exfiltration"]

THREAT_NAMES: tuple[ThreatName, ...] = (
    "prompt_injection",
    "jailbreak",
    "harmful",
    "malicious_code",
    "exfiltration",
)
_VERDICTS = {"allow": gateway_pb2.VERDICT_ALLOW, "refuse": gateway_pb2.VERDICT_REFUSE}
_TIERS = {
    "rules": gateway_pb2.DECISION_TIER_RULES,
    "judge": gateway_pb2.DECISION_TIER_JUDGE,
    "cache": gateway_pb2.DECISION_TIER_CACHE,
    "policy": gateway_pb2.DECISION_TIER_POLICY,
    "classifier": gateway_pb2.DECISION_TIER_CLASSIFIER,
}
_DIFFICULTIES = {
    "low": gateway_pb2.DIFFICULTY_LOW,
    "medium": gateway_pb2.DIFFICULTY_MEDIUM,
    "high": gateway_pb2.DIFFICULTY_HIGH,
}
_THREATS = {
    "prompt_injection": gateway_pb2.THREAT_CATEGORY_PROMPT_INJECTION,
    "jailbreak": gateway_pb2.THREAT_CATEGORY_JAILBREAK,
    "harmful": gateway_pb2.THREAT_CATEGORY_HARMFUL,
    "malicious_code": gateway_pb2.THREAT_CATEGORY_MALICIOUS_CODE,
    "exfiltration": gateway_pb2.THREAT_CATEGORY_EXFILTRATION,
}


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

    @property
    def refused(self) -> bool:
        return self.verdict == "refuse"

    def refusal_message(self) -> str:
        return f"Request refused by the Tandem gateway: {self.reason}"

    def to_proto(self) -> gateway_pb2.Decision:
        return gateway_pb2.Decision(
            verdict=_VERDICTS[self.verdict],
            difficulty=_DIFFICULTIES[self.difficulty] if self.difficulty else 0,
            task_type=self.task_type,
            threats=[_THREATS[t] for t in self.threats],
            reason=self.reason,
            tier=_TIERS[self.tier],
            latency=seconds_to_duration(self.latency_s),
        )
