"""Memory: resident set size of the API and worker processes after the runs, beside their size when they
had just started and warmed up."""

from __future__ import annotations

from typing import Any

from bench.results import Figure

SCENARIO = "memory"


def figures(at_start: dict[str, float], after: dict[str, float]) -> tuple[list[Figure], dict[str, Any]]:
    result = [
        Figure(SCENARIO, f"{name} RSS after the runs", after[name], "MiB", baseline=at_start[name],
               baseline_name="after warm-up")
        for name in ("api", "workers")
    ]
    return result, {"at_start_mib": at_start, "after_mib": after}
