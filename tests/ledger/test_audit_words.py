"""What the ledger says, not only that it says something: the audit's words for each broken counter, a refusal
recorded for an unknown resource answered again as the same refusal, and the prices read back. Each test here
kills mutants that survived `make mutation` (docs/testing.md): the older tests checked only that a violation
exists, or that a refusal is raised the first time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.errors import Unavailable, UnknownResource
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.orders.service import OrdersService
from services.registry import AnyService
from services.types import Price
from tests.ledger.helpers import assert_ledger_clean, later, unique

SHIFT = {
    "held": text("UPDATE orders.inventory SET held = held + :delta WHERE sku = :sku"),
    "sold": text("UPDATE orders.inventory SET sold = sold + :delta WHERE sku = :sku"),
}


@asynccontextmanager
async def shifted(engine: AsyncEngine, counter: str, sku: str) -> AsyncIterator[None]:
    """One unit too many on `counter` of the row, put back afterwards whatever the test did."""
    async with engine.begin() as conn:
        assert (await conn.execute(SHIFT[counter], {"delta": 1, "sku": sku})).rowcount == 1
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(SHIFT[counter], {"delta": -1, "sku": sku})


async def problems_of(orders: OrdersService, sku: str) -> list[str]:
    return [v.problem for v in await orders.audit() if v.resource == sku]


def two_of(sku: str) -> ItemsRequest:
    return ItemsRequest(items=[ItemLine(sku=sku, quantity=2)])


async def test_the_audit_names_held_against_its_active_lines(
    engine: AsyncEngine, orders: OrdersService, services: dict[str, AnyService]
) -> None:
    sku, key = unique("SKU-words"), unique("wf") + ":orders"
    await orders.upsert(sku, ItemInventory(stock=5))
    await orders.hold(key, two_of(sku), later())
    assert await problems_of(orders, sku) == []
    async with shifted(engine, "held", sku):
        # Exactly this problem: not the sold one, not the bounds one (sold is 0 and within bounds).
        assert await problems_of(orders, sku) == ["held 3 != 2 in ACTIVE holds"]
    await orders.release(key)
    await assert_ledger_clean(services)


async def test_the_audit_names_sold_against_its_confirmed_lines(
    engine: AsyncEngine, orders: OrdersService, services: dict[str, AnyService]
) -> None:
    sku, key = unique("SKU-words"), unique("wf") + ":orders"
    await orders.upsert(sku, ItemInventory(stock=5))
    await orders.hold(key, two_of(sku), later())
    await orders.confirm(key)
    async with shifted(engine, "sold", sku):
        assert await problems_of(orders, sku) == ["sold 3 != 2 in CONFIRMED holds"]
    await assert_ledger_clean(services)


async def test_both_counters_wrong_are_both_named(
    engine: AsyncEngine, orders: OrdersService, services: dict[str, AnyService]
) -> None:
    sku, held_key, sold_key = unique("SKU-words"), unique("wf") + ":orders", unique("wf") + ":orders"
    await orders.upsert(sku, ItemInventory(stock=6))
    await orders.hold(sold_key, two_of(sku), later())
    await orders.confirm(sold_key)
    await orders.hold(held_key, two_of(sku), later())
    async with shifted(engine, "held", sku), shifted(engine, "sold", sku):
        assert await problems_of(orders, sku) == [
            "held 3 != 2 in ACTIVE holds; sold 3 != 2 in CONFIRMED holds"
        ]
    await orders.release(held_key)
    await assert_ledger_clean(services)


async def test_a_refusal_for_an_unknown_resource_is_answered_again_as_recorded(orders: OrdersService) -> None:
    key, missing = unique("wf") + ":orders", unique("NO")
    for _ in range(2):  # the second answer is the recorded refusal (a retried activity), never a shortage
        with pytest.raises(UnknownResource) as refused:
            await orders.hold(key, two_of(missing), later())
        assert not isinstance(refused.value, Unavailable)
        assert missing in str(refused.value)


async def test_prices_read_back_each_rows_amount_and_currency(orders: OrdersService) -> None:
    priced, unpriced = unique("SKU-priced"), unique("SKU-unpriced")
    await orders.upsert(priced, ItemInventory(stock=3, price=1_250, currency="EUR"))
    await orders.upsert(unpriced, ItemInventory(stock=3))
    assert await orders.prices([priced, unpriced, unique("NO")]) == {
        priced: Price(amount=1_250, currency="EUR"),
        unpriced: None,
    }


@pytest.mark.parametrize(
    ("held", "sold", "words"),
    [
        (4, 3, "counters out of bounds: capacity 5, held 4, sold 3"),
        (-1, 0, "counters out of bounds: capacity 5, held -1, sold 0"),
        (0, -1, "counters out of bounds: capacity 5, held 0, sold -1"),
    ],
)
def test_the_audit_names_counters_out_of_bounds(orders: OrdersService, held: int, sold: int, words: str) -> None:
    """The table's CHECK keeps such a row out of a healthy database, so the words are read from the audit's own
    judgement of a row as the audit query returns it (a database restored without its constraints is what the
    audit is for)."""
    row = {"resource": "SKU-X", "capacity": 5, "held": held, "active": held, "sold": sold, "confirmed": sold}
    violation = orders.ledger._violation(row)  # type: ignore[arg-type]
    assert (violation.service, violation.resource, violation.problem) == ("orders", "SKU-X", words)
