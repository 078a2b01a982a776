"""The paths a request can take, in the issue's letters, and who is on each path."""

from __future__ import annotations

from dataclasses import dataclass

from bench.kinds import TargetKind

DIRECT = "a_direct"
WORKER = "b_worker"
GATEWAY_CACHED = "c_gateway_cached"
GATEWAY_JUDGE = "d_gateway_judge"
LITELLM = "litellm"
ORDER = (DIRECT, WORKER, GATEWAY_CACHED, GATEWAY_JUDGE, LITELLM)
SHORT = {
    DIRECT: "(a) direct",
    WORKER: "(b) worker",
    GATEWAY_CACHED: "(c) gw repeated",
    GATEWAY_JUDGE: "(d) gw judge",
    LITELLM: "LiteLLM",
}


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    kind: TargetKind
    address: str
    unique_prompts: bool
    processes: tuple[str, ...]  # what relays its tokens (for CPU and memory per token)


def build_scenarios(standin: str, worker: str, gateway: str, litellm: str | None) -> list[Scenario]:
    scenarios = [
        Scenario(DIRECT, "(a) stand-in over HTTP", "direct", standin, False, ()),
        Scenario(WORKER, "(b) worker", "worker", worker, False, ("worker",)),
        # The same prompt every time: a verdict cache, where the gateway has one, answers it.
        Scenario(
            GATEWAY_CACHED,
            "(c) gateway+worker, repeated prompt",
            "gateway",
            gateway,
            False,
            ("gateway", "worker"),
        ),
        # A new prompt every time: the judge is always called on the stand-in.
        Scenario(
            GATEWAY_JUDGE,
            "(d) gateway+worker, judge called",
            "gateway",
            gateway,
            True,
            ("gateway", "worker"),
        ),
    ]
    if litellm is not None:
        scenarios.append(
            Scenario(LITELLM, "LiteLLM proxy", "litellm", litellm, False, ("litellm",))
        )
    return scenarios
