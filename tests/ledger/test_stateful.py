"""Hypothesis: random hold / confirm / release / extend / expire / duplicate sequences against a small model.

The state machine runs on its own event loop and engine (Hypothesis drives it synchronously).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from services.db import create_engine
from services.errors import HoldNotActive, Unavailable
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.orders.service import OrdersService
from services.types import HoldStatus

STOCK = 4
KEYS = [f"k{i}" for i in range(5)]
GRACE = 60


async def together(*coroutines):  # type: ignore[no-untyped-def]
    """gather inside the machine's own loop (asyncio.gather outside a running loop picks another one)."""
    return await asyncio.gather(*coroutines)


@dataclass
class ModelHold:
    status: HoldStatus
    lines: dict[str, int] = field(default_factory=dict)
    overdue: bool = False


class LedgerMachine(RuleBasedStateMachine):
    database_url: str

    @initialize()
    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(self.database_url, pool_size=2)
        self.orders = OrdersService(self.engine)
        run = uuid.uuid4().hex[:8]
        self.skus = [f"A-{run}", f"B-{run}"]
        self.prefix = f"wf-{run}"
        for sku in self.skus:
            self.run(self.orders.upsert(sku, ItemInventory(stock=STOCK)))
        self.model: dict[str, ModelHold] = {}

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.run(self.engine.dispose())
            self.loop.close()

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def counters(self, status: HoldStatus) -> dict[str, int]:
        totals = dict.fromkeys(self.skus, 0)
        for hold in self.model.values():
            if hold.status is status:
                for sku, quantity in hold.lines.items():
                    totals[sku] += quantity
        return totals

    def expect_hold(self, name: str, lines: dict[str, int], overdue: bool) -> HoldStatus | type[Exception]:
        """What the ledger must answer, updating the model."""
        known = self.model.get(name)
        if known is not None:
            if known.status in (HoldStatus.ACTIVE, HoldStatus.CONFIRMED):
                return known.status
            return Unavailable if known.status is HoldStatus.REJECTED else HoldNotActive
        taken = self.counters(HoldStatus.ACTIVE)
        sold = self.counters(HoldStatus.CONFIRMED)
        if all(taken[sku] + sold[sku] + q <= STOCK for sku, q in lines.items()):
            self.model[name] = ModelHold(HoldStatus.ACTIVE, lines, overdue)
            return HoldStatus.ACTIVE
        self.model[name] = ModelHold(HoldStatus.REJECTED)
        return Unavailable

    async def outcome(self, coroutine) -> HoldStatus | type[Exception]:  # type: ignore[no-untyped-def]
        try:
            return (await coroutine).status
        except (Unavailable, HoldNotActive) as error:
            return type(error)

    @rule(
        name=st.sampled_from(KEYS),
        a=st.integers(0, 3),
        b=st.integers(0, 3),
        overdue=st.booleans(),
        copies=st.integers(1, 2),
    )
    def hold(self, name: str, a: int, b: int, overdue: bool, copies: int) -> None:
        lines = {sku: q for sku, q in zip(self.skus, (a, b), strict=True) if q}
        if not lines:
            lines = {self.skus[0]: 1}
        expires = datetime.now(UTC) + (timedelta(hours=-1) if overdue else timedelta(hours=1))
        request = ItemsRequest(items=[ItemLine(sku=sku, quantity=q) for sku, q in lines.items()])
        # `copies` = 2 delivers the same hold twice at once (two workers picking up the same task).
        answers = self.run(
            together(*(self.outcome(self.orders.hold(self.key(name), request, expires)) for _ in range(copies)))
        )
        expected = self.expect_hold(name, lines, overdue)
        assert answers == [expected] * copies, (answers, expected)

    @rule(name=st.sampled_from(KEYS))
    def confirm(self, name: str) -> None:
        answer = self.run(self.outcome(self.orders.confirm(self.key(name))))
        known = self.model.get(name)
        if known is not None and known.status in (HoldStatus.ACTIVE, HoldStatus.CONFIRMED):
            known.status = HoldStatus.CONFIRMED
            assert answer is HoldStatus.CONFIRMED
        else:
            assert answer is HoldNotActive

    @rule(name=st.sampled_from(KEYS))
    def release(self, name: str) -> None:
        answer = self.run(self.outcome(self.orders.release(self.key(name))))
        known = self.model.get(name)
        if known is None:
            self.model[name] = ModelHold(HoldStatus.RELEASED)
            assert answer is HoldStatus.RELEASED
        elif known.status is HoldStatus.CONFIRMED:
            assert answer is HoldNotActive
        else:
            if known.status is HoldStatus.ACTIVE:
                known.status = HoldStatus.RELEASED
            assert answer is known.status

    @rule(name=st.sampled_from(KEYS))
    def extend(self, name: str) -> None:
        answer = self.run(
            self.outcome(self.orders.extend(self.key(name), datetime.now(UTC) + timedelta(hours=1)))
        )
        known = self.model.get(name)
        if known is not None and known.status is HoldStatus.ACTIVE:
            known.overdue = False
            assert answer is HoldStatus.ACTIVE
        else:
            assert answer is HoldNotActive

    @rule()
    def sweep(self) -> None:
        expired = self.run(self.orders.ledger.expire_overdue(datetime.now(UTC), GRACE))
        due = [h for name, h in self.model.items() if h.status is HoldStatus.ACTIVE and h.overdue]
        for hold in due:
            hold.status = HoldStatus.EXPIRED
        # The sweeper covers the whole service, other tests' overdue holds too.
        assert expired >= len(due)

    @invariant()
    def counters_match_model(self) -> None:
        if not hasattr(self, "model"):
            return
        held, sold = self.counters(HoldStatus.ACTIVE), self.counters(HoldStatus.CONFIRMED)
        for sku in self.skus:
            row = self.run(self.orders.availability(sku))
            assert (row.held, row.sold) == (held[sku], sold[sku]), (sku, row)
        # This machine's rows only: the audit reads the whole schema, which other tests' rows share.
        assert [v for v in self.run(self.orders.audit()) if v.resource in self.skus] == []


def test_ledger_matches_model(migrated_database_url: str) -> None:
    LedgerMachine.database_url = migrated_database_url
    LedgerMachine.TestCase.settings = settings(
        max_examples=25, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    LedgerMachine.TestCase().runTest()
