"""A Figure: one measured value beside its same-run baseline, with the issue's target and whether it is met."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

# ratio_at_least: value / baseline >= target. ratio_at_most: value / baseline <= target. at_most: value <= target.
# equals: value == target.
TargetKind = Literal["ratio_at_least", "ratio_at_most", "at_most", "equals"]


@dataclass
class Figure:
    scenario: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target_kind: TargetKind | None = None
    target: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0 or math.isnan(self.baseline):
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.target_kind is None or self.target is None:
            return None
        if self.target_kind == "ratio_at_least":
            return self.ratio is not None and self.ratio >= self.target
        if self.target_kind == "ratio_at_most":
            return self.ratio is not None and self.ratio <= self.target
        if self.target_kind == "at_most":
            return self.value <= self.target
        return self.value == self.target

    @property
    def target_text(self) -> str:
        if self.target_kind == "ratio_at_least":
            return f">= {self.target:g}x"
        if self.target_kind == "ratio_at_most":
            return f"<= {self.target:g}x"
        if self.target_kind == "at_most":
            return f"<= {self.target:g} {self.unit}"
        if self.target_kind == "equals":
            return f"= {self.target:g}"
        return ""

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ratio=self.ratio, met=self.met, target_text=self.target_text)
        return data


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3g}"
    return f"{text} {unit}".strip()


COLUMNS = ("scenario", "figure", "value", "baseline", "ratio", "target", "met?")


def rows(figures: list[Figure]) -> list[tuple[str, ...]]:
    table: list[tuple[str, ...]] = []
    for fig in figures:
        baseline = f"{number(fig.baseline, fig.unit)} ({fig.baseline_name})" if fig.baseline is not None else "-"
        ratio = f"{fig.ratio:.2f}x" if fig.ratio is not None else "-"
        met = {True: "yes", False: "NO", None: ""}[fig.met]
        row = (fig.scenario, fig.name, number(fig.value, fig.unit), baseline, ratio, fig.target_text, met)
        table.append(row)
    return table


def text_table(figures: list[Figure]) -> str:
    table = [COLUMNS, *rows(figures)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    table = [COLUMNS, *rows(figures)]
    lines = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table]
    lines.insert(1, "|" + "---|" * len(COLUMNS))
    return "\n".join(lines)
