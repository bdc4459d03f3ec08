"""`booking-saga bench --size tiny` runs to the end and writes its files. Correctness is asserted (every shape placed
every checkout in its own placement, the flash sale holds exactly its seats); speed never is: the numbers depend
on the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scenarios.shapes import SHAPES
from bench.sizes import LEVELS, SIZES

pytestmark = [pytest.mark.slow, pytest.mark.devserver]

SCENARIOS = ("floor vs real", "latency", "flash sale", "ledger only", "memory")


def test_tiny_bench_finishes_and_reports_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, "-m", "booking_saga.cli", "bench", "--size", "tiny", "--out", str(out)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())

    figures = results["figures"]
    assert {f["scenario"] for f in figures} == set(SCENARIOS)
    for figure in figures:
        assert isinstance(figure["value"], int | float), figure
    targeted = {f["name"]: f for f in figures if f["target_kind"] is not None}
    for concurrency in (5, 10):
        assert targeted[f"real (local) checkouts/s at c={concurrency}"]["baseline_name"] == "best floor"
    for concurrency in (1, 5):
        assert targeted[f"real (local) p50 at c={concurrency}"]["target_text"] == "<= 1.3x"

    tiny = SIZES["tiny"]
    measured = results["scenarios"]["floor vs real"]["shapes"]
    assert list(measured) == [shape.key for shape in SHAPES]
    for shape in SHAPES:
        run = measured[shape.key]
        # Each shape ran under its own placement and worker kind, and placed every checkout at every level.
        assert (run["placement"], run["noop"]) == (shape.placement, shape.noop)
        assert [int(c) for c in run["levels"]] == list(LEVELS)
        # The placement as Temporal saw it, in one checkout's history: each remote hold is an activity task (three
        # participants in the basket), a local one a local-activity marker and no task.
        steps = run["history_of_one_checkout"]
        if shape.placement == "remote":
            assert steps["activity_tasks"] >= 3, (shape.key, steps)
        else:
            assert steps["activity_tasks"] == 0 and steps["local_activities"] >= 3, (shape.key, steps)
        for concurrency, level in run["levels"].items():
            assert level["placed"] == tiny.levels[int(concurrency)], (shape.key, concurrency, level["not_placed"])
    assert next(f for f in figures if f["name"].startswith("checkouts not placed"))["value"] == 0

    sale = results["scenarios"]["flash sale"]
    assert sale["held"] == tiny.seats
    assert sale["ledger"]["held"] == tiny.seats
    assert sale["rejected_409"] == tiny.buyers - tiny.seats
    assert sale["other"] == 0
    assert sale["late_409"] == tiny.late_buyers
    assert sale["audit_ok"] is True

    assert (out / "chart.png").stat().st_size > 0
    section = (out / "README-performance.md").read_text()
    assert "## Performance" in section
    assert all(shape.label in section for shape in SHAPES)
    assert "scenario" in result.stdout
