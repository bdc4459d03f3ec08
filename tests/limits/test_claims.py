"""Per-customer limits at the service (services/customer_limits.py) on real PostgreSQL: exact under concurrency,
a checkout id counted once, freed by `release` and by `expire_overdue`, an already started id never counted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.customer_limits import CustomerLimits, LimitExceeded
from services.db import create_engine
from services.started_checkouts import StartedCheckouts

HOUR = timedelta(hours=1)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url)
    yield engine
    await engine.dispose()


async def claimed(engine: AsyncEngine, customer: str) -> int:
    """The customer's claims as stored (live or not)."""
    async with engine.connect() as conn:
        query = text("SELECT count(*) FROM checkout.claims WHERE customer_id = :c")
        return int((await conn.execute(query, {"c": customer})).scalar_one())


async def has_claim(engine: AsyncEngine, checkout_id: str) -> bool:
    async with engine.connect() as conn:
        query = text("SELECT EXISTS (SELECT 1 FROM checkout.claims WHERE checkout_id = :id)")
        return bool((await conn.execute(query, {"id": checkout_id})).scalar_one())


async def outcomes(attempts: Sequence[Awaitable[bool]]) -> tuple[int, list[LimitExceeded]]:
    """Run the claims at once: how many passed, and the refusals; anything else fails the test."""
    results = await asyncio.gather(*attempts, return_exceptions=True)
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, LimitExceeded)]
    assert not others, others
    return sum(r is True for r in results), refused


async def test_twenty_concurrent_checkouts_of_one_customer_exactly_three_claimed(engine: AsyncEngine) -> None:
    limits = CustomerLimits(engine, 3, 9, HOUR)
    customer = unique("cust")
    attempts = [limits.claim(unique("co"), customer, {("orders", unique("sku")): 1}) for _ in range(20)]
    passed, refused = await outcomes(attempts)
    assert passed == 3
    assert refused == [LimitExceeded("active_checkouts", 3, 3)] * 17
    assert await claimed(engine, customer) == 3


async def test_units_of_one_row_add_up_across_checkouts(engine: AsyncEngine) -> None:
    limits = CustomerLimits(engine, 3, 9, HOUR)
    customer, row = unique("cust"), ("flight", unique("F"))
    await limits.claim(unique("co"), customer, {row: 4})
    await limits.claim(unique("co"), customer, {row: 4})
    with pytest.raises(LimitExceeded) as over:
        await limits.claim(unique("co"), customer, {row: 2})
    assert over.value == LimitExceeded("units_per_row", 8, 9, f"flight:{row[1]}")
    assert await claimed(engine, customer) == 2  # the refused one holds nothing
    await limits.claim(unique("co"), customer, {row: 1})
    assert await claimed(engine, customer) == 3


async def test_units_limit_exact_under_concurrency_with_checkout_limit_off(engine: AsyncEngine) -> None:
    limits = CustomerLimits(engine, 0, 9, HOUR)
    customer, row = unique("cust"), ("orders", unique("sku"))
    attempts = [limits.claim(unique("co"), customer, {row: 1}) for _ in range(20)]
    passed, refused = await outcomes(attempts)
    assert passed == 9
    assert refused == [LimitExceeded("units_per_row", 9, 9, f"orders:{row[1]}")] * 11
    assert await claimed(engine, customer) == 9


async def test_the_same_checkout_claimed_twice_counts_once(engine: AsyncEngine) -> None:
    limits = CustomerLimits(engine, 3, 9, HOUR)
    customer, checkout, row = unique("cust"), unique("co"), ("orders", unique("sku"))
    assert await limits.claim(checkout, customer, {row: 5})
    assert not await limits.claim(checkout, customer, {row: 5})  # a retried POST: already started
    assert await claimed(engine, customer) == 1
    await limits.claim(unique("co"), customer, {row: 4})  # 5 + 4: the retry did not add its 5 units
    await limits.claim(unique("co"), customer, {})
    with pytest.raises(LimitExceeded) as over:
        await limits.claim(unique("co"), customer, {})
    assert over.value == LimitExceeded("active_checkouts", 3, 3)


