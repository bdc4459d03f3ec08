"""The chaos run's customers: async HTTP clients placing mixed checkouts, then confirming, cancelling or letting
them expire, on either API replica.

A request that meets a transport error or a 5xx is sent again with the SAME Idempotency-Key and body (to either
replica) until it gets another answer or `give_up_seconds` pass, as a careful front-end does. Every answer is
recorded with the time it came (the fault x invariant table counts them per fault window), every 500 with its
body, and every checkout with what the client saw of it.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import httpx

from services.registry import PARTICIPANTS

Decision = Literal["confirm", "cancel", "expire"]
SETTLED = ("CONFIRMED", "CANCELLED", "EXPIRED")
CUSTOMERS = 100


@dataclass(frozen=True)
class Inventory:
    """What the run seeds with operator PUTs (its own ids, so a rerun on the same servers starts afresh)."""

    prefix: str
    first_night: date
    flights: tuple[str, ...]
    seat_classes: dict[str, int]
    hotels: tuple[str, ...]
    room_types: dict[str, int]
    nights: int
    skus: dict[str, int]
    depots: tuple[str, ...]
    car_classes: dict[str, int]

    @classmethod
    def build(cls, run_id: str, scale: int) -> Inventory:
        """`scale` grows capacities with the run's length: some rows sell out (409s), most do not."""
        p = f"CH{run_id.upper()}"
        return cls(
            prefix=p,
            first_night=date.today() + timedelta(days=30),
            flights=tuple(f"{p}-FL{i}" for i in range(1, 4)),
            seat_classes={"economy": 60 * scale, "business": 6 * scale},
            hotels=(f"{p}-H1", f"{p}-H2"),
            room_types={"deluxe": 8 * scale, "standard": 20 * scale},
            nights=10,
            skus={f"{p}-SKU1": 150 * scale, f"{p}-SKU2": 150 * scale, f"{p}-SKU3": 80 * scale, f"{p}-LTD": 5},
            depots=(f"{p}-D1", f"{p}-D2"),
            car_classes={"compact": 10 * scale, "van": 3 * scale},
        )


@dataclass
class Answer:
    at: float
    method: str
    path: str
    status: int | None  # None: a transport error (refused, reset, timed out)
    replica: int
    body: str = ""


@dataclass
class CheckoutRecord:
    key: str
    customer: str
    body: dict[str, object]
    hold_seconds: int
    decision: Decision
    started_at: float
    ended_at: float = 0.0
    post_status: int | None = None
    post_problem: str | None = None  # the problem type of a 4xx answer, e.g. "checkout-rejected"
    checkout_id: str | None = None
    held_status: str | None = None
    held_expires_at: datetime | None = None
    answered_at: datetime | None = None
    ids_seen: set[str] = field(default_factory=set)
    action_status: int | None = None
    action_checkout_status: str | None = None
    final_status: str | None = None
    gave_up: list[str] = field(default_factory=list)

    @property
    def created(self) -> bool:
        return self.post_status == 201 and self.checkout_id is not None


@dataclass
class LoadResult:
    checkouts: list[CheckoutRecord] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)


