"""What must hold after a chaos run, once every hold could have expired.

Per checkout (each can be traced to the faults it lived through):
- `settles`: a 201 checkout ends CONFIRMED, CANCELLED or EXPIRED (read back with GET /v1/checkouts/{id});
- `confirm is a sale`: a 200 confirm ends CONFIRMED; `cancel is no sale`: a 200 cancel never ends CONFIRMED;
- `holds agree`: its ledger holds agree with its status (CONFIRMED: one CONFIRMED hold per part; anything else:
  no hold ACTIVE or CONFIRMED);
- `one checkout per key`: every answer to its Idempotency-Key named the same checkout id;
- `no 500`: no request was answered 500 (503 + Retry-After is the answer for a dependency that is down).
For the whole run:
- `sold = confirmed`: each inventory row's `sold` equals the units of the CONFIRMED checkouts;
- `nothing held`: no row has `held` > 0 and no hold is ACTIVE;
- `ledger audit` and `saga audit`: GET /v1/audit?sagas=true (and `booking-saga audit --sagas`) answer ok.

The ledger is read with plain SQL, not through the code under test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg
import httpx

from chaos.load import SETTLED, CheckoutRecord, Customers, units
from services.registry import PARTICIPANTS

FINAL = (*SETTLED, "REJECTED", "FAILED")
# Every participant's ledger (its schema is its name) and the checkout-body field that reaches it.
LEDGER_SCHEMAS = tuple(p.name for p in PARTICIPANTS)
PART_SERVICES = {p.field: p.name for p in PARTICIPANTS}


@dataclass
class CheckoutVerdict:
    """Which per-checkout invariants one checkout broke (empty: none), with a line each saying how."""

    record: CheckoutRecord
    broken: dict[str, str] = field(default_factory=dict)


@dataclass
class GlobalCheck:
    name: str
    ok: bool
    detail: str


@dataclass
class LedgerState:
    holds: dict[str, str]  # hold key -> status
    rows: dict[tuple[str, str], tuple[int, int]]  # (service, resource) -> (held, sold)


async def settle(customers: Customers, records: list[CheckoutRecord], within: float) -> None:
    """Read every created checkout until it is final (or `within` seconds pass): its `final_status`."""
    created = [r for r in records if r.checkout_id is not None]
    deadline = time.monotonic() + within
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as http:

        async def follow(record: CheckoutRecord) -> None:
            assert record.checkout_id is not None
            while True:
                async with gate:
                    status, body = await customers.read(http, record.checkout_id)
                found = body.get("status") if status == 200 else None
                if isinstance(found, str):
                    record.final_status = found
                    if found in FINAL:
                        return
                if time.monotonic() > deadline:
                    return
                await asyncio.sleep(1.0)

        await asyncio.gather(*(follow(r) for r in created))


async def read_ledger(database_url: str, prefix: str) -> LedgerState:
    conn = await asyncpg.connect(database_url)
    try:
        holds: dict[str, str] = {}
        rows: dict[tuple[str, str], tuple[int, int]] = {}
        for schema in LEDGER_SCHEMAS:
            for row in await conn.fetch(f'SELECT hold_key, status FROM "{schema}".holds'):
                holds[row["hold_key"]] = row["status"]
            for row in await conn.fetch(
                f'SELECT resource, held, sold FROM "{schema}".inventory WHERE resource LIKE $1', f"{prefix}%"
            ):
                rows[(schema, row["resource"])] = (row["held"], row["sold"])
        return LedgerState(holds, rows)
    finally:
        await conn.close()


def judge_checkouts(records: Iterable[CheckoutRecord], ledger: LedgerState) -> list[CheckoutVerdict]:
    verdicts = []
    for record in records:
        verdict = CheckoutVerdict(record)
        broken = verdict.broken
        if len(record.ids_seen) > 1:
            broken["one checkout per key"] = f"key {record.key} answered {sorted(record.ids_seen)}"
        if record.created and record.final_status not in SETTLED:
            broken["settles"] = f"{record.checkout_id} ended {record.final_status}"
        if record.action_status == 200 and record.decision == "confirm" and record.final_status != "CONFIRMED":
            broken["confirm is a sale"] = f"{record.checkout_id}: confirm 200, ended {record.final_status}"
        if record.action_status == 200 and record.decision == "cancel" and record.final_status == "CONFIRMED":
            broken["cancel is no sale"] = f"{record.checkout_id}: cancel 200, ended CONFIRMED"
        problem = _holds_problem(record, ledger)
        if problem:
            broken["holds agree"] = problem
        verdicts.append(verdict)
    return verdicts


def _holds_problem(record: CheckoutRecord, ledger: LedgerState) -> str | None:
    checkout_id = record.checkout_id or next(iter(record.ids_seen), None)
    if checkout_id is None:
        return None
    services = [PART_SERVICES[part] for part in PART_SERVICES if part in record.body]
    found = {s: ledger.holds.get(f"{checkout_id}:{s}") for s in services}
    if record.final_status == "CONFIRMED":
        wrong = {s: status for s, status in found.items() if status != "CONFIRMED"}
        return f"{checkout_id} CONFIRMED but holds {wrong}" if wrong else None
    live = {s: status for s, status in found.items() if status in ("ACTIVE", "CONFIRMED")}
    return f"{checkout_id} {record.final_status or 'not placed'} but holds {live}" if live else None


def judge_ledger(records: Iterable[CheckoutRecord], ledger: LedgerState) -> list[GlobalCheck]:
    expected: dict[tuple[str, str], int] = {}
    for record in records:
        if record.final_status == "CONFIRMED":
            for row, quantity in units(record.body).items():
                expected[row] = expected.get(row, 0) + quantity
    mismatched = [
        f"{service}:{resource} sold {sold}, confirmed {expected.get((service, resource), 0)}"
        for (service, resource), (_held, sold) in sorted(ledger.rows.items())
        if sold != expected.get((service, resource), 0)
    ]
    missing = [f"{s}:{r}" for (s, r) in expected if (s, r) not in ledger.rows]
    held_rows = [f"{s}:{r} held {held}" for (s, r), (held, _sold) in sorted(ledger.rows.items()) if held]
    active = sorted(key for key, status in ledger.holds.items() if status == "ACTIVE")
    total_sold = sum(sold for _held, sold in ledger.rows.values())
    return [
        GlobalCheck("sold = confirmed", not mismatched and not missing,
                    "; ".join((mismatched + missing)[:5]) or f"{len(ledger.rows)} rows, {total_sold} units sold"),
        GlobalCheck("nothing held", not held_rows and not active,
                    "; ".join(held_rows[:3] + active[:3]) or f"{len(ledger.holds)} holds, none ACTIVE"),
    ]


async def audits(api_url: str, operator_token: str) -> list[GlobalCheck]:
    """GET /v1/audit?sagas=true: the ledger audit and the saga-vs-ledger audit, as an operator asks for them."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as http:
        for _attempt in range(10):
            response = await http.get(f"{api_url}/v1/audit", params={"sagas": "true"},
                                      headers={"Authorization": f"Bearer {operator_token}"})
            if response.status_code != 503:
                break
            await asyncio.sleep(2)
    if response.status_code != 200:
        detail = f"answered {response.status_code}: {response.text[:300]}"
        return [GlobalCheck("ledger audit", False, detail), GlobalCheck("saga audit", False, detail)]
    report = response.json()
    sagas = report.get("sagas") or {}
    checked = sagas.get("checked", {})
    return [
        GlobalCheck("ledger audit", not report["violations"],
                    "; ".join(f"{v['service']}:{v['resource']} {v['problem']}" for v in report["violations"][:3])
                    or "no violation"),
        GlobalCheck("saga audit", bool(sagas.get("ok")),
                    "; ".join(f"{v['kind']} {v['checkout_id']}" for v in sagas.get("violations", [])[:3])
                    or f"no violation ({checked.get('checkouts', 0)} checkouts, {checked.get('holds', 0)} holds)"),
    ]
