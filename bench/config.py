"""How much to measure: the full benchmark, or the quick smoke run ``make test`` does."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    quick: bool
    reps: int
    # 1. added latency: streams paced like a fast local model (50 tokens/s each), so the
    #    relay is not saturated and what is left is each hop's own cost
    latency_concurrency: tuple[int, ...]
    latency_rate: float
    latency_tokens: int
    latency_warmup_s: float
    latency_window_s: float
    # 2. throughput: the stand-in as fast as it can go, plus a probe stream
    throughput_concurrency: tuple[int, ...]
    throughput_tokens: int
    probe_tokens: int
    throughput_warmup_s: float
    throughput_window_s: float
    # 2b. paced load (issue 18): many streams each paced like a fast model, long answers
    paced_concurrency: tuple[int, ...]
    paced_rate: float
    paced_tokens: int
    paced_warmup_s: float
    paced_window_s: float
    # 4. cancellation and failure timing
    cancel_concurrency: tuple[int, ...]
    cancel_rate: float
    kill_reps: int
    kill_concurrency: int
    # 6. the real model
    real_model_requests: int
    real_model_tokens: int
    profile_s: float
    with_litellm: bool
    with_real_model: bool
    real_model_with_judge: bool  # also a gateway with --use-judge (the 135M judge: slow)
    with_profile: bool


FULL = BenchConfig(
    quick=False,
    reps=3,
    latency_concurrency=(1, 32),
    latency_rate=50.0,
    latency_tokens=16,
    latency_warmup_s=1.0,
    latency_window_s=2.5,
    throughput_concurrency=(1, 8, 32, 128, 256),
    throughput_tokens=128,
    probe_tokens=8,
    throughput_warmup_s=1.0,
    throughput_window_s=2.0,
    paced_concurrency=(32, 64, 128),
    paced_rate=100.0,
    paced_tokens=200,
    paced_warmup_s=2.0,
    paced_window_s=6.0,
    cancel_concurrency=(1, 8, 32, 128, 256),
    cancel_rate=20.0,
    kill_reps=3,
    kill_concurrency=8,
    real_model_requests=3,
    real_model_tokens=64,
    profile_s=4.0,
    with_litellm=True,
    with_real_model=True,
    real_model_with_judge=True,
    with_profile=True,
)

QUICK = BenchConfig(
    quick=True,
    reps=1,
    latency_concurrency=(1,),
    latency_rate=100.0,
    latency_tokens=8,
    latency_warmup_s=0.2,
    latency_window_s=0.4,
    throughput_concurrency=(1, 8),
    throughput_tokens=32,
    probe_tokens=4,
    throughput_warmup_s=0.2,
    throughput_window_s=0.4,
    paced_concurrency=(4,),
    paced_rate=100.0,
    paced_tokens=20,
    paced_warmup_s=0.2,
    paced_window_s=0.6,
    cancel_concurrency=(1, 4),
    cancel_rate=20.0,
    kill_reps=1,
    kill_concurrency=2,
    real_model_requests=1,
    real_model_tokens=8,
    profile_s=1.0,
    with_litellm=False,
    with_real_model=True,  # two requests of 8 tokens: what the real-model row is made of
    real_model_with_judge=False,
    with_profile=False,
)
