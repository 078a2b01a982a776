"""Run labelled prompts through a real gateway's ``Classify`` RPC.

The gateway is started in-process on a free loopback port with the chosen
backend (rules only, the embedded default, or Ollama), exactly as ``tandem
gateway`` would run it, and every row goes through a real gRPC channel.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from tandem.settings import GatewaySettings
from tandem.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tandem_gateway.server import running_gateway

# Classify never needs a worker; this address only satisfies the settings.
_NO_WORKER = "127.0.0.1:9"
TIERS = {v: k.removeprefix("DECISION_TIER_").lower() for k, v in gateway_pb2.DecisionTier.items()}
DIFFICULTIES = {v: k.removeprefix("DIFFICULTY_").lower() for k, v in gateway_pb2.Difficulty.items()}
THREATS = {
    v: k.removeprefix("THREAT_CATEGORY_").lower() for k, v in gateway_pb2.ThreatCategory.items()
}


@dataclass(frozen=True, slots=True)
class BackendChoice:
    """Which gateway to measure."""

    rules_only: bool = False
    ollama_url: str | None = None
    model: str | None = None
    classifier: bool = True
    use_judge: bool | None = None
    judge_timeout_s: float = 120.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        if self.rules_only:
            return "rules-only"
        base = f"ollama-{self.model or 'llama3.1:8b'}" if self.ollama_url else "embedded"
        if not self.classifier:
            base += "-no-classifier"
        if self.use_judge is not None:
            base += "-judge" if self.use_judge else "-no-judge"
        if "judge_verdicts" in self.extra:
            base += f"-{self.extra['judge_verdicts']}"
        return base.replace(":", "_").replace("/", "_")

    def settings(self) -> GatewaySettings:
        values: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "workers": [_NO_WORKER],
            "ollama_url": self.ollama_url,
            "model": self.model,
            "classifier": self.classifier and not self.rules_only,
            "use_judge": False if self.rules_only else self.use_judge,
            "judge_timeout_s": self.judge_timeout_s,
            "verdict_cache_size": 0,  # every row is measured, none answered from memory
            "metrics_listen": None,
            "requests_per_second": 0,
            "max_streams_per_client": 0,
            **self.extra,
        }
        known = GatewaySettings.model_fields
        return GatewaySettings(_env_file=None, **{k: v for k, v in values.items() if k in known})  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row's decision, as the client received it."""

    verdict: str
    tier: str
    difficulty: str
    threats: tuple[str, ...]
    reason: str
    latency_s: float  # the gateway's own decision latency
    wall_s: float  # the whole RPC, as the client saw it


@contextlib.asynccontextmanager
async def classifier_channel(
    choice: BackendChoice,
) -> AsyncIterator[gateway_pb2_grpc.GatewayServiceStub]:
    async with running_gateway(choice.settings()) as gateway:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            yield gateway_pb2_grpc.GatewayServiceStub(channel)


async def classify_all(
    stub: gateway_pb2_grpc.GatewayServiceStub,
    texts: Sequence[str],
    *,
    timeout_s: float = 300.0,
    progress: Any = None,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for index, text in enumerate(texts):
        message = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=text)
        started = time.perf_counter()
        response = await stub.Classify(
            gateway_pb2.ClassifyRequest(messages=[message]), timeout=timeout_s
        )
        wall = time.perf_counter() - started
        d = response.decision
        outcomes.append(
            Outcome(
                verdict="refuse" if d.verdict == gateway_pb2.VERDICT_REFUSE else "allow",
                tier=TIERS.get(d.tier, "unspecified"),
                difficulty=DIFFICULTIES.get(d.difficulty, "unspecified"),
                threats=tuple(THREATS.get(t, "unspecified") for t in d.threats),
                reason=d.reason,
                latency_s=d.latency.ToNanoseconds() / 1e9,
                wall_s=wall,
            )
        )
        if progress is not None and (index + 1) % 100 == 0:
            progress(f"  {index + 1}/{len(texts)} classified")
    return outcomes


def stratified_sample(keys: Sequence[str], limit: int | None, seed: int) -> list[int]:
    """Row indices: all, or about ``limit`` drawn evenly from every key (category)."""
    if limit is None or limit >= len(keys):
        return list(range(len(keys)))
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    rng = random.Random(seed)
    per_key = max(1, limit // len(groups))
    chosen: list[int] = []
    for key in sorted(groups):
        members = groups[key]
        chosen.extend(rng.sample(members, min(per_key, len(members))))
    return sorted(chosen)
