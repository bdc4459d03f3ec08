"""The bench's HTTP side: operator inventory upserts and checkouts, at bounded concurrency, timed per call."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from bench.http import HttpClient

# Every request has an answer within the API's own 30 s budget; anything longer is a bench failure.
REQUEST_TIMEOUT_SECONDS = 60.0
STAY = (date(2031, 3, 1), date(2031, 3, 3))
# Priced inventory (paid checkouts): one currency, minor units; each wallet holds far more than one basket costs.
CURRENCY = "EUR"
FARE, NIGHTLY_RATE, ITEM_PRICE = 10_000, 8_000, 1_999
WALLET_BALANCE = 1_000_000
# Every bench checkout holds for the longest the API allows: with the default (600 s) the thousands of checkouts the
# shapes leave HELD all expired at once ten minutes in, and their releases flooded the workers and the dev server
# under whichever scenario ran then (a full run lasts longer than that). Expiry is not what the bench measures.
HOLD_SECONDS = 3600
T = TypeVar("T")


@dataclass
class Answer:
    status: int
    seconds: float
    body: dict[str, Any]
    # The wall clock when the request was sent (time.time()): set beside a server's event times (bench/scenarios/
    # shapes.py's phases); `seconds` is measured on the monotonic clock.
    sent_at: float = 0.0


@dataclass
class Inventory:
    """One flight seat class, one hotel room type over two nights and one sku, created for one scenario."""

    flight_id: str
    hotel_id: str
    sku: str

    def basket(self, customer_id: str, *, paid: bool = False) -> dict[str, Any]:
        """A checkout touching all three services (three holds in parallel in the saga); paid: from the customer's
        wallet (the API's quote authorized beside the holds), which needs priced inventory."""
        return {
            **({"payment": {"method": "wallet"}} if paid else {}),
            "customer_id": customer_id,
            "flight": {"flight_id": self.flight_id, "seat_class": "economy", "seats": 1},
            "hotel": {"hotel_id": self.hotel_id, "room_type": "standard", "check_in": STAY[0].isoformat(),
                      "check_out": STAY[1].isoformat(), "rooms": 1},
            "items": [{"sku": self.sku, "quantity": 1}],
        }


@dataclass
class BenchApi:
    base_url: str
    operator_token: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _serial: itertools.count[int] = field(default_factory=itertools.count)

    def client(self) -> HttpClient:
        """Connections for one scenario: as many are opened as requests are in flight at once."""
        return HttpClient(self.base_url, REQUEST_TIMEOUT_SECONDS)

    def unique(self, prefix: str) -> str:
        """An id no other scenario (or earlier run on the same servers) uses."""
        return f"{prefix}-{self.run_id}-{next(self._serial)}"

    async def _put(self, http: HttpClient, path: str, body: dict[str, Any]) -> None:
        response = await http.request("PUT", path, body, {"Authorization": f"Bearer {self.operator_token}"})
        if response.status != 200:
            raise RuntimeError(f"PUT {path} answered {response.status}: {response.body[:300]!r}")

    async def create_item(self, http: HttpClient, stock: int, *, priced: bool = False) -> str:
        sku = self.unique("sku")
        price = {"price": ITEM_PRICE, "currency": CURRENCY} if priced else {}
        await self._put(http, f"/v1/inventory/items/{sku}", {"stock": stock, **price})
        return sku

    async def create_inventory(self, http: HttpClient, capacity: int = 1_000_000, *, priced: bool = False) -> Inventory:
        flight_id, hotel_id = self.unique("FL"), self.unique("HT")
        departs = (datetime.now(UTC) + timedelta(days=300)).isoformat()
        fares = {"currency": CURRENCY, "fares": {"economy": FARE}} if priced else {}
        rates = {"currency": CURRENCY, "rates": {"standard": NIGHTLY_RATE}} if priced else {}
        await self._put(http, f"/v1/inventory/flights/{flight_id}",
                        {"origin": "LHR", "destination": "JFK", "departs_at": departs, "seats": {"economy": capacity},
                         **fares})
        await self._put(http, f"/v1/inventory/hotels/{hotel_id}",
                        {"city": "Bench", "rooms": {"standard": capacity}, "nights_from": STAY[0].isoformat(),
                         "nights_to": (STAY[1] - timedelta(days=1)).isoformat(), **rates})
        return Inventory(flight_id, hotel_id, await self.create_item(http, capacity, priced=priced))

    async def fund_wallets(self, http: HttpClient, customers: list[str]) -> None:
        """A wallet per customer (operator PUT /v1/wallets/{customer_id}), ten requests in flight."""
        async def one(index: int) -> None:
            await self._put(http, f"/v1/wallets/{customers[index]}",
                            {"currency": CURRENCY, "balance": WALLET_BALANCE})

        await run_bounded(len(customers), 10, one)

    async def wallet(self, http: HttpClient, customer_id: str) -> dict[str, Any]:
        return await self._get(http, f"/v1/wallets/{customer_id}")

    async def checkout(self, http: HttpClient, body: dict[str, Any], key: str) -> Answer:
        body = body if "hold_seconds" in body else {**body, "hold_seconds": HOLD_SECONDS}
        sent_at, started = time.time(), time.perf_counter()
        response = await http.request("POST", "/v1/checkouts", body, {"Idempotency-Key": key})
        seconds = time.perf_counter() - started
        try:
            payload = response.json()
        except ValueError:
            payload = {"raw": response.body[:300].decode(errors="replace")}
        return Answer(response.status, seconds, payload, sent_at)

    async def item_availability(self, http: HttpClient, sku: str) -> dict[str, Any]:
        return await self._get(http, f"/v1/items/{sku}/availability")

    async def audit(self, http: HttpClient) -> dict[str, Any]:
        return await self._get(http, "/v1/audit", {"Authorization": f"Bearer {self.operator_token}"})

    async def _get(self, http: HttpClient, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await http.request("GET", path, headers=headers)
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {response.body[:300]!r}")
        result: dict[str, Any] = response.json()
        return result


async def run_bounded(count: int, concurrency: int, call: Callable[[int], Awaitable[T]]) -> list[T]:
    """`count` calls, at most `concurrency` in flight: closed-loop lanes, each starting its next call when its
    last one answered. Answers come back in call order."""
    answers: list[T | None] = [None] * count
    numbers = iter(range(count))

    async def lane() -> None:
        for index in numbers:
            answers[index] = await call(index)

    await asyncio.gather(*(lane() for _ in range(min(concurrency, count))))
    return [answer for answer in answers if answer is not None]
