"""The side-by-side table (Markdown), and the issue's targets checked against the run."""

from __future__ import annotations

from typing import Any

from bench.scenarios import DIRECT, GATEWAY_CACHED, GATEWAY_JUDGE, LITELLM, ORDER, SHORT, WORKER


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _fig(figure: dict[str, Any] | None, digits: int = 1, signed: bool = False) -> str:
    """``median [min–max]`` of a figure over repetitions."""
    if not figure or figure.get("median") is None:
        return "n/a"
    sign = "+" if signed and figure["median"] >= 0 else ""
    text = f"{sign}{figure['median']:,.{digits}f}"
    if figure.get("reps", 1) > 1 and figure.get("min") is not None:
        text += f" [{figure['min']:,.{digits}f}–{figure['max']:,.{digits}f}]"
    return text


def _keys(present: dict[str, Any]) -> list[str]:
    return [k for k in ORDER if k in present]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def latency_section(latency: dict[str, Any]) -> list[str]:
    summary = latency["summary"]
    lines = [
        f"### 1. Added latency vs (a) — stand-in paced at {latency['rate_tokens_per_s']:g} "
        f"tokens/s, {latency['answer_tokens']}-token answers (ms; median of "
        f"{latency['reps']} reps [min–max])",
        "",
    ]
    rows = []
    for key in _keys(summary):
        for concurrency, entry in summary[key].items():
            if key == DIRECT:
                cells = [_fig(entry["ttft_ms"][p], 2) for p in ("p50", "p95", "p99")]
                cells += [_fig(entry["total_ms"][p], 1) for p in ("p50", "p99")]
                cells = [f"{c} (absolute)" for c in cells]
            else:
                cells = [_fig(entry["added_ttft_ms"][p], 2, True) for p in ("p50", "p95", "p99")]
                cells += [_fig(entry["added_total_ms"][p], 1, True) for p in ("p50", "p99")]
            rows.append(
                [SHORT[key], concurrency, *cells, str(sum(entry["samples"])), str(entry["errors"])]
            )
    lines += _table(
        [
            "path",
            "streams",
            "TTFT p50",
            "TTFT p95",
            "TTFT p99",
            "total p50",
            "total p99",
            "samples",
            "errors",
        ],
        rows,
    )
    lines += [
        "",
        f"Verdict cache: {latency['verdict_cache']['note']} "
        f"(decision tiers seen: {latency['verdict_cache']['decision_tiers']}).",
        "",
    ]
    return lines


def paced_section(paced: dict[str, Any]) -> list[str]:
    summary = paced["summary"]
    lines = [
        (
            f"### 2b. Paced load — every stream paced at {paced['rate_tokens_per_s']:g} tokens/s, "
            f"{paced['answer_tokens']}-token answers (TTFT added vs (a), ms; median of "
            f"{paced['reps']} reps [min–max])"
        ),
        "",
    ]
    rows = []
    for key in _keys(summary):
        for concurrency, entry in summary[key].items():
            if key == DIRECT:
                cells = [f"{_fig(entry['ttft_ms'][p], 2)} (absolute)" for p in ("p50", "p99")]
            else:
                cells = [_fig(entry["added_ttft_ms"][p], 2, True) for p in ("p50", "p99")]
            cpu = (entry["cpu_s_per_1k_tokens"] or {}).get("relay_total")
            offered = f"{entry['offered_tokens_per_s']:,.0f}"
            rows.append(
                [
                    SHORT[key],
                    concurrency,
                    *cells,
                    f"{_fig(entry['tokens_per_s'], 0)} of {offered}",
                    _fig(cpu, 3) if key != DIRECT else "—",
                    str(sum(entry["samples"])),
                    str(entry["errors"]),
                ]
            )
    lines += _table(
        [
            "path",
            "streams",
            "TTFT p50",
            "TTFT p99",
            "tokens/s delivered of offered",
            "relay CPU-s per 1k tokens",
            "samples",
            "errors",
        ],
        rows,
    )
    return [*lines, ""]


