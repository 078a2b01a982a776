"""Task type without a model: keyword cues, first match wins.

The LLM judge names the task type when it runs (Ollama); on the embedded
backend the classifier decides and this heuristic names the type. The names
are the judge's (``judge_prompt.TASK_TYPES``).
"""

from __future__ import annotations

import re

_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        (
            "testing",
            (
                r"\b(?:unit[- ]?tests?|test cases?|pytest|jest|write tests?|test suite|"
                r"mock(?:ing)?)\b"
            ),
        ),
        (
            "debugging",
            (
                r"\b(?:bug|debug|traceback|stack ?trace|exception|error|crash(?:es|ing)?|"
                r"fix(?:es)?|fails?|failing|doesn'?t work|not working)\b"
            ),
        ),
        (
            "refactoring",
            (
                r"\b(?:refactor\w*|clean ?up|simplify|rewrite|make (?:it|"
                r"this) (?:more )?(?:readable|idiomatic|faster))\b"
            ),
        ),
        (
            "devops",
            (
                r"\b(?:docker\w*|kubernetes|k8s|helm|terraform|ansible|ci/cd|github actions|"
                r"pipeline|deploy\w*|nginx|systemd|bash script|shell script)\b"
            ),
        ),
        (
            "data_analysis",
            (
                r"\b(?:pandas|dataframe|sql|query|dataset|csv|statistic\w*|plot|chart|"
                r"regression)\b"
            ),
        ),
        (
            "explanation",
            (r"^\s*(?:what|why|how|explain|describe|when|which)\b|\bexplain\b|\bwhat does\b"),
        ),
        (
            "code_generation",
            (
                r"\b(?:write|implement|create|build|generate|complete|code|function|class|"
                r"script|program|algorithm|return)\b"
            ),
        ),
        ("writing", r"\b(?:essay|email|letter|poem|story|summar\w+|translate|blog|article)\b"),
    )
)


def task_type_of(text: str) -> str:
    head = text[:2000]
    for name, pattern in _CUES:
        if pattern.search(head):
            return name
    return "general"
