"""The chaos report on made-up runs (no processes): faults, exposure windows, per-checkout and ledger verdicts."""

from __future__ import annotations

from chaos.faults import FAULT_KINDS, Fault, plan
from chaos.invariants import LedgerState, judge_checkouts, judge_ledger
from chaos.load import Answer, CheckoutRecord, units
from chaos.report import ChaosReport

BODY: dict[str, object] = {
    "customer_id": "c", "flight": {"flight_id": "F1", "seat_class": "economy", "seats": 2},
    "hotel": {"hotel_id": "H1", "room_type": "deluxe", "check_in": "2031-01-01", "check_out": "2031-01-03",
              "rooms": 1},
    "car": {"depot_id": "D1", "car_class": "van", "pick_up": "2031-01-01", "drop_off": "2031-01-03", "cars": 2},
    "items": [{"sku": "S1", "quantity": 3}],
}


def record(checkout_id: str, decision: str, final: str, *, started: float, ended: float) -> CheckoutRecord:
    found = CheckoutRecord(key=f"k-{checkout_id}", customer="c", body=BODY, hold_seconds=5,
                           decision=decision, started_at=started, ended_at=ended)  # type: ignore[arg-type]
    found.post_status, found.checkout_id, found.final_status = 201, checkout_id, final
    found.ids_seen = {checkout_id}
    found.action_status = 200 if decision != "expire" else None
    return found


def test_units_name_the_ledger_rows() -> None:
    assert units(BODY) == {("flight", "F1/economy"): 2, ("hotel", "H1/deluxe/2031-01-01"): 1,
                           ("hotel", "H1/deluxe/2031-01-02"): 1, ("orders", "S1"): 3,
                           ("cars", "D1/van/2031-01-01"): 2, ("cars", "D1/van/2031-01-02"): 2}


def test_every_kind_is_planned_at_least_once() -> None:
    import random

    assert set(plan(1, random.Random(1))) == set(FAULT_KINDS)
    assert len(plan(15, random.Random(1))) == 15


def test_a_clean_run_and_a_broken_one() -> None:
    sold = record("co-1", "confirm", "CONFIRMED", started=0, ended=3)
    cancelled = record("co-2", "cancel", "CANCELLED", started=10, ended=12)
    holds = {f"co-1:{s}": "CONFIRMED" for s in ("flight", "hotel", "cars", "orders")}
    holds |= {f"co-2:{s}": "RELEASED" for s in ("flight", "hotel", "cars", "orders")}
    rows = {row: (0, n) for row, n in units(BODY).items()}
    ledger = LedgerState(holds, rows)
    faults = [Fault("postgres", "postgres", 1.0, 2.0)]
    clean = ChaosReport(1, faults, judge_checkouts([sold, cancelled], ledger), [], judge_ledger([sold, cancelled],
                                                                                              ledger))
    assert clean.ok, clean.render()
    assert "| postgres | 1 | 1 | ok | ok | ok | ok | ok | 0 | - |" in clean.table()

    holds["co-2:hotel"] = "ACTIVE"
    cancelled.ids_seen.add("co-9")
    answers = [Answer(1.5, "POST", "/v1/checkouts", 500, 0, "boom")]
    broken = ChaosReport(1, faults, judge_checkouts([sold, cancelled], ledger), answers,
                         judge_ledger([sold, cancelled], ledger))
    assert not broken.ok
    assert "| postgres | 1 | 1 | ok | ok | ok | ok | ok | **1** | 0 |" in broken.table()
    assert "| none (calm) | - | 1 | ok | ok | ok | **1 broken** | **1 broken** | 0 | - |" in broken.table()
    assert [c.name for c in broken.checks if not c.ok] == ["nothing held"]
    assert "500 on POST /v1/checkouts: boom" in broken.render()