def throughput_section(throughput: dict[str, Any]) -> list[str]:
    summary = throughput["summary"]
    keys = _keys(summary)
    concurrencies = list(next(iter(summary.values())).keys()) if summary else []
    lines = [
        f"### 2. Throughput — stand-in unthrottled, {throughput['answer_tokens']}-token answers, "
        f"{throughput['window_s']:g} s windows, median of {throughput['reps']} reps",
        "",
        "Aggregate relayed tokens/s:",
        "",
    ]
    rows = [
        [c, *[_fig(summary[k].get(c, {}).get("tokens_per_s"), 0) for k in keys]]
        for c in concurrencies
    ]
    lines += _table(["streams", *[SHORT[k] for k in keys]], rows)
    lines += [
        "",
        f"Time to first token of a {throughput['probe_tokens']}-token probe request "
        "sent beside the N streams (ms, p50 / p99; n/a: no probe answered in the window):",
        "",
    ]
    rows = []
    for c in concurrencies:
        cells = []
        for k in keys:
            entry = summary[k].get(c, {})
            probe = entry.get("probe_ttft_ms", {})
            cells.append(f"{_fig(probe.get('p50'), 1)} / {_fig(probe.get('p99'), 1)}")
        rows.append([c, *cells])
    lines += _table(["streams", *[SHORT[k] for k in keys]], rows)
    lines += [
        "",
        "CPU seconds per 1,000 relayed tokens (the relay's processes together) and "
        "peak RSS (MB) of each relaying process:",
        "",
    ]
    rows = []
    for c in concurrencies:
        cells = []
        for k in keys:
            entry = summary[k].get(c, {})
            cpu = (entry.get("cpu_s_per_1k_tokens") or {}).get("relay_total")
            rss = entry.get("rss_mb_peak", {})
            rss_text = ", ".join(
                f"{name} {_num((fig or {}).get('median'), 0)}"
                for name, fig in rss.items()
                if name not in ("standin", "loadgen")
            )
            cells.append("—" if cpu is None else f"{_fig(cpu, 3)} s; {rss_text}")
        rows.append([c, *cells])
    lines += _table(["streams", *[SHORT[k] for k in keys]], rows)
    errors = {k: sum(e.get("errors", 0) for e in summary[k].values()) for k in keys}
    if any(errors.values()):
        lines += ["", f"Errors during the throughput runs: {errors}"]
    return [*lines, ""]


def guard_section(guard: dict[str, Any], real: dict[str, Any] | None) -> list[str]:
    embedded = "n/a (not run)"
    cache = guard.get("verdict_cache_hit_us") or {}
    judged = (real or {}).get("with_judge") or (real or {}).get("summary")
    if judged:
        embedded = f"{_fig(judged['decision_ms'], 0)} ms ({', '.join(judged['decision_tiers'])})"
    return [
        "### 3. Guard cost (µs per call, median of reps [min–max])",
        "",
        *_table(
            [
                "rules tier, short prompt",
                "rules tier, 8 KB prompt",
                "rules tier, refusal",
                "judge verdict parse",
                "cache hit, short",
                "cache hit, 8 KB",
                "embedded judge",
            ],
            [
                [
                    _fig(guard["rules_short_us"], 1),
                    _fig(guard["rules_8kb_us"], 1),
                    _fig(guard["rules_refusal_us"], 1),
                    _fig(guard["judge_parse_us"], 1),
                    _fig(cache.get("short"), 1),
                    _fig(cache.get("8kb"), 1),
                    embedded,
                ]
            ],
        ),
        "",
        f"Verdict cache: {guard['verdict_cache_note']}.",
        "",
        *_breakdown_lines(guard.get("rules_8kb_breakdown_us") or {}),
    ]


def _breakdown_lines(stages: dict[str, float]) -> list[str]:
    if not stages:
        return []
    ranked = sorted(stages.items(), key=lambda item: -item[1])
    text = ", ".join(f"{name} {value:,.0f}" for name, value in ranked)
    return [f"Where the rules tier's time goes on the 8 KB prompt (µs, one pass each): {text}.", ""]