async def test_release_frees_the_claim(engine: AsyncEngine) -> None:
    limits = CustomerLimits(engine, 3, 9, HOUR)
    customer = unique("cust")
    checkouts = [unique("co") for _ in range(3)]
    for checkout in checkouts:
        await limits.claim(checkout, customer, {("orders", unique("sku")): 1})
    with pytest.raises(LimitExceeded):
        await limits.claim(unique("co"), customer, {})
    assert await limits.release(checkouts[0]) is True
    assert await limits.release(checkouts[0]) is False  # idempotent
    assert await claimed(engine, customer) == 2
    await limits.claim(unique("co"), customer, {("orders", unique("sku")): 1})
    assert await claimed(engine, customer) == 3


async def test_release_frees_the_units_too(engine: AsyncEngine) -> None:
    limits = CustomerLimits(engine, 0, 9, HOUR)
    customer, row, first = unique("cust"), ("hotel", unique("H")), unique("co")
    await limits.claim(first, customer, {row: 9})
    with pytest.raises(LimitExceeded):
        await limits.claim(unique("co"), customer, {row: 1})
    await limits.release(first)
    await limits.claim(unique("co"), customer, {row: 9})


async def test_an_already_started_checkout_is_not_counted(engine: AsyncEngine) -> None:
    limits = CustomerLimits(engine, 3, 9, HOUR)
    customer, checkout = unique("cust"), unique("co")
    await StartedCheckouts(engine).record(checkout)  # its saga exists (a retry of a checkout placed earlier)
    await limits.claim(checkout, customer, {("orders", unique("sku")): 1})
    assert not await has_claim(engine, checkout)
    assert await claimed(engine, customer) == 0


async def test_a_claim_records_its_checkout_as_started(engine: AsyncEngine) -> None:
    limits = CustomerLimits(engine, 3, 9, HOUR)
    checkout = unique("co")
    await limits.claim(checkout, unique("cust"), {})
    assert await StartedCheckouts(engine).has(checkout)


async def test_a_refused_claim_records_nothing(engine: AsyncEngine) -> None:
    limits = CustomerLimits(engine, 1, 9, HOUR)
    customer, refused = unique("cust"), unique("co")
    await limits.claim(unique("co"), customer, {})
    with pytest.raises(LimitExceeded):
        await limits.claim(refused, customer, {})
    assert not await StartedCheckouts(engine).has(refused)
    assert not await has_claim(engine, refused)


async def test_expire_overdue_removes_only_claims_past_their_expiry(engine: AsyncEngine) -> None:
    customer, lost, live = unique("cust"), unique("co"), unique("co")
    await CustomerLimits(engine, 3, 9, timedelta(microseconds=1)).claim(lost, customer, {("orders", "x"): 1})
    await CustomerLimits(engine, 3, 9, HOUR).claim(live, customer, {("orders", "x"): 1})
    expired = await CustomerLimits(engine, 3, 9, HOUR).expire_overdue(datetime.now(UTC) + timedelta(seconds=1), 0)
    assert expired >= 1  # other tests' claims live an hour: only ones as short as this could go too
    assert not await has_claim(engine, lost)
    assert await has_claim(engine, live)


async def test_an_overdue_claim_no_longer_counts_even_before_the_sweep(engine: AsyncEngine) -> None:
    customer, overdue, second, third = unique("cust"), unique("co"), unique("co"), unique("co")
    await CustomerLimits(engine, 1, 9, timedelta(microseconds=1)).claim(overdue, customer, {})
    await CustomerLimits(engine, 1, 9, HOUR).claim(second, customer, {})  # passes: the first one is overdue
    assert await has_claim(engine, overdue), "not swept yet: it is still there, only no longer counted"
    assert await has_claim(engine, second)
    # The live one does count: the limit of one is reached again.
    with pytest.raises(LimitExceeded) as refused:
        await CustomerLimits(engine, 1, 9, HOUR).claim(third, customer, {})
    assert refused.value.limit == "active_checkouts" and not await has_claim(engine, third)
