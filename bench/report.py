"""The files a run leaves under --out: results.json, chart.png and performance.md.

performance.md is the section "The last full run" of docs/performance.md as it stands, and chart.png is
docs/bench-chart.png: a full run updates the manual by copying both over."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench import chart
from bench.results import Figure, markdown_table, number
from bench.scenarios.shapes import FLOOR_LOCAL, PHASE_LEVEL, PHASE_SAMPLE, PHASES

SHAPE_COLUMNS = ("shape", "c", "checkouts/s", "p50", "p99", "/s vs best floor", "p50 vs best floor")


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
    shapes = details["floor vs real"]["shapes"]
    chart.draw(figures, shapes, out / "chart.png", f"booking-saga bench --size {size} ({started_at})")
    (out / "performance.md").write_text(markdown(size, machine, figures, shapes, started_at, seconds,
                                                          details.get("steps")))


def command(size: str) -> str:
    return f"booking-saga bench --size {size}"


def _ratio(value: float, baseline: float) -> str:
    if not baseline or math.isnan(baseline) or math.isnan(value):
        return "-"
    return f"{value / baseline:.2f}x"


def shape_rows(shapes: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per shape and concurrency level (shapes: results.json's "floor vs real" / "shapes")."""
    best = shapes[FLOOR_LOCAL.key]["levels"]
    rows: list[tuple[str, ...]] = []
    for run in shapes.values():
        for level, measured in run["levels"].items():
            floor = best[level]
            rows.append((run["label"], level, number(measured["per_second"], "/s"), number(measured["p50_ms"], "ms"),
                         number(measured["p99_ms"], "ms"), _ratio(measured["per_second"], floor["per_second"]),
                         _ratio(measured["p50_ms"], floor["p50_ms"])))
    return rows