def cancel_section(cancel: dict[str, Any], kill: dict[str, Any] | None) -> list[str]:
    summary = cancel["summary"]
    keys = _keys(summary)
    concurrencies = list(next(iter(summary.values())).keys()) if summary else []
    lines = [
        "### 4. Cancel → the stand-in sees the disconnect (ms, p50 / max over the streams; "
        f"'k ran on': streams never cancelled upstream, observed for {cancel['observe_s']:g} s)",
        "",
    ]
    rows = []
    for c in concurrencies:
        cells = []
        for k in keys:
            e = summary[k].get(c, {})
            text = f"{_fig(e.get('disconnect_ms_p50'), 1)} / {_fig(e.get('disconnect_ms_max'), 1)}"
            missed = e.get("ran_to_end", 0) + e.get("not_seen", 0)
            if missed:
                text += f" ({missed}/{e.get('cancelled', 0)} ran on)"
            cells.append(text)
        rows.append([c, *cells])
    lines += _table(["streams", *[SHORT[k] for k in keys]], rows)
    if kill and "summary" in kill:
        s = kill["summary"]
        lines += [
            "",
            f"Worker SIGKILLed under {kill['concurrency']} gateway streams → each "
            f"client's error after {_fig(s['error_ms_p50'], 1)} ms (p50), "
            f"{_fig(s['error_ms_max'], 1)} ms (max); statuses {s['codes']}; "
            f"streams left hanging: {s['hung']}.",
        ]
    return [*lines, ""]


def real_model_section(real: dict[str, Any]) -> list[str]:
    rows = []
    for label, s in (
        ("default (as `make run`)", real["summary"]),
        ("with --use-judge", real.get("with_judge")),
    ):
        if s:
            rows.append(
                [
                    label,
                    _fig(s["ttft_ms"], 0),
                    _fig(s["tokens_per_s"], 1),
                    f"{_fig(s['decision_ms'], 1)} ({', '.join(s['decision_tiers'])})",
                    _fig(s["total_ms"], 0),
                    _fig(s["tokens"], 0),
                ]
            )
    return [
        f"### 6. Real model: embedded SmolLM2-135M through gateway + worker "
        f"(`{real['prompt']}`, max {real['max_tokens']} tokens)",
        "",
        *_table(
            [
                "gateway",
                "time to first token (ms)",
                "tokens/s",
                "screening decision (ms, tier)",
                "total (ms)",
                "tokens",
            ],
            rows,
        ),
        "",
    ]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it was met."""
    checks: list[dict[str, Any]] = []
    latency = (results.get("latency") or {}).get("summary", {})
    cached = latency.get(GATEWAY_CACHED, {}).get("32") or {}
    for pct, limit in (("p50", 2.0), ("p99", 10.0)):
        value = (cached.get("added_ttft_ms") or {}).get(pct, {}).get("median")
        checks.append(
            _check(
                f"added TTFT (c) {pct} at 32 streams ≤ {limit:g} ms",
                value,
                value is not None and value <= limit,
                "ms",
            )
        )
    throughput = (results.get("throughput") or {}).get("summary", {})
    gateway_max = _max_rate(throughput.get(GATEWAY_JUDGE, {}))
    checks.append(
        _check(
            "≥ 10,000 relayed tokens/s through gateway + worker",
            gateway_max,
            gateway_max is not None and gateway_max >= 10_000,
            "tokens/s",
        )
    )
    litellm_max = _max_rate(throughput.get(LITELLM, {}))
    if litellm_max:
        ratio = (gateway_max or 0) / litellm_max
        checks.append(_check("max throughput ≥ 3× LiteLLM's", ratio, ratio >= 3, "×"))
    lite = (latency.get(LITELLM, {}).get("32") or {}).get("added_ttft_ms", {}).get("p99", {})
    ours = (cached.get("added_ttft_ms") or {}).get("p99", {})
    if lite.get("median") is not None and ours.get("median") is not None:
        ratio = lite["median"] / max(ours["median"], 1e-3)
        checks.append(
            _check(
                "p99 added TTFT at 32 streams ≥ 3× better than LiteLLM's", ratio, ratio >= 3, "×"
            )
        )
    checks += _paced_targets(results.get("paced"))
    cancel = (results.get("cancel") or {}).get("summary", {})
    worst = None
    for key in (WORKER, GATEWAY_JUDGE):
        for entry in cancel.get(key, {}).values():
            value = (entry.get("disconnect_ms_max") or {}).get("max")
            missed = entry.get("ran_to_end", 0) + entry.get("not_seen", 0)
            value = float("inf") if missed else value
            if value is not None:
                worst = value if worst is None else max(worst, value)
    if worst is not None:
        checks.append(
            _check(
                "cancel → disconnect < 250 ms at every concurrency (worst stream)",
                worst,
                worst < 250,
                "ms",
            )
        )
    return checks


def _paced_targets(paced: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Issue 18's targets at 32 paced streams (when the paced suite ran)."""
    if not paced:
        return []
    at_32 = paced["summary"].get(GATEWAY_CACHED, {}).get("32") or {}
    load = f"32 × {paced['rate_tokens_per_s']:g} tokens/s × {paced['answer_tokens']} tokens"
    checks = []
    for pct, limit in (("p50", 2.0), ("p99", 10.0)):
        value = (at_32.get("added_ttft_ms") or {}).get(pct, {}).get("median")
        checks.append(
            _check(
                f"added TTFT (c) {pct} at {load} ≤ {limit:g} ms",
                value,
                value is not None and value <= limit,
                "ms",
            )
        )
    cpu = ((at_32.get("cpu_s_per_1k_tokens") or {}).get("relay_total") or {}).get("median")
    checks.append(
        _check(
            f"gateway + worker CPU at {load} ≤ 0.2 s per 1,000 tokens",
            cpu,
            cpu is not None and cpu <= 0.2,
            "CPU-s",
        )
    )
    return checks


