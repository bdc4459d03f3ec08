"""`booking-saga bench --size tiny` runs to the end and writes its files. Correctness is asserted (the flash
sale holds exactly its seats); speed never is: the numbers depend on the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.sizes import SIZES

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

    tiny = SIZES["tiny"]
    sale = results["scenarios"]["flash sale"]
    assert sale["held"] == tiny.seats
    assert sale["ledger"]["held"] == tiny.seats
    assert sale["rejected_409"] == tiny.buyers - tiny.seats
    assert sale["other"] == 0
    assert sale["late_409"] == tiny.late_buyers
    assert sale["audit_ok"] is True
    assert results["scenarios"]["floor vs real"]["real"]["placed"] == tiny.throughput_checkouts

    assert (out / "chart.png").stat().st_size > 0
    assert "## Performance" in (out / "README-performance.md").read_text()
    assert "scenario" in result.stdout
