"""`booking-saga bench --size tiny` runs to the end and writes its files. Correctness is asserted (every shape placed
every checkout in its own placement, the whole booking's were paid and sent webhooks, the flash sale holds exactly
its seats); speed never is: the numbers depend
on the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scenarios.shapes import (
    PHASE_LEVEL,
    PHASES,
    SHAPES,
    STEP_LEVEL,
    STEP_LEVELS,
    STEP_PLAIN,
    STEP_RUNS,
    STEPS,
    WHOLE_LOCAL,
)
from bench.sizes import LEVELS, SIZES

# Minutes of load plus the stack's start: longer than the default per-test timeout (pyproject).
pytestmark = [pytest.mark.slow, pytest.mark.devserver, pytest.mark.timeout(900)]

SCENARIOS = ("floor vs real", "latency", "steps", "flash sale", "http floor", "ledger only", "hot row",
             "cancelling sales", "webhooks", "record writes", "first-task patches", "memory")


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
        assert targeted[f"whole booking (local) checkouts/s at c={concurrency}"]["baseline_name"] == "best floor"
    for concurrency in (1, 5):
        assert targeted[f"whole booking (local) p50 at c={concurrency}"]["target_text"] == "<= 1.25x"
    assert targeted["whole booking (local) p99 at c=10"]["target_text"] == "<= 1.3x"
    assert targeted["whole booking (local) checkouts/s at c=5"]["target_text"] == ">= 0.85x"
    assert targeted["sold-out answers/s (c=20)"]["target_text"] == ">= 0.5x"
    assert targeted["delivery lag p99 (commit -> 2xx)"]["target_text"] == "<= 1000 ms"

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
        # One patch marker: the saga asks patches-asked-at-start-quote-included in its first task and no other
        # patch, a paid one quoted by the API included.
        assert steps["patch_markers"] == 1, (shape.key, steps)
        spent: dict[str, float] = {}
        for concurrency, level in run["levels"].items():
            assert level["placed"] == tiny.levels[int(concurrency)], (shape.key, concurrency, level["not_placed"])
            # CPU metered while the level's clock ran; the relay and the receiver only where webhooks are on.
            cpu = level["cpu_ms_per_checkout"]
            assert ("relay" in cpu and "receiver" in cpu) == shape.webhooks, (shape.key, cpu)
            assert cpu["total"] == pytest.approx(sum(v for name, v in cpu.items() if name not in ("total", "bench")),
                                                 abs=0.05)
            for name, value in cpu.items():
                spent[name] = spent.get(name, 0.0) + value
        # Where one checkout in flight spends its time, read from the placed checkouts' histories: every phase,
        # in order, from every placed checkout of that level, and the first workflow task takes time.
        at_phase_level = run["levels"][str(PHASE_LEVEL)]
        assert list(at_phase_level["phases_p50_ms"]) == list(PHASES), (shape.key, at_phase_level)
        assert at_phase_level["phases_sampled"] == at_phase_level["placed"], (shape.key, at_phase_level)
        assert at_phase_level["phases_p50_ms"]["first task: the rest"] > 0, (shape.key, at_phase_level)
        # Local holds run in the first task, and their markers say when they completed; remote holds come later.
        first_stage = at_phase_level["phases_p50_ms"]["first task: first stage held"]
        assert (first_stage > 0) == (shape.placement == "local"), (shape.key, at_phase_level)
        # Summed over the levels, because a tiny level's few checkouts can fall between two clock ticks of one process.
        # PostgreSQL's backends count only where the checkout touches the database: the floor's no-op holds never do,
        # so its PostgreSQL may rightly read zero.
        metered = ("api", "workers", "temporal") + (() if shape.noop else ("postgres",))
        assert all(spent[name] > 0 for name in metered), (shape.key, spent)
    assert next(f for f in figures if f["name"].startswith("checkouts not placed"))["value"] == 0
    # The relay's cuts against its former statements, its former client (httpx) and a round per commit, same load:
    # every event of every arm delivered, CPU metered.
    by_name = {f["name"]: f for f in figures}
    assert by_name["cut: events not delivered"]["value"] == 0
    for name in ("cut: relay CPU per event", "cut: PostgreSQL CPU per event",
                 "cut: relay CPU per event, aiohttp client", "cut: delivery lag p50, aiohttp client",
                 "cut: relay CPU per event, rounds batched", "cut: PostgreSQL CPU per event, rounds batched",
                 "cut: delivery lag p99, rounds batched"):
        assert by_name[name]["value"] > 0 and by_name[name]["baseline"] > 0, by_name[name]
    arms = results["scenarios"]["relay round trips"]
    assert [len(arms[arm]) for arm in ("one round trip", "former", "httpx", "per commit")] == [2, 1, 1, 1]
    assert all(run["events"] > 0 for runs in arms.values() for run in runs)

    # The whole booking: every checkout placed and paid (a wallet hold in its answer, and its customer's wallet
    # authorizing exactly its total), and the relay delivered webhooks to the receiver.
    whole = measured[WHOLE_LOCAL.key]
    assert whole["steps"] == {"codec": True, "rate_limit": True, "webhooks": True, "paid": True}
    for level in whole["levels"].values():
        assert level["paid"] == level["placed"], level
    assert whole["wallets_authorized"] == whole["placed"] == whole["checkouts"] > 0
    assert whole["webhooks_delivered"] > 0

    # Each step alone at its level, beside the plain real checkout: both sides measured, every checkout placed.
    steps = results["scenarios"]["steps"]
    # Measured in that order (plain, step, plain, ...), each step against the two plain runs either side, pooled.
    assert list(steps["runs"]) == [shape.key for shape in STEP_RUNS]
    for row, (_, with_it, without) in zip(steps["table"], STEPS, strict=True):
        # The plain side pools two runs; a cut between two variants (the payment beside the holds) has one each.
        runs_pooled = sorted(2 if side == STEP_PLAIN else 1 for side in (with_it, without))
        assert sorted(row["checkouts"]) == [n * tiny.levels[STEP_LEVEL] for n in runs_pooled], row
    for key, run in steps["runs"].items():
        wanted = sum(tiny.levels[c] for c in STEP_LEVELS)
        assert run["placed"] == run["checkouts"] == wanted, (key, run["levels"])
    assert [row["step"] for row in steps["table"]] == [step for step, _, _ in STEPS]
    assert all(value > 0 for row in steps["table"] for value in row["per_second"]), steps["table"]
    assert all(cpu["total"] > 0 for row in steps["table"] for cpu in row["cpu_ms_per_checkout"]), steps["table"]
    for key in ("step_wallet", "step_wallet_after", "step_all"):
        assert steps["runs"][key]["wallets_authorized"] == steps["runs"][key]["checkouts"], key
    # Every step at c=1 too: both sides' answers and every phase of each (the plain side pooled).
    for row in steps["table"]:
        one = row["at_phase_level"]
        assert all(p50 > 0 for p50 in one["p50_ms"]), row
        assert all(list(phases) == list(PHASES) for phases in one["phases_p50_ms"]), row
        figure = by_name[f"{row['step']}: p50 at c={PHASE_LEVEL}"]
        assert (figure["value"], figure["baseline"]) == tuple(one["p50_ms"]), figure
    for key in ("step_webhooks", "step_webhooks_per_commit", "step_all"):
        assert steps["runs"][key]["webhooks_delivered"] >= steps["runs"][key]["placed"], key

    sale = results["scenarios"]["flash sale"]
    assert sale["held"] == tiny.seats
    assert sale["ledger"]["held"] == tiny.seats
    assert sale["rejected_409"] == tiny.buyers - tiny.seats
    assert sale["other"] == 0
    assert sale["late_409"] == tiny.late_buyers
    assert sale["audit_ok"] is True

    # The hot row, the HTTP floor and cancelling sales: each side measured and reported beside its baseline.
    scenarios = results["scenarios"]
    for scenario in ("hot row", "http floor", "cancelling sales"):
        rates = [f for f in figures if f["scenario"] == scenario and f["unit"] == "/s"]
        assert rates and all(f["value"] > 0 and f["baseline"] > 0 for f in rates), (scenario, rates)
    hot = scenarios["hot row"]["sides"]
    # The row resolved first: the named statement's "without"; the former transaction: the one-statement take's.
    assert set(hot) == {"services", "raw", "resolved", "former"}
    assert all(side["holds"] > 0 and side["lock_samples"] > 0 and side["failures"] == 0 for side in hot.values()), hot
    assert set(scenarios["ledger only"]["per_second"]) == {"services", "raw", "resolved", "former"}
    # The record write's cuts: every arm wrote every checkout twice, nothing failed.
    records = scenarios["record writes"]
    writes = records["writes"]
    assert records["failures"] == 0 and writes["today"] == writes["locked"] == writes["former"] > 0, writes
    # The first task's patches: both arms ran every workflow, and a second patch is two more events (its marker and
    # its TemporalChangeVersion upsert).
    patched = scenarios["first-task patches"]
    assert patched["failures"] == 0 and patched["workflows"]["one"] == patched["workflows"]["two"] > 0
    assert patched["events"]["two"] == patched["events"]["one"] + 2, patched["events"]
    floor = scenarios["http floor"]
    assert floor["other_statuses"] == {"sold-out lane": [], "bare ASGI": []}
    cancelled = scenarios["cancelling sales"]
    # Both sides of the cut cancelled every sale; the record's three activities (read, windows, write) were activity
    # tasks in the former side's histories only.
    for side in (cancelled, cancelled["activity_tasks"]):
        assert side["placed"] == side["confirmed"] == side["cancelled"] > 0, side
    assert (cancelled["record_tasks"], cancelled["activity_tasks"]["record_tasks"]) == (0, 3)
    assert cancelled["item_after"]["held"] == cancelled["item_after"]["sold"] == 0
    assert cancelled["audit_ok"] is True

    assert (out / "chart.png").stat().st_size > 0
    section = (out / "performance.md").read_text()
    assert "## The last full run" in section
    assert all(shape.label in section for shape in SHAPES)
    assert "scenario" in result.stdout
