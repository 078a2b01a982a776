"""PNG plots of a run (matplotlib, from the bench environment; skipped without it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.scenarios import DIRECT, ORDER, SHORT


def _pyplot() -> Any:
    try:
        import matplotlib  # noqa: PLC0415 - optional, only in the bench environment

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    return plt


def _series(summary: dict[str, Any], key: str, pick: Any) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for concurrency, entry in summary.get(key, {}).items():
        value = pick(entry)
        if value is not None:
            xs.append(int(concurrency))
            ys.append(value)
    return xs, ys


def _median(figure: dict[str, Any] | None) -> float | None:
    return None if not figure else figure.get("median")


def _sweep_plot(
    plt: Any,
    summary: dict[str, Any],
    pick: Any,
    ylabel: str,
    title: str,
    path: Path,
    log_y: bool = False,
) -> Path | None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = False
    for key in ORDER:
        xs, ys = _series(summary, key, pick)
        if xs:
            ax.plot(xs, ys, marker="o", label=SHORT[key])
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log", base=2)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    plt = _pyplot()
    if plt is None:
        return []
    written: list[Path | None] = []
    throughput = (results.get("throughput") or {}).get("summary", {})
    if throughput:
        written.append(
            _sweep_plot(
                plt,
                throughput,
                lambda e: _median(e.get("tokens_per_s")),
                "tokens/s (aggregate)",
                "Relayed tokens per second",
                out_dir / "throughput.png",
                log_y=True,
            )
        )
        written.append(
            _sweep_plot(
                plt,
                throughput,
                lambda e: _median(e.get("probe_ttft_ms", {}).get("p99")),
                "probe TTFT p99 (ms)",
                "Time to first token beside N streams (p99)",
                out_dir / "ttft_under_load.png",
                log_y=True,
            )
        )
        written.append(
            _sweep_plot(
                plt,
                throughput,
                lambda e: _median((e.get("cpu_s_per_1k_tokens") or {}).get("relay_total")),
                "CPU s per 1,000 tokens",
                "Relay CPU cost per token",
                out_dir / "cpu_per_token.png",
            )
        )
    cancel = (results.get("cancel") or {}).get("summary", {})
    if cancel:
        written.append(
            _sweep_plot(
                plt,
                cancel,
                lambda e: _median(e.get("disconnect_ms_max")),
                "worst cancel → disconnect (ms)",
                "Cancellation reaching the model",
                out_dir / "cancel.png",
                log_y=True,
            )
        )
    latency = (results.get("latency") or {}).get("summary", {})
    if latency:
        written.append(_latency_bars(plt, latency, out_dir / "added_latency.png"))
    return [p for p in written if p is not None]


def _latency_bars(plt: Any, latency: dict[str, Any], path: Path) -> Path | None:
    keys = [k for k in ORDER if k in latency and k != DIRECT]
    concurrencies = sorted({c for k in keys for c in latency[k]}, key=int)
    if not keys or not concurrencies:
        return None
    fig, axes = plt.subplots(
        1, len(concurrencies), figsize=(5 * len(concurrencies), 4), squeeze=False
    )
    for ax, concurrency in zip(axes[0], concurrencies, strict=True):
        width = 0.8 / len(keys)
        for i, key in enumerate(keys):
            added = latency[key].get(concurrency, {}).get("added_ttft_ms", {})
            values = [_median(added.get(p)) or 0.0 for p in ("p50", "p95", "p99")]
            ax.bar([x + i * width for x in range(3)], values, width, label=SHORT[key])
        ax.set_xticks([x + width * (len(keys) - 1) / 2 for x in range(3)], ["p50", "p95", "p99"])
        ax.set_title(f"added TTFT vs (a), {concurrency} streams")
        ax.set_ylabel("ms")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
