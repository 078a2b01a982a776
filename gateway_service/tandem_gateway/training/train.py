"""``make train-guard``: train the classifier tier on ../shared/evals and ship its weights.

    python -m tandem_gateway.training.train [--evals-dir DIR] [--out PATH] [--report PATH]

1. Near-duplicate families (``groups``) become cross-validation groups, so a
   family is never on both sides of a fold (the audit set is split the same way).
2. The regularisation strength is chosen by grouped 5-fold CV (3 shuffles).
3. The refusal threshold is chosen inside each training part (nested CV) for at
   most ``--target-fpr`` of benign prompts, and measured on the held-out fold:
   the per-category numbers printed are estimates for unseen families.
4. The final models are fitted on every row; thresholds come from the
   out-of-fold scores. The artifact holds hashed-bucket weights only, never text.

Deterministic: same data, same seed, same artifact.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tandem.backends.base import ChatTurn
from tandem_gateway.evals.metrics import Rate, confusion, format_confusion, format_rates, rates_by
from tandem_gateway.guard.classifier import ARTIFACT_PATH, DIFFICULTIES, LinearModel, save_artifact
from tandem_gateway.guard.decision import THREAT_NAMES
from tandem_gateway.guard.features import RawFeatures, raw_features
from tandem_gateway.guard.rules import RulesTier
from tandem_gateway.training.crossval import (
    FitConfig,
    binary_scores,
    class_scores,
    fit_linear,
    folds,
    threshold_for_rate,
)
from tandem_gateway.training.data import (
    REPO_ROOT,
    default_evals_dir,
    load_difficulty_rows,
    load_guard_rows,
)
from tandem_gateway.training.groups import near_duplicate_groups

THREAT_C_GRID = (1.0, 4.0, 16.0)
DIFFICULTY_C_GRID = (1.0, 4.0, 16.0)
N_SPLITS = 5
SEEDS = (0, 1, 2)
DEFAULT_REPORT = REPO_ROOT / "evals" / "results" / "training.json"


@dataclass(frozen=True, slots=True)
class Dataset:
    docs: list[RawFeatures]
    strata: npt.NDArray[np.str_]
    groups: list[int]


def _oof_binary(data: Dataset, y: npt.NDArray[np.int64], config: FitConfig, seed: int,
                subset: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.float64]:
    index = np.arange(len(data.docs)) if subset is None else subset
    scores = np.zeros(len(index))
    strata = data.strata[index]
    groups = [data.groups[i] for i in index]
    for train, test in folds(strata, groups, n_splits=N_SPLITS if subset is None else N_SPLITS - 1, seed=seed):
        model = fit_linear([data.docs[index[i]] for i in train], y[index[train]], config)
        scores[test] = binary_scores(model, [data.docs[index[i]] for i in test])
    return scores


def _recall_at(scores: npt.NDArray[np.float64], y: npt.NDArray[np.int64], rate: float) -> float:
    threshold = threshold_for_rate(scores[y == 0], rate)
    return float(np.mean(scores[y == 1] >= threshold))


def train_threat(rows_path: Path, target_fpr: float, log: Any) -> tuple[dict[str, Any], LinearModel, LinearModel, dict[str, float]]:
    rows = load_guard_rows(rows_path)
    y = np.array([int(r.is_threat) for r in rows], dtype=np.int64)
    data = Dataset(
        docs=[raw_features(r.text) for r in rows],
        strata=np.array([r.category for r in rows]),
        groups=near_duplicate_groups([r.text for r in rows], [r.source for r in rows]),
    )
    log(f"guardrail: {len(rows)} rows, {len(set(data.groups))} near-duplicate groups")

    selection: dict[str, float] = {}
    oof_by_c: dict[float, list[npt.NDArray[np.float64]]] = {}
    for c in THREAT_C_GRID:
        oofs = [_oof_binary(data, y, FitConfig(c), seed) for seed in SEEDS]
        oof_by_c[c] = oofs
        selection[str(c)] = float(np.mean([_recall_at(s, y, target_fpr) for s in oofs]))
        log(f"  C={c:g}: mean out-of-fold recall at {100 * target_fpr:.1f}% benign = {selection[str(c)]:.3f}")
    best_c = max(THREAT_C_GRID, key=lambda c: selection[str(c)])
    config = FitConfig(best_c)

    # Honest estimate: thresholds chosen inside each training part (nested), per seed.
    flagged = np.zeros((len(SEEDS), len(rows)), dtype=bool)
    for s_index, seed in enumerate(SEEDS):
        for train, test in folds(data.strata, data.groups, n_splits=N_SPLITS, seed=seed):
            inner = _oof_binary(data, y, config, seed, subset=train)
            threshold = threshold_for_rate(inner[y[train] == 0], target_fpr)
            model = fit_linear([data.docs[i] for i in train], y[train], config)
            flagged[s_index, test] = binary_scores(model, [data.docs[i] for i in test]) >= threshold
    rules = RulesTier()
    rule_hits = np.array([rules.check([ChatTurn("user", r.text)]) is not None for r in rows])
    categories = [r.category for r in rows]
    sources = [r.source for r in rows]

    def table(flags: npt.NDArray[np.bool_]) -> dict[str, Rate]:
        return rates_by(categories, [bool(f) for f in flags])

    per_seed = [table(flagged[k] | rule_hits) for k in range(len(SEEDS))]
    combined = _pool(per_seed)
    classifier_only = _pool([table(flagged[k]) for k in range(len(SEEDS))])
    by_source = _pool([rates_by(sources, [bool(f) for f in flagged[k] | rule_hits]) for k in range(len(SEEDS))])
    benign = [c for c in combined if c.startswith("benign")]
    benign_rate = Rate(sum(combined[c].hits for c in benign), sum(combined[c].total for c in benign))
    threat_rate = Rate(sum(combined[c].hits for c in combined if c not in benign),
                       sum(combined[c].total for c in combined if c not in benign))
    log(format_rates(f"rules + classifier (grouped {N_SPLITS}-fold CV x{len(SEEDS)}, nested threshold)", combined))
    log(f"threats caught {threat_rate}; benign refused {benign_rate}")

    # Leave-one-source-out: the harshest test (a whole dataset never seen).
    loso: dict[str, Rate] = {}
    for source in sorted(set(sources)):
        test = np.array([i for i, s in enumerate(sources) if s == source])
        train = np.array([i for i, s in enumerate(sources) if s != source])
        if len(set(y[train])) < 2:
            continue
        inner = _oof_binary(data, y, config, 0, subset=train)
        threshold = threshold_for_rate(inner[y[train] == 0], target_fpr)
        model = fit_linear([data.docs[i] for i in train], y[train], config)
        hits = (binary_scores(model, [data.docs[i] for i in test]) >= threshold) | rule_hits[test]
        loso[source] = Rate(int(hits.sum()), len(test))
    log(format_rates("leave-one-source-out (rules + classifier; benign sources: refusals)", loso))

    # Final thresholds from the out-of-fold scores of the chosen C (all seeds pooled).
    pooled = np.concatenate(oof_by_c[best_c])
    pooled_y = np.concatenate([y] * len(SEEDS))
    thresholds = {
        "decide": threshold_for_rate(pooled[pooled_y == 0], target_fpr),
        "prescreen": float(np.nextafter(pooled[pooled_y == 0].max(), np.inf)) + 0.25,
    }
    prescreen_recall = float(np.mean(pooled[pooled_y == 1] >= thresholds["prescreen"]))
    log(f"thresholds: decide {thresholds['decide']:.3f}, prescreen {thresholds['prescreen']:.3f} "
        f"(out-of-fold recall {prescreen_recall:.3f} at no benign refused)")

    threat_model = fit_linear(data.docs, y, config)
    threat_rows = np.flatnonzero(y == 1)
    category_y = np.array([THREAT_NAMES.index(rows[i].category) for i in threat_rows], dtype=np.int64)  # type: ignore[arg-type]
    category_config = FitConfig(best_c, multiclass=True)
    category_acc = _category_accuracy(data, threat_rows, category_y, category_config)
    log(f"threat category accuracy (grouped CV, threats only): {category_acc:.3f}")
    category_model = _fit_on_vocabulary(threat_model, [data.docs[i] for i in threat_rows], category_y, category_config)

    report = {
        "rows": len(rows),
        "groups": len(set(data.groups)),
        "target_benign_refusal": target_fpr,
        "selection_recall_by_c": selection,
        "chosen_c": best_c,
        "cv": {
            "rules_plus_classifier": {k: v.as_dict() for k, v in combined.items()},
            "classifier_only": {k: v.as_dict() for k, v in classifier_only.items()},
            "by_source": {k: v.as_dict() for k, v in by_source.items()},
            "threats_caught": threat_rate.as_dict(),
            "benign_refused": benign_rate.as_dict(),
        },
        "leave_one_source_out": {k: v.as_dict() for k, v in loso.items()},
        "thresholds": thresholds,
        "prescreen_out_of_fold_recall": prescreen_recall,
        "category_accuracy": category_acc,
    }
    return report, threat_model, category_model, thresholds


def _pool(tables: Sequence[dict[str, Rate]]) -> dict[str, Rate]:
    """Sum counts over CV repetitions (each repetition sees every row once)."""
    keys = sorted({k for t in tables for k in t})
    return {k: Rate(sum(t[k].hits for t in tables), sum(t[k].total for t in tables)) for k in keys}


def _fit_on_vocabulary(base: LinearModel, docs: Sequence[RawFeatures], y: npt.NDArray[np.int64],
                       config: FitConfig) -> LinearModel:
    """A model over ``base``'s vocabulary (so both share one artifact vocabulary)."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    from tandem_gateway.training.crossval import design_matrix  # noqa: PLC0415

    x = design_matrix(base.vocabulary, docs)
    model = LogisticRegression(C=config.c, max_iter=5000).fit(x, y)
    return LinearModel(base.vocabulary, np.asarray(model.coef_, np.float32), np.asarray(model.intercept_, np.float32))


