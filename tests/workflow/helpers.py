"""Helpers for saga tests: fault injection around a real service, inventory seeding, starting checkouts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from services.customer_limits import CustomerLimits
from services.errors import Busy, InvalidRequest
from services.flight.schemas import FlightInventory, FlightRequest
from services.hotel.schemas import HotelInventory, HotelRequest, StayQuery
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.registry import NAMES, AnyService, local_names
from services.types import Frozen, HoldResult, Money
from services.wallet.schemas import WalletBody, WalletRequest
from settings import Settings
from tests.waiting import eventually
from workflows import search_attributes
from workflows.checkout_saga import CheckoutSaga
from workflows.models import SUBMIT, CheckoutInput, CheckoutRequest, CheckoutView
from workflows.summaries import checkout_summary

__all__ = ["eventually"]  # re-exported: the saga tests' helpers in one import

_INDEX_TYPES = {
    "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "KEYWORD_LIST": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


async def register_search_attributes(client: Client) -> None:
    """The time-skipping server knows no custom search attributes until told (the dev server gets flags)."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={key.name: _INDEX_TYPES[key.indexed_value_type.name] for key in search_attributes.ALL},
        )
    )


@dataclass
class FaultyService:
    """A real InventoryService with switchable faults, registered under the real activity names.

    - fail_times[op] = n: the next n calls of `op` raise Busy (retryable) before touching the ledger.
    - hang_after_hold: hold commits, then does not answer until `unblock` is set (its result is lost).
    - hang_before_hold: hold waits until `unblock` is set, then reaches the ledger (a late delivery).
    - hang_after_confirm: confirm commits, sets `confirmed`, then does not answer until `unblock` is set.
    - refuse = {op, ...}: every call of `op` fails with a non-retryable error (not a shortage) before the ledger.
    `clear()` (after every test) sets `unblock`: nothing stays hung into the next test.
    """

    real: AnyService
    fail_times: dict[str, int] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)
    hang_after_hold: bool = False
    hang_before_hold: bool = False
    hang_after_confirm: bool = False
    unblock: asyncio.Event = field(default_factory=asyncio.Event)
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    late_hold_outcome: list[object] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> Any:
        return self.real.name

    def clear(self) -> None:
        self.fail_times.clear()
        self.refuse.clear()
        self.hang_after_hold = self.hang_before_hold = self.hang_after_confirm = False
        self.unblock.set()
        self.unblock = asyncio.Event()
        self.confirmed = asyncio.Event()
        self.late_hold_outcome.clear()
        self.calls.clear()

    def _enter(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if op in self.refuse:
            raise InvalidRequest(f"injected refusal in {self.name}.{op}")
        if self.fail_times.get(op, 0) > 0:
            self.fail_times[op] -= 1
            raise Busy(f"injected fault in {self.name}.{op}")

    async def hold(self, hold_key: str, request: Frozen, expires_at: datetime) -> HoldResult:
        self._enter("hold")
        if self.hang_before_hold:
            await self.unblock.wait()
            try:
                result = await self.real.hold(hold_key, request, expires_at)
            except Exception as err:
                self.late_hold_outcome.append(err)
                raise
            self.late_hold_outcome.append(result)
            return result
        result = await self.real.hold(hold_key, request, expires_at)
        if self.hang_after_hold:
            await self.unblock.wait()  # until the test ends: a hung activity would stop the test clock
        return result

    async def confirm(self, hold_key: str) -> HoldResult:
        self._enter("confirm")
        result = await self.real.confirm(hold_key)
        if self.hang_after_confirm:
            self.confirmed.set()
            await self.unblock.wait()
        return result

    async def release(self, hold_key: str) -> HoldResult:
        self._enter("release")
        return await self.real.release(hold_key)

    async def return_sale(self, hold_key: str) -> HoldResult:
        self._enter("return_sale")
        return await self.real.return_sale(hold_key)

    async def extend(self, hold_key: str, expires_at: datetime) -> HoldResult:
        self._enter("extend")
        return await self.real.extend(hold_key, expires_at)

    def __getattr__(self, attr: str) -> Any:  # alternatives, audit, availability, upsert, expire_overdue
        return getattr(self.real, attr)


@dataclass
class RefusingRelease:
    """A service whose release fails with a non-retryable error while `refuse` is set: the saga reaches
    NEEDS_ATTENTION at once instead of after its release patience (real time on the dev server)."""

    real: FaultyService
    refuse: bool = False

    async def release(self, hold_key: str) -> HoldResult:
        if self.refuse:
            raise InvalidRequest("release refused (injected)")
        return await self.real.release(hold_key)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.real, attr)


