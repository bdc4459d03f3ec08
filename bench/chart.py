"""The PNG chart: each measured figure as a bar beside its same-run baseline."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg")

from bench.results import Figure

PANELS = (
    ("Throughput (per second)", ("floor vs real", "flash sale", "ledger only"), "/s"),
    ("Checkout latency (ms)", ("latency",), "ms"),
    ("Memory (MiB)", ("memory",), "MiB"),
)


def draw(figures: list[Figure], path: Path, title: str) -> None:
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(11, 12))
    for axis, (heading, scenarios, unit) in zip(axes, PANELS, strict=True):
        chosen = [f for f in figures if f.scenario in scenarios and f.unit == unit and f.baseline is not None]
        labels = [f"{f.scenario}\n{f.name}" if len(scenarios) > 1 else f.name for f in chosen]
        positions = range(len(chosen))
        width = 0.38
        axis.bar([p - width / 2 for p in positions], [f.value for f in chosen], width, label="measured")
        axis.bar([p + width / 2 for p in positions], [f.baseline or 0 for f in chosen], width, label="baseline")
        for position, figure in zip(positions, chosen, strict=True):
            note = f"{figure.baseline_name}\n{figure.ratio:.2f}x" if figure.ratio is not None else ""
            axis.annotate(note, (position, max(figure.value, figure.baseline or 0)), ha="center", va="bottom",
                          fontsize=7)
        axis.set_xticks(list(positions), labels, fontsize=7)
        axis.set_title(heading)
        if unit == "/s":
            axis.set_yscale("log")
        axis.legend(fontsize=8)
        axis.margins(y=0.25)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