def _category_accuracy(data: Dataset, rows: npt.NDArray[np.int64], y: npt.NDArray[np.int64],
                       config: FitConfig) -> float:
    correct = 0
    groups = [data.groups[i] for i in rows]
    for train, test in folds(data.strata[rows], groups, n_splits=N_SPLITS, seed=0):
        model = fit_linear([data.docs[rows[i]] for i in train], y[train], config)
        predicted = class_scores(model, [data.docs[rows[i]] for i in test]).argmax(axis=1)
        correct += int(np.sum(predicted == y[test]))
    return correct / len(rows)


def train_difficulty(rows_path: Path, log: Any) -> tuple[dict[str, Any], LinearModel]:
    rows = load_difficulty_rows(rows_path)
    y = np.array([DIFFICULTIES.index(r.difficulty) for r in rows], dtype=np.int64)  # type: ignore[arg-type]
    docs = [raw_features(r.text) for r in rows]
    groups = near_duplicate_groups([r.text for r in rows], [r.source for r in rows])
    strata = np.array([r.difficulty for r in rows])
    results: dict[str, dict[str, Any]] = {}
    for c in DIFFICULTY_C_GRID:
        config = FitConfig(c, multiclass=True)
        predicted = np.zeros((len(SEEDS), len(rows)), dtype=np.int64)
        for k, seed in enumerate(SEEDS):
            for train, test in folds(strata, groups, n_splits=N_SPLITS, seed=seed):
                model = fit_linear([docs[i] for i in train], y[train], config)
                predicted[k, test] = class_scores(model, [docs[i] for i in test]).argmax(axis=1)
        exact = float(np.mean(predicted == y))
        within_one = float(np.mean(np.abs(predicted - y) <= 1))
        actual = [DIFFICULTIES[v] for v in np.tile(y, len(SEEDS))]
        guessed = [DIFFICULTIES[v] for v in predicted.ravel()]
        results[str(c)] = {"exact": exact, "within_one": within_one,
                           "confusion": confusion(actual, guessed, DIFFICULTIES)}
        log(f"  difficulty C={c:g}: exact {exact:.3f}, within one {within_one:.3f}")
    best = max(DIFFICULTY_C_GRID, key=lambda c: results[str(c)]["exact"])
    log(format_confusion(DIFFICULTIES, results[str(best)]["confusion"]))
    model = fit_linear(docs, y, FitConfig(best, multiclass=True))
    report = {"rows": len(rows), "groups": len(set(groups)), "chosen_c": best, "cv_by_c": results,
              "cv": results[str(best)]}
    return report, model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train-guard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--evals-dir", type=Path, default=None, help="default: ../shared/evals beside the repo")
    parser.add_argument("--out", type=Path, default=ARTIFACT_PATH)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--target-fpr", type=float, default=0.015,
                        help="share of benign prompts the classifier may refuse (CV), below the 2%% budget")
    args = parser.parse_args(argv)
    evals = args.evals_dir or default_evals_dir()
    started = time.monotonic()

    def log(text: str) -> None:
        print(text, flush=True)

    guard_report, threat, category, thresholds = train_threat(evals / "guardrail-dev.jsonl", args.target_fpr, log)
    difficulty_report, difficulty = train_difficulty(evals / "difficulty-dev.jsonl", log)
    meta = {
        "version": f"tfidf-lr-{time.strftime('%Y%m%d')}",
        "thresholds": thresholds,
        "threat_categories": list(THREAT_NAMES),
        "difficulties": list(DIFFICULTIES),
        "trained_on": ["guardrail-dev.jsonl", "difficulty-dev.jsonl"],
    }
    save_artifact(args.out, threat=threat, category=category, difficulty=difficulty, meta=meta)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps({"meta": meta, "guardrail": guard_report, "difficulty": difficulty_report},
                                      indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB) and {args.report} "
        f"in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
