"""``python -m tandem_gateway.evals guardrail|difficulty [options]``.

Examples::

    python -m tandem_gateway.evals guardrail     # embedded default (the classifier decides)
    python -m tandem_gateway.evals guardrail --rules-only
    python -m tandem_gateway.evals guardrail --ollama-url http://localhost:11434 --model llama3.1:8b
    python -m tandem_gateway.evals difficulty --limit 60

Each run prints the tables and writes a JSON report to evals/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tandem_gateway.evals.difficulty import difficulty_report
from tandem_gateway.evals.guardrail import guardrail_report
from tandem_gateway.evals.latency import classifier_latency, render_latency
from tandem_gateway.evals.runner import (
    BackendChoice,
    classifier_channel,
    classify_all,
    stratified_sample,
)
from tandem_gateway.guard.classifier import GuardClassifier
from tandem_gateway.training.data import (
    REPO_ROOT,
    default_evals_dir,
    load_difficulty_rows,
    load_guard_rows,
)

RESULTS_DIR = REPO_ROOT / "evals" / "results"
TRAINING_REPORT = RESULTS_DIR / "training.json"
TRAINED_ON_DEV = (
    "WARNING (in-sample): the shipped classifier was trained on these dev rows, so the tables "
    "above "
    "are a fit, not a generalisation estimate. The estimate is the grouped cross-validation below, "
    "from evals/results/training.json (written by `make train-guard`)."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tandem_gateway.evals", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("task", choices=["guardrail", "difficulty"])
    parser.add_argument(
        "--input",
        type=Path,
        default=None,
        help="JSONL file (default: ../shared/evals/<task>-dev.jsonl)",
    )
    parser.add_argument(
        "--rules-only", action="store_true", help="only the rules tier (no classifier, no judge)"
    )
    parser.add_argument(
        "--ollama-url", default=None, help="judge on this Ollama (e.g. http://localhost:11434)"
    )
    parser.add_argument("--model", default=None, help="judge model on Ollama (default llama3.1:8b)")
    parser.add_argument("--no-classifier", action="store_true", help="turn the classifier tier off")
    parser.add_argument(
        "--use-judge",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force the LLM judge on/off (default: on with Ollama, off embedded)",
    )
    parser.add_argument(
        "--judge-verdicts",
        choices=["enforce", "advisory"],
        default=None,
        help="enforce or only report the judge's refusals (default: enforce on Ollama)",
    )
    parser.add_argument("--judge-timeout-s", type=float, default=120.0)
    parser.add_argument(
        "--limit", type=int, default=None, help="a stratified sample of about N rows"
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed for --limit")
    parser.add_argument(
        "--report", type=Path, default=None, help="JSON report path (default: evals/results/)"
    )
    return parser


async def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    choice = BackendChoice(
        rules_only=args.rules_only,
        ollama_url=args.ollama_url,
        model=args.model,
        classifier=not args.no_classifier,
        use_judge=args.use_judge,
        judge_timeout_s=args.judge_timeout_s,
        extra={"judge_verdicts": args.judge_verdicts} if args.judge_verdicts else {},
    )
    path = args.input or default_evals_dir() / f"{args.task}-dev.jsonl"
    started = time.monotonic()
    async with classifier_channel(choice) as stub:
        if args.task == "guardrail":
            all_rows = load_guard_rows(path)
            rows = [
                all_rows[i]
                for i in stratified_sample([r.category for r in all_rows], args.limit, args.seed)
            ]
            outcomes = await classify_all(stub, [r.text for r in rows], progress=_say)
            guard = guardrail_report(choice.name, rows, outcomes)
            text, report = guard.render(), guard.as_dict()
        else:
            all_diff = load_difficulty_rows(path)
            diff_rows = [
                all_diff[i]
                for i in stratified_sample([r.difficulty for r in all_diff], args.limit, args.seed)
            ]
            outcomes = await classify_all(stub, [r.text for r in diff_rows], progress=_say)
            diff = difficulty_report(choice.name, diff_rows, outcomes)
            text, report = diff.render(), diff.as_dict()
    report["input"] = str(path)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["sampled"] = args.limit is not None
    if choice.classifier and not choice.rules_only:
        report["note"] = TRAINED_ON_DEV
        if TRAINING_REPORT.exists():
            training = json.loads(TRAINING_REPORT.read_text(encoding="utf-8"))
            report["cv_estimate"] = training.get(args.task, {}).get("cv")
        if args.task == "guardrail":
            latency = classifier_latency(GuardClassifier.load(), rows)
            report["classifier_in_process_latency"] = latency
            text += "\n" + render_latency(latency)
    _say(text)
    if "note" in report:
        _say("\n" + TRAINED_ON_DEV)
        if report.get("cv_estimate") and args.task == "guardrail":
            _say(render_cv(report["cv_estimate"]))
    destination = (
        args.report
        or RESULTS_DIR / f"{args.task}-{choice.name}{'-sample' if args.limit else ''}.json"
    )
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _say(f"\nwrote {destination}")
    report["path"] = str(destination)
    return report


def render_cv(cv: dict[str, Any]) -> str:
    """The training report's grouped-CV tables: classifier only (the estimate) and rules ORed in."""
    lines = []
    for key, title in (
        ("classifier_only", "grouped CV, CLASSIFIER ONLY, all training rows (the estimate)"),
        ("classifier_only_dev_rows", "grouped CV, classifier only, dev rows"),
        (
            "rules_plus_classifier_dev_rows",
            "grouped CV, rules + classifier, dev rows "
            "(rules written against these rows: their share is in-sample)",
        ),
    ):
        table = cv.get(key)
        if not table:
            continue
        lines += ["", title]
        lines += [
            f"  {k:<24} {v['hits']}/{v['total']} ({100 * v['rate']:.1f}%)"
            for k, v in table["by_category"].items()
        ]
        lines.append(
            f"  threats caught {100 * table['threats_caught']['rate']:.1f}%, "
            f"benign refused {100 * table['benign_refused']['rate']:.2f}%"
        )
    if cv.get("indirect"):
        lines += ["", "grouped CV, indirect injections, classifier only"]
        lines += [
            f"  {k:<24} {v['hits']}/{v['total']} ({100 * v['rate']:.1f}%)"
            for k, v in cv["indirect"].items()
        ]
    return "\n".join(lines)


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(run(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