def _text(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    table = [columns, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _markdown(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(row) + " |" for row in [columns, *rows]]
    lines.insert(1, "|" + "---|" * len(columns))
    return "\n".join(lines)


def shapes_text(shapes: dict[str, Any]) -> str:
    return _text(SHAPE_COLUMNS, shape_rows(shapes))


def shapes_markdown(shapes: dict[str, Any]) -> str:
    return _markdown(SHAPE_COLUMNS, shape_rows(shapes))


STEP_COLUMNS = ("step", "with it", "without it", "rate", "p50", "CPU per checkout")


def _cpu_total(cpu: dict[str, float]) -> float:
    return float(cpu.get("total", math.nan))


def step_rows(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per step of the whole booking (results.json's "steps" / "table"): with it, without it, ratios."""
    result: list[tuple[str, ...]] = []
    for row in rows:
        on, off = (_cpu_total(cpu) for cpu in row.get("cpu_ms_per_checkout", [{}, {}]))
        cpu = "-" if math.isnan(on) or math.isnan(off) else f"{on:.1f} / {off:.1f} ms ({_ratio(on, off)})"
        result.append((row["step"], f'{number(row["per_second"][0], "/s")}, p50 {number(row["p50_ms"][0], "ms")}',
                       f'{number(row["per_second"][1], "/s")}, p50 {number(row["p50_ms"][1], "ms")}',
                       _ratio(*row["per_second"]), _ratio(*row["p50_ms"]), cpu))
    return result


# The processes of the CPU table, in the order of a checkout's path; "bench" (the load generator) is left out.
CPU_PROCESSES = ("api", "workers", "temporal", "postgres", "redis", "relay", "receiver")


def cpu_columns() -> tuple[str, ...]:
    return ("shape", "c", *CPU_PROCESSES, "total", "total vs best floor")


def cpu_rows(shapes: dict[str, Any]) -> list[tuple[str, ...]]:
    """CPU milliseconds per placed checkout, per process, for every shape and level whose CPU was metered."""
    best = shapes[FLOOR_LOCAL.key]["levels"]
    rows: list[tuple[str, ...]] = []
    for run in shapes.values():
        for level, measured in run["levels"].items():
            cpu = measured.get("cpu_ms_per_checkout") or {}
            if not cpu:
                continue
            floor = _cpu_total(best[level].get("cpu_ms_per_checkout") or {})
            rows.append((run["label"], level, *(f"{cpu[name]:.1f}" if name in cpu else "-" for name in CPU_PROCESSES),
                         f'{cpu["total"]:.1f}', _ratio(cpu["total"], floor)))
    return rows


def cpu_text(shapes: dict[str, Any]) -> str:
    return _text(cpu_columns(), cpu_rows(shapes))


def cpu_markdown(shapes: dict[str, Any]) -> str:
    return _markdown(cpu_columns(), cpu_rows(shapes))


def phase_columns() -> tuple[str, ...]:
    return ("shape", *PHASES, "answer p50")


def phase_rows(shapes: dict[str, Any]) -> list[tuple[str, ...]]:
    """Each shape's PHASES at PHASE_LEVEL (p50 of each, ms), beside the p50 of its whole answer."""
    rows: list[tuple[str, ...]] = []
    for run in shapes.values():
        measured = run["levels"].get(str(PHASE_LEVEL), {})
        phases = measured.get("phases_p50_ms")
        if phases:
            rows.append((run["label"], *(f"{phases[name]:.1f}" for name in PHASES), f'{measured["p50_ms"]:.1f}'))
    return rows


def phases_text(shapes: dict[str, Any]) -> str:
    return _text(phase_columns(), phase_rows(shapes))


def phases_markdown(shapes: dict[str, Any]) -> str:
    return _markdown(phase_columns(), phase_rows(shapes))


def steps_text(rows: list[dict[str, Any]]) -> str:
    return _text(STEP_COLUMNS, step_rows(rows))


def steps_markdown(rows: list[dict[str, Any]]) -> str:
    return _markdown(STEP_COLUMNS, step_rows(rows))


def step_phase_columns() -> tuple[str, ...]:
    return ("step", "p50 with / without", "ratio", *PHASES)


def step_phase_rows(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per step at PHASE_LEVEL: the answer's p50 with and without it, and each phase's (with / without)."""
    result: list[tuple[str, ...]] = []
    for row in rows:
        one = row.get("at_phase_level")
        if not one:
            continue
        on, off = one["phases_p50_ms"]
        result.append((row["step"], f'{one["p50_ms"][0]:.1f} / {one["p50_ms"][1]:.1f}', _ratio(*one["p50_ms"]),
                       *(f"{on[name]:.1f} / {off[name]:.1f}" if name in on and name in off else "-"
                         for name in PHASES)))
    return result


def step_phases_text(rows: list[dict[str, Any]]) -> str:
    return _text(step_phase_columns(), step_phase_rows(rows))


def step_phases_markdown(rows: list[dict[str, Any]]) -> str:
    return _markdown(step_phase_columns(), step_phase_rows(rows))


def markdown(size: str, machine: dict[str, Any], figures: list[Figure], shapes: dict[str, Any], started_at: str,
             seconds: float, steps: dict[str, Any] | None = None) -> str:
    step_section = "" if steps is None else f"""
Each step of the whole booking alone, at c={steps["level"]} (the real checkout, local placement, with exactly one
step changed, beside the plain real checkout measured right before and right after it, the two pooled):

{steps_markdown(steps["table"])}

The same runs at c={PHASE_LEVEL}, one checkout at a time: the p50 of the answer and of each phase, in ms, with the
step / without it:

{step_phases_markdown(steps["table"])}
"""
    return f"""## The last full run

Measured with `{command(size)}` on {started_at} ({seconds / 60:.0f} min). Each figure sits beside a baseline
measured in the same run on the same servers (the dev server in memory, embedded PostgreSQL and Redis, one API
process and one worker process, `worker --service all`), because absolute times on a shared machine drift from run
to run: read the ratios, not the absolute values.

The baseline of the checkout figures is the **best-shape floor**: the same API, workflow and servers with every
participant placed `local` and no-op activities (`worker --noop`), i.e. what Temporal itself costs in the shape the
real checkout uses; the real checkout held to the targets is the **whole booking** (rate limiter, webhooks with
their relay, wallet payment, besides the holds, record, outbox and payload codec of every real shape). The
**remote-shape floor** is the same with every participant placed `remote` (an activity
task queue per participant); the real checkout is measured in both placements. The API and the workers are
restarted with `PARTICIPANT_PLACEMENTS` between the placements.

{markdown_table(figures)}

Every shape at every concurrency level (closed loop: `c` checkouts in flight, each three holds):

{shapes_markdown(shapes)}

CPU milliseconds per placed checkout while each level's clock ran, per process (PostgreSQL with its backends; the
relay and the webhook receiver only where webhooks are on), and their total against the best floor's: on a machine
whose cores a level fills, the rate follows the total.

{cpu_markdown(shapes)}

Where the time of one checkout in flight (c={PHASE_LEVEL}) goes, p50 of each phase in ms over the last {PHASE_SAMPLE}
placed checkouts of each shape (their halves' together): each checkout's first events, from its history (the
server's clock), set beside the bench's clock on the same machine. The API before the server started the workflow
(the request, the API's checks, the Update-with-Start call); the first workflow task's wait for a worker, then its
run in two parts: until the last hold of the first stage completed (the inventory's holds as local activities, by
their markers; none where holds are activity tasks), and the rest (later stages such as the wallet's, and the
task's completion); the update's completion after that task (later tasks, where holds are activity tasks); the
answer's way back through the API. The p50s of the phases do not add up to the answer's p50 exactly: each is the
median of its own samples.

{phases_markdown(shapes)}
{step_section}
![benchmark chart](bench-chart.png)

Machine: {machine["cpus_usable"]} of {machine["cpus"]} CPUs, {machine["cpu_model"]}, {machine["memory_gib"]} GiB,
Python {machine["python"]} ({machine["platform"]}).

Reproduce: `pip install -e '.[embedded,bench]' && {command(size)}` (writes `.bench/results.json`,
`.bench/chart.png` and this section as `.bench/performance.md`). `--size tiny` runs in about two minutes
(CI, correctness only), `--size full` gives the figures on this page (1,000 flash-sale buyers).
"""
