"""The files a run leaves under --out: results.json, chart.png and README-performance.md."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench import chart
from bench.results import Figure, markdown_table


def _clean(value: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write(out: Path, size: str, machine: dict[str, Any], figures: list[Figure], details: dict[str, Any],
          started_at: str, seconds: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "size": size,
        "started_at": started_at,
        "seconds": seconds,
        "machine": machine,
        "command": command(size),
        "figures": [f.as_json() for f in figures],
        "scenarios": details,
    }
    (out / "results.json").write_text(json.dumps(_clean(results), indent=2) + "\n")
    chart.draw(figures, out / "chart.png", f"booking-saga bench --size {size} ({started_at})")
    (out / "README-performance.md").write_text(markdown(size, machine, figures, started_at))


def command(size: str) -> str:
    return f"booking-saga bench --size {size}"


def markdown(size: str, machine: dict[str, Any], figures: list[Figure], started_at: str) -> str:
    return f"""## Performance

Measured with `{command(size)}` on {started_at}. Each figure sits beside a baseline measured
in the same run on the same servers (the dev server in memory, embedded PostgreSQL and Redis, one API and one
worker process), because absolute times on a shared machine drift from run to run: read the ratios, not the
absolute values.

{markdown_table(figures)}

![benchmark chart](docs/bench-chart.png)

Machine: {machine["cpus_usable"]} of {machine["cpus"]} CPUs, {machine["cpu_model"]}, {machine["memory_gib"]} GiB,
Python {machine["python"]} ({machine["platform"]}).

Reproduce: `pip install -e '.[embedded,bench]' && {command(size)}` (writes `.bench/results.json`,
`.bench/chart.png` and this section as `.bench/README-performance.md`). `--size tiny` runs in seconds (CI),
`--size full` is the issue's numbers (1,000 flash-sale buyers).
"""
