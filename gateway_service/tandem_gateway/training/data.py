"""The labelled dev sets in ``<repo>/../shared/evals/``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
EVALS_ENV = "TANDEM_EVALS_DIR"


def default_evals_dir() -> Path:
    """``$TANDEM_EVALS_DIR``, else ``../shared/evals`` beside the repository."""
    override = os.environ.get(EVALS_ENV)
    return Path(override) if override else REPO_ROOT.parent / "shared" / "evals"


def read_jsonl(path: Path) -> list[dict[str, object]]:
    # Split on "\n" only: texts may hold U+2028, which splitlines() would cut.
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


@dataclass(frozen=True, slots=True)
class GuardRow:
    id: str
    text: str
    label: str  # "threat" | "benign"
    category: str
    source: str

    @property
    def is_threat(self) -> bool:
        return self.label == "threat"


@dataclass(frozen=True, slots=True)
class DifficultyRow:
    id: str
    text: str
    difficulty: str  # "low" | "medium" | "high"
    source: str


def load_guard_rows(path: Path) -> list[GuardRow]:
    return [
        GuardRow(
            str(r["id"]), str(r["text"]), str(r["label"]), str(r["category"]), str(r["source"])
        )
        for r in read_jsonl(path)
    ]


def load_difficulty_rows(path: Path) -> list[DifficultyRow]:
    return [
        DifficultyRow(str(r["id"]), str(r["text"]), str(r["difficulty"]), str(r.get("source", "")))
        for r in read_jsonl(path)
    ]
