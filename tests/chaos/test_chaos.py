"""The chaos suite, short: about a minute of load on the production shape (real processes started with the
project's own commands) with at least one fault of each kind, then every invariant of chaos.invariants.

`booking-saga chaos --minutes N` runs the long one and prints the same table.
"""

from __future__ import annotations

import os

import pytest

from chaos.faults import FAULT_KINDS
from chaos.run import ChaosConfig, run_chaos

# Minutes of load plus the stack's start: longer than the default per-test timeout (pyproject).
pytestmark = [pytest.mark.slow, pytest.mark.devserver, pytest.mark.timeout(900)]

MINUTES = float(os.environ.get("CHAOS_MINUTES", "1"))


def test_invariants_hold_through_faults() -> None:
    report = run_chaos(ChaosConfig(minutes=MINUTES, faults=len(FAULT_KINDS)), log=False)
    print(report.render())

    assert {f.kind for f in report.faults} == set(FAULT_KINDS)
    assert not [f for f in report.faults if f.error], [f.error for f in report.faults]
    assert any(v.record.created for v in report.verdicts), "no checkout was placed at all"
    broken = report.broken_examples(limit=20)
    assert not broken, "\n".join(broken)
    failed = [f"{c.name}: {c.detail}" for c in report.checks if not c.ok]
    assert not failed, "\n".join(failed)
    assert report.ok