class Customers:
    def __init__(
        self, api_urls: list[str], inventory: Inventory, *, clients: int = 8, seed: int = 0,
        hold_seconds: tuple[int, int] = (5, 10), give_up_seconds: float = 90.0,
    ) -> None:
        self.api_urls = api_urls
        self.inventory = inventory
        self.clients = clients
        self.seed = seed
        self.hold_seconds = hold_seconds
        self.give_up_seconds = give_up_seconds
        self.result = LoadResult()

    async def run(self, seconds: float) -> LoadResult:
        """Place checkouts for `seconds`; checkouts under way then finish (their confirm or cancel is sent)."""
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=self.clients * 4)
        async with httpx.AsyncClient(timeout=httpx.Timeout(45.0), limits=limits) as http:
            await asyncio.gather(*(self._client(http, i, deadline) for i in range(self.clients)))
        return self.result

    async def _client(self, http: httpx.AsyncClient, index: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + index)
        while time.monotonic() < deadline:
            # Many customers, each with a checkout or two at once: the run is not about per-customer limits.
            await self._one_checkout(http, rng, f"chaos-customer-{rng.randrange(CUSTOMERS)}")

    async def _one_checkout(self, http: httpx.AsyncClient, rng: random.Random, customer: str) -> None:
        hold = rng.randint(*self.hold_seconds)
        decision: Decision = rng.choices(("confirm", "cancel", "expire"), weights=(50, 25, 25))[0]
        body = self._body(rng, customer, hold)
        record = CheckoutRecord(key=f"k-{uuid.uuid4().hex}", customer=customer, body=body, hold_seconds=hold,
                                decision=decision, started_at=time.monotonic())
        self.result.checkouts.append(record)
        headers = {"Idempotency-Key": record.key}
        answer = await self._call(http, rng, "POST", "/v1/checkouts", record, json=body, headers=headers)
        record.post_status = answer.status_code if answer is not None else None
        self._note_id(record, answer)
        if answer is not None and 400 <= answer.status_code < 500:
            record.post_problem = _problem_type(answer)
        if answer is None or answer.status_code != 201:
            record.ended_at = time.monotonic()
            return
        view = answer.json()
        record.held_status = view.get("status")
        record.answered_at = datetime.now(UTC)
        if view.get("expires_at"):
            record.held_expires_at = datetime.fromisoformat(view["expires_at"])
        if rng.random() < 0.25:  # the same request again: the same checkout, whatever has happened since
            again = await self._call(http, rng, "POST", "/v1/checkouts", record, json=body, headers=headers)
            self._note_id(record, again)
        if decision == "expire":
            record.ended_at = time.monotonic() + hold
            return
        await asyncio.sleep(rng.uniform(0, hold * 0.6))
        action = await self._call(http, rng, "POST", f"/v1/checkouts/{record.checkout_id}/{decision}", record)
        record.ended_at = time.monotonic()
        if action is not None:
            record.action_status = action.status_code
            record.action_checkout_status = _checkout_status(action)

    def _note_id(self, record: CheckoutRecord, answer: httpx.Response | None) -> None:
        if answer is None or answer.status_code >= 500:
            return
        try:
            found = answer.json().get("checkout_id")
        except ValueError:
            return
        if isinstance(found, str):
            record.ids_seen.add(found)
            if answer.status_code == 201:
                record.checkout_id = found

    async def _call(
        self, http: httpx.AsyncClient, rng: random.Random, method: str, path: str, record: CheckoutRecord,
        *, json: dict[str, object] | None = None, headers: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        """Send until an answer below 500 (same key, same body, either replica); None or the last 5xx on giving up."""
        started = time.monotonic()
        replica = rng.randrange(len(self.api_urls))
        while True:
            response: httpx.Response | None
            try:
                response = await http.request(method, self.api_urls[replica] + path, json=json, headers=headers)
            except httpx.TransportError:
                response = None
                self.result.answers.append(Answer(time.monotonic(), method, path, None, replica))
            else:
                body = response.text[:500] if response.status_code == 500 else ""
                self.result.answers.append(Answer(time.monotonic(), method, path, response.status_code, replica, body))
                if response.status_code < 500:
                    return response
            if time.monotonic() - started > self.give_up_seconds:
                record.gave_up.append(f"{method} {path}")
                return response
            replica = rng.randrange(len(self.api_urls))
            await asyncio.sleep(_retry_after(response, rng))

    async def read(self, http: httpx.AsyncClient, checkout_id: str) -> tuple[int | None, dict[str, object]]:
        """GET a checkout once (either replica)."""
        url = random.choice(self.api_urls) + f"/v1/checkouts/{checkout_id}"
        try:
            response = await http.get(url)
        except httpx.TransportError:
            return None, {}
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {}

    def _body(self, rng: random.Random, customer: str, hold: int) -> dict[str, object]:
        inv = self.inventory
        shares = (("flight", 0.6), ("hotel", 0.4), ("car", 0.3), ("items", 0.6))
        parts = [name for name, p in shares if rng.random() < p]
        parts = parts or [rng.choice([name for name, _ in shares])]
        body: dict[str, object] = {"customer_id": customer, "hold_seconds": hold}
        if "flight" in parts:
            body["flight"] = {"flight_id": rng.choice(inv.flights),
                              "seat_class": "economy" if rng.random() < 0.85 else "business",
                              "seats": rng.randint(1, 2)}
        if "hotel" in parts:
            check_in = inv.first_night + timedelta(days=rng.randrange(inv.nights - 3))
            body["hotel"] = {"hotel_id": rng.choice(inv.hotels), "room_type": rng.choice(list(inv.room_types)),
                             "check_in": check_in.isoformat(),
                             "check_out": (check_in + timedelta(days=rng.randint(1, 3))).isoformat(), "rooms": 1}
        if "car" in parts:
            pick_up = inv.first_night + timedelta(days=rng.randrange(inv.nights - 3))
            body["car"] = {"depot_id": rng.choice(inv.depots), "car_class": rng.choice(list(inv.car_classes)),
                           "pick_up": pick_up.isoformat(),
                           "drop_off": (pick_up + timedelta(days=rng.randint(1, 3))).isoformat(), "cars": 1}
        if "items" in parts:
            skus = rng.sample(sorted(inv.skus), k=rng.randint(1, 2))
            body["items"] = [{"sku": sku, "quantity": rng.randint(1, 3)} for sku in skus]
        return body


def _checkout_status(response: httpx.Response) -> str | None:
    try:
        found = response.json()
    except ValueError:
        return None
    status = found.get("status") if response.status_code < 400 else found.get("checkout_status")
    return status if isinstance(status, str) else None


def _problem_type(response: httpx.Response) -> str | None:
    try:
        kind = response.json().get("type")
    except ValueError:
        return None
    return kind.rsplit("/", 1)[-1] if isinstance(kind, str) else None


def _retry_after(response: httpx.Response | None, rng: random.Random) -> float:
    if response is not None:
        try:
            return min(float(response.headers.get("Retry-After", "")), 2.0)
        except ValueError:
            pass
    return rng.uniform(0.2, 1.0)


def units(body: dict[str, object]) -> dict[tuple[str, str], int]:
    """(service, ledger resource) -> units a confirmed checkout of `body` sells, as each participant names its
    rows (Participant.rows): 'FL/economy', 'H/deluxe/2026-12-01' (one row per night), 'SKU'."""
    sold: dict[tuple[str, str], int] = {}
    for participant in PARTICIPANTS:
        part = body.get(participant.field)
        if part is None:
            continue
        for resource, quantity in participant.rows(participant.to_request(part)).items():
            sold[(participant.name, resource)] = sold.get((participant.name, resource), 0) + quantity
    return sold
