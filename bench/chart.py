"""The PNG chart: the four shapes' checkouts/s and latency by concurrency, the checkout figures as ratios to their
baselines with their targets, and the other scenarios' figures as bars beside their same-run baselines."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg")
from matplotlib.axes import Axes

from bench.results import Figure

BAR_PANELS = (
    ("Per second, beside the same-run baseline",
     ("flash sale", "http floor", "ledger only", "hot row", "cancelling sales"), "/s"),
    ("Memory (MiB)", ("memory",), "MiB"),
)
# The checkout figures drawn as ratios (their baselines are other shapes of the same run).
RATIO_SCENARIOS = ("floor vs real", "latency")
# Floors dashed, real solid; one colour and marker per placement.
STYLE = {
    "floor_remote": ("tab:orange", "--", "s"),
    "floor_local": ("tab:blue", "--", "o"),
    "real_remote": ("tab:orange", "-", "s"),
    "real_local": ("tab:blue", "-", "o"),
    "whole_local": ("tab:green", "-", "^"),
}
OTHER = ("tab:gray", "-", "x")


def _levels(run: dict[str, Any], field: str) -> tuple[list[int], list[float]]:
    levels = sorted(run["levels"].items(), key=lambda item: int(item[0]))
    return [int(c) for c, _ in levels], [measured[field] for _, measured in levels]


def _shapes_rate(axis: Axes, shapes: dict[str, Any]) -> None:
    for key, run in shapes.items():
        levels, values = _levels(run, "per_second")
        color, line, marker = STYLE.get(key, OTHER)
        axis.plot(levels, values, label=run["label"], color=color, linestyle=line, marker=marker)
    axis.set_title("Checkouts per second by concurrency")
    axis.set_xlabel("concurrency (checkouts in flight)")
    axis.set_ylim(bottom=0)


def _shapes_latency(axis: Axes, shapes: dict[str, Any]) -> None:
    for key, run in shapes.items():
        color, line, marker = STYLE.get(key, OTHER)
        levels, p50 = _levels(run, "p50_ms")
        _, p99 = _levels(run, "p99_ms")
        axis.plot(levels, p50, label=f"{run['label']} p50", color=color, linestyle=line, marker=marker)
        axis.plot(levels, p99, label=f"{run['label']} p99", color=color, linestyle=":", marker=marker, alpha=0.45)
    axis.set_title("Checkout latency (ms), p50 and p99 (dotted)")
    axis.set_xlabel("concurrency (checkouts in flight)")
    axis.set_yscale("log")


def _bars(axis: Axes, figures: list[Figure], heading: str, scenarios: tuple[str, ...], unit: str) -> None:
    chosen = [f for f in figures if f.scenario in scenarios and f.unit == unit and f.baseline is not None]
    # Wrapped: five scenarios' names side by side would run into each other.
    labels = [textwrap.fill(f"{f.scenario}: {f.name}" if len(scenarios) > 1 else f.name, 22) for f in chosen]
    positions = range(len(chosen))
    width = 0.38
    axis.bar([p - width / 2 for p in positions], [f.value for f in chosen], width, label="measured")
    axis.bar([p + width / 2 for p in positions], [f.baseline or 0 for f in chosen], width, label="baseline")
    for position, figure in zip(positions, chosen, strict=True):
        note = f"{figure.baseline_name}\n{figure.ratio:.2f}x" if figure.ratio is not None else ""
        axis.annotate(note, (position, max(figure.value, figure.baseline or 0)), ha="center", va="bottom", fontsize=7)
    axis.set_xticks(list(positions), labels, fontsize=7)
    axis.set_title(heading)
    if unit == "/s":
        axis.set_yscale("log")
    axis.margins(y=0.25)


def _ratios(axis: Axes, figures: list[Figure]) -> None:
    """Every checkout figure as its ratio to its baseline, with its target (if any) marked on its bar."""
    chosen = [f for f in figures if f.scenario in RATIO_SCENARIOS and f.ratio is not None]
    positions = range(len(chosen))
    colors = ["tab:green" if f.met else "tab:red" if f.met is False else "tab:gray" for f in chosen]
    axis.bar(list(positions), [f.ratio or 0 for f in chosen], 0.6, color=colors)
    for position, figure in zip(positions, chosen, strict=True):
        if figure.target_kind in ("ratio_at_least", "ratio_at_most") and figure.target is not None:
            axis.hlines(figure.target, position - 0.4, position + 0.4, colors="black", linestyles="--")
        axis.annotate(f"{figure.ratio or 0:.2f}x", (position, figure.ratio or 0), ha="center", va="bottom", fontsize=7)
    axis.axhline(1.0, color="gray", linewidth=0.8)
    labels = [f"{f.name}\nvs {f.baseline_name}" for f in chosen]
    axis.set_xticks(list(positions), labels, fontsize=7, rotation=25, ha="right")
    axis.set_title("Ratio to the same-run baseline (green: target met, red: missed, grey: no target; "
                   "dashed: the target)")
    axis.margins(y=0.15)


def draw(figures: list[Figure], shapes: dict[str, Any], path: Path, title: str) -> None:
    """`shapes`: results.json's "floor vs real" / "shapes" (label and per-level figures of each shape)."""
    fig, axes = plt.subplot_mosaic([["rate", "latency"], ["ratios", "ratios"], ["bars", "memory"]],
                                   figsize=(15, 15), height_ratios=(1, 1.1, 0.9))
    _shapes_rate(axes["rate"], shapes)
    _shapes_latency(axes["latency"], shapes)
    _ratios(axes["ratios"], figures)
    for key, (heading, scenarios, unit) in zip(("bars", "memory"), BAR_PANELS, strict=True):
        _bars(axes[key], figures, heading, scenarios, unit)
        axes[key].legend(fontsize=7)
    levels = sorted({int(c) for run in shapes.values() for c in run["levels"]})
    for key in ("rate", "latency"):
        axes[key].legend(fontsize=7)
        axes[key].set_xticks(levels)
        axes[key].grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)
