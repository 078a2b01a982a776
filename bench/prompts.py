"""The benchmark's prompts, with the stand-in directives they carry."""

from __future__ import annotations

BASE_PROMPT = "Write a Python function that reverses a string."
# About 8 KB of ordinary coding context, for the guard's long-prompt cost.
_CONTEXT_LINE = (
    "    total = sum(item.price * item.quantity for item in order.items if item.active)\n"
)


def bench_prompt(
    *,
    rate: float | None = None,
    tokens: int | None = None,
    bench_id: str | None = None,
    unique: str | None = None,
    base: str = BASE_PROMPT,
) -> str:
    """``base`` plus directives; ``unique`` makes it differ from every other."""
    parts = [base]
    if unique is not None:
        parts.append(f"(request {unique})")
    if rate is not None:
        parts.append(f"bench-rate={rate:g}")
    if tokens is not None:
        parts.append(f"bench-tokens={tokens}")
    if bench_id is not None:
        parts.append(f"bench-id={bench_id}")
    return " ".join(parts)


def long_prompt(size: int = 8 * 1024) -> str:
    """A benign prompt of ``size`` characters: a request and pasted code."""
    head = "Refactor this function so it is easier to test, and explain the change:\n```python\n"
    tail = "```\n"
    body_size = max(0, size - len(head) - len(tail))
    body = (_CONTEXT_LINE * (body_size // len(_CONTEXT_LINE) + 1))[:body_size]
    return head + body + tail
