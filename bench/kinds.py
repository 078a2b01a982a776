"""The kinds of target the load generator can drive (no gRPC import here: the
orchestrator, which forks every process, never loads gRPC itself)."""

from __future__ import annotations

from typing import Literal

TargetKind = Literal["direct", "worker", "gateway", "litellm"]
TARGET_KINDS: tuple[TargetKind, ...] = ("direct", "worker", "gateway", "litellm")