def _max_rate(by_concurrency: dict[str, Any]) -> float | None:
    rates = [(e.get("tokens_per_s") or {}).get("median") for e in by_concurrency.values()]
    present = [r for r in rates if r is not None]
    return max(present) if present else None


def _check(what: str, value: float | None, met: bool, unit: str) -> dict[str, Any]:
    """``met`` is None when the run did not measure it (a quick run, a failed suite)."""
    return {
        "target": what,
        "value": value,
        "unit": unit,
        "met": None if value is None else bool(met),
    }


def targets_section(checks: list[dict[str, Any]]) -> list[str]:
    verdicts = {True: "met", False: "MISSED", None: "not measured"}
    rows = [[c["target"], f"{_num(c['value'], 2)} {c['unit']}", verdicts[c["met"]]] for c in checks]
    return ["### Targets of the issue", "", *_table(["target", "measured", ""], rows), ""]


def incidents_section(incidents: list[dict[str, Any]], shown: int = 5) -> list[str]:
    if not incidents:
        return []
    lines = [
        f"### Incidents: {len(incidents)} time(s) a Tandem service stopped serving during a "
        "run (that run is left out of the figures; the service recovered by itself or was "
        "restarted)",
        "",
    ]
    for incident in incidents[:shown]:
        warnings = "; ".join(
            f"{name}: {text}" for name, text in incident["last_warnings"].items() if text
        )
        lines.append(
            f"- after {incident['after']}: {incident['health']}"
            f"{' — last warnings: ' + warnings if warnings else ''}"
        )
    if len(incidents) > shown:
        lines.append(f"- … and {len(incidents) - shown} more (summary.json has them all)")
    return [*lines, ""]


def render(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    lines = [
        f"## Tandem benchmark ({'quick smoke run' if results.get('quick') else 'full run'})",
        "",
        f"Machine: {machine.get('cpu')}, {machine.get('logical_cpus')} logical CPUs, "
        f"{machine.get('memory_gib')} GiB, {machine.get('platform')}, Python "
        f"{machine.get('python')}, grpcio {machine.get('grpcio')}, LiteLLM "
        f"{machine.get('litellm') or 'not run'}; commit {machine.get('git_commit')}"
        f"{' (with local changes)' if machine.get('git_dirty') else ''}; load average "
        f"{machine.get('load_average_at_start')} at the start, "
        f"{machine.get('load_average_at_end')} at the end; {machine.get('taken_at')}; "
        f"{_num(results.get('elapsed_s'), 0)} s in all.",
        "",
    ]
    if results.get("latency"):
        lines += latency_section(results["latency"])
    if results.get("throughput"):
        lines += throughput_section(results["throughput"])
    if results.get("paced"):
        lines += paced_section(results["paced"])
    if results.get("guard"):
        lines += guard_section(results["guard"], results.get("real_model"))
    if results.get("cancel"):
        lines += cancel_section(results["cancel"], results.get("kill"))
    if results.get("real_model") and "summary" in results["real_model"]:
        lines += real_model_section(results["real_model"])
    lines += targets_section(targets(results))
    lines += incidents_section(results.get("incidents") or [])
    failures = results.get("failures") or {}
    if failures:
        lines += ["Suites that failed: " + "; ".join(f"{k}: {v}" for k, v in failures.items()), ""]
    return "\n".join(lines)