class RefusingClaims(CustomerLimits):
    """Real customer claims whose release fails (non-retryable: the saga's local activity gives up at once)."""

    async def release(self, checkout_id: str) -> bool:
        raise ApplicationError("claim release refused (injected)", non_retryable=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Inventory:
    """Fresh rows for one test: a flight with `seats`, a hotel with `rooms` per night, an item with `stock`."""

    PARTS = ("flight", "hotel", "orders")

    flight_id: str
    hotel_id: str
    sku: str
    check_in: date

    def request(self, *, seats: int = 1, rooms: int = 1, quantity: int = 1, customer: str = "cust-1",
                parts: tuple[str, ...] = PARTS) -> CheckoutRequest:
        # CheckoutRequest's part fields come from the registry at run time: validate a mapping (mypy sees only
        # the base model).
        return CheckoutRequest.model_validate({
            "customer_id": customer,
            "flight": FlightRequest(flight_id=self.flight_id, seat_class="economy", seats=seats)
            if "flight" in parts else None,
            "hotel": HotelRequest(hotel_id=self.hotel_id, room_type="deluxe", check_in=self.check_in,
                                  check_out=self.check_in + timedelta(days=2), rooms=rooms)
            if "hotel" in parts else None,
            "items": ItemsRequest(items=[ItemLine(sku=self.sku, quantity=quantity)]) if "orders" in parts else None,
        })


async def seed(services: Mapping[str, Any], *, seats: int = 5, rooms: int = 3, stock: int = 10) -> Inventory:
    check_in = date(2031, 6, 1)
    inventory = Inventory(unique("FL"), unique("HT"), unique("SKU"), check_in)
    await services["flight"].upsert(inventory.flight_id, FlightInventory(
        origin="LHR", destination="JFK", departs_at=datetime(2031, 6, 1, 9, tzinfo=UTC),
        seats={"economy": seats, "business": 10},
    ))
    await services["hotel"].upsert(inventory.hotel_id, HotelInventory(
        city="Paris", rooms={"deluxe": rooms, "standard": 5}, nights_from=check_in,
        nights_to=check_in + timedelta(days=5),
    ))
    await services["orders"].upsert(inventory.sku, ItemInventory(stock=stock))
    return inventory


@dataclass(frozen=True)
class Paid:
    """A priced flight seat (10 000) and item (2 000 EUR cents) paid from the customer's funded wallet."""

    customer: str
    flight_id: str
    sku: str
    request: CheckoutRequest


PAID_TOTAL = 12_000


async def seed_paid(services: Mapping[str, Any], *, balance: int) -> Paid:
    """Inventory, prices and a wallet holding `balance` for one paid checkout (its total: PAID_TOTAL, in EUR)."""
    customer, flight_id, sku = unique("cust"), unique("FL"), unique("SKU")
    await services["flight"].upsert(flight_id, FlightInventory(
        origin="LHR", destination="JFK", departs_at=datetime(2031, 6, 1, 9, tzinfo=UTC), seats={"economy": 5},
        currency="EUR", fares={"economy": 10_000},
    ))
    await services["orders"].upsert(sku, ItemInventory(stock=5, currency="EUR", price=2_000))
    await services["wallet"].upsert(customer, WalletBody(currency="EUR", balance=balance))
    request = CheckoutRequest.model_validate({
        "customer_id": customer, "flight": FlightRequest(flight_id=flight_id, seat_class="economy", seats=1),
        "items": ItemsRequest(items=[ItemLine(sku=sku, quantity=1)]), "payment": WalletRequest(),
    })
    return Paid(customer, flight_id, sku, request)


async def counters(services: Mapping[str, Any], inventory: Inventory) -> dict[str, tuple[int, int]]:
    """(held, sold) per service for the inventory's rows (the hotel's first night)."""
    flight = (await services["flight"].availability(inventory.flight_id)).seat_classes["economy"]
    hotel_view = await services["hotel"].availability(
        inventory.hotel_id, StayQuery(check_in=inventory.check_in, check_out=inventory.check_in + timedelta(days=2))
    )
    night = hotel_view.room_types["deluxe"].nights[inventory.check_in]
    item = await services["orders"].availability(inventory.sku)
    return {
        "flight": (flight.held, flight.sold),
        "hotel": (night.held, night.sold),
        "orders": (item.held, item.sold),
    }


async def start_checkout(
    client: Client, settings: Settings, request: CheckoutRequest, *, hold_seconds: int = 600,
    extend_max_seconds: int = 3600, hold_lifetime_max_seconds: int = 7200, attributes_at_start: bool = False,
    remote: bool = False, quote: Money | None = None, checkout_id: str | None = None,
) -> tuple[WorkflowHandle[Any, CheckoutView], CheckoutView]:
    """Start CheckoutSaga (a plain start, so handle.result() skips time) and send `submit`, as the API does.
    Without `attributes_at_start` the workflow publishes its search attributes itself, as for any starter."""
    handle = await begin_checkout(
        client, settings, request, hold_seconds=hold_seconds, extend_max_seconds=extend_max_seconds,
        hold_lifetime_max_seconds=hold_lifetime_max_seconds, attributes_at_start=attributes_at_start, remote=remote,
        quote=quote, checkout_id=checkout_id,
    )
    view = await handle.execute_update(SUBMIT, result_type=CheckoutView)
    return handle, view


async def begin_checkout(
    client: Client, settings: Settings, request: CheckoutRequest, *, hold_seconds: int = 600,
    extend_max_seconds: int = 3600, hold_lifetime_max_seconds: int = 7200, attributes_at_start: bool = False,
    remote: bool = False, quote: Money | None = None, checkout_id: str | None = None,
) -> WorkflowHandle[Any, CheckoutView]:
    """Start CheckoutSaga without waiting for its holds (start_checkout's first half). `quote`: a paid checkout's
    total as the API would quote it (its payment then holds beside the inventory). `checkout_id`: a new one unless
    given (a test that prepared the ledgers' keys of that checkout)."""
    checkout_id = checkout_id or unique("co")
    params = CheckoutInput(
        checkout_id=checkout_id, request=request, request_hash="test", hold_seconds=hold_seconds,
        extend_max_seconds=extend_max_seconds, hold_lifetime_max_seconds=hold_lifetime_max_seconds,
        task_queues={name: settings.task_queue(name) for name in NAMES},
        # As the API starts it: the participants placed `local` run as local activities in the checkout worker.
        # `remote`: every participant on its own task queue, whatever its placement.
        local_participants=[] if remote else list(local_names(settings.participant_placements)),
        quote=quote,
    )
    handle = await client.start_workflow(
        CheckoutSaga.run, params, id=checkout_id, task_queue=settings.task_queue_checkout,
        task_timeout=timedelta(seconds=settings.workflow_task_timeout_seconds),
        static_summary=checkout_summary(request),
        search_attributes=(search_attributes.at_start(request, settings.checkout_id_secret)
                           if attributes_at_start else None),
    )
    return handle


@asynccontextmanager
async def running(workers: list[Worker]) -> AsyncIterator[None]:
    """Run Worker objects (build_workers' or a test's own) for the block, then shut them down.

    On the time-skipping server, leave the block only once the sagas these workers run have closed (await their
    result): a saga left open on a queue nobody polls keeps a task pending, and the server then stops moving its
    clock for every later test of the session (they time out waiting for a timer)."""
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield
    finally:
        await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
        await asyncio.gather(*runs, return_exceptions=True)


def own_queues(base: Settings, **changes: Any) -> Settings:
    """`base` with task queues no other worker polls (a test that runs workers of its own), and `changes`."""
    suffix = uuid.uuid4().hex[:8]
    return base.model_copy(update={
        "task_queue_checkout": f"checkout-{suffix}", "task_queues": {n: f"{n}-{suffix}" for n in NAMES}, **changes,
    })
