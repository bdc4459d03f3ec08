"""The participant contract: one inventory service the saga coordinates, declared once in its own package.

A participant (flight, hotel, orders, cars, a team's own) lives in `services/<name>/` and declares everything
about itself here, once:
- `Participant` (services/<name>/participant.py): pure declarations, safe to import in workflow code: its name
  (hold-key suffix, activity prefix, task queue), the checkout-body field it answers to and that field's model,
  how a request names ledger rows, its operator-facing description, its HTTP resource (availability and upsert
  models), its demo offers, its placement;
- `InventoryService` (services/<name>/service.py): its ledger operations, availability, alternatives, operator
  upsert and demo inventory, over its own tables (services/ledger) and its own Alembic migration.

Participants of another kind (revision 3, "Money"): a payment such as services/wallet/ is a participant too. It
holds in a later stage (`stage` 1): beside the inventory when the API quoted the total (`derive_quoted`, checked
against the holds afterwards: `repriced`), else after it (`derive`d from the inventory's holds, the total), confirms
before it (a capture first), declines with its own error (services.errors.Declined: a 409 naming it, not a
shortage of stock), has no inventory rows (`inventory` False: no unit limits, no sold-out fast path, no catalogue
offers), may `refund` a capture, and its HTTP resource can be an account read by its owner (`ResourceRoutes`
paths and `read_access`). Each service answers its own audit reading (`hold_ledger`) instead of callers reaching
into its ledger.

services/registry.py lists the participants. Everything above services/ (workflow, activities, workers, API,
CLI, audits, seed) iterates that list and never names a participant: adding one is a package, a registry line,
a migration and its tests. Each abstract method below is an operation a participant must implement; a package
missing one cannot be instantiated, and mypy refuses the registry line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from services.errors import Declined, InvalidRequest
from services.types import Alternative, Frozen, HoldResult, Money, Price, RefundResult, Shortage, Violation

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.ext.asyncio import AsyncEngine

    from services.ledger.ledger import HoldRecord
    from services.protocol import AvailabilitySink

# local: the checkout worker runs this participant's ledger operations as local activities (its ledger is in
# this project's database). remote: its own worker on its own task queue (a service that lives elsewhere).
Placement = Literal["local", "remote"]

RequestT = TypeVar("RequestT", bound=Frozen)
ModelT = TypeVar("ModelT", bound=BaseModel)


def expect(value: BaseModel, kind: type[ModelT]) -> ModelT:
    """Narrow a model the API validated with the type a participant declared (a wrong one is a bug upstream)."""
    if not isinstance(value, kind):
        raise InvalidRequest(f"expected a {kind.__name__}, got {type(value).__name__}")
    return value


class HoldLedger(Protocol):
    """What the saga-vs-ledger audit reads from one participant (services.ledger.ledger.Ledger answers it)."""

    async def holds_page(self, after_key: str, limit: int) -> list[HoldRecord]:
        """ACTIVE holds after `after_key`, in key order."""

    async def hold_record(self, hold_key: str) -> HoldRecord | None: ...


# Who may read a resource: anyone, or its owner (the customer the id names, under CUSTOMER_AUTH=jwt) and the operator.
ReadAccess = Literal["public", "owner"]


class NoQuery(Frozen):
    """The availability query of a resource that takes none (a flight, a sku)."""


@dataclass(frozen=True)
class ResourceRoutes:
    """A participant's HTTP resource: `GET /v1/{collection}/{id}/availability` and
    `PUT /v1/inventory/{collection}/{id}` (operators) by default; `read_path` / `write_path` move them (an account:
    `/{collection}/{id}` for both) and `read_access` "owner" lets only the customer the id names (and the
    operator) read it. The API builds both routes from this."""

    collection: str  # 'flights': the path segment
    id_name: str  # 'flight_id': the path parameter
    noun: str  # 'flight': how errors name one ("unknown flight BA117")
    query: type[BaseModel]  # NoQuery when the availability takes no query parameters
    availability: type[BaseModel]
    upsert: type[BaseModel]
    availability_summary: str
    upsert_summary: str
    upsert_description: str = ""
    read_path: str = "/{collection}/{id}/availability"
    write_path: str = "/inventory/{collection}/{id}"
    read_access: ReadAccess = "public"
    tag: str = "availability"

    def path(self, template: str) -> str:
        """A route path under /v1 with the id as its path parameter: '/flights/{flight_id}/availability'."""
        return template.format(collection=self.collection, id=f"{{{self.id_name}}}")


class Participant(ABC, Generic[RequestT]):
    """What the saga, the API and the workers know about one participant. Pure: no database, no I/O."""

    name: str  # 'flight': hold keys '{checkout_id}:flight', activities 'flight.hold', its task queue
    field: str  # 'flight': the checkout body's field
    title: str  # 'Flights': for people (storefront, docs)
    request_model: type[RequestT]  # what the saga and the ledger take (travels through Temporal)
    quantity_field: str = ""  # the request's unit count: 'seats', 'rooms', 'quantity' ("" when it counts none)
    placement: Placement = "local"
    # The order of the saga's steps: every stage-0 participant (the inventory) holds in parallel first; a higher
    # stage holds once every lower one held, with its request `derive`d from their holds; confirms go the other
    # way (the highest stage first: a payment captures before the inventory confirms).
    stage: int = 0
    # An inventory participant: `rows` names units of inventory rows (per-customer unit limits, the sold-out fast
    # path, catalogue offers). False for a payment, whose amounts are not units.
    inventory: bool = True
    # Every other part's lines must carry a price (a payment charges their total): an unpriced one is a 422.
    requires_prices: bool = False
    # Its service implements `refund` (a capture given back, by key); the saga refunds it when an inventory
    # confirm fails after the capture, and a cancelled sale refunds through it.
    refunds: bool = False
    # The field's value is a list (several lines in one part): front-ends concatenate offers.
    list_field: bool = False

    # -- the checkout body ------------------------------------------------------------------------------------

    def body_type(self) -> object:
        """The checkout-body field's type (default: the request model itself)."""
        return self.request_model

    def to_request(self, body: object) -> RequestT:
        """The validated body field -> the saga's request. Equal parts must give equal requests (the hash)."""
        return self.request_model.model_validate(body)

    def to_body(self, request: RequestT) -> dict[str, object] | list[dict[str, object]]:
        """The saga's request -> the checkout-body field's value (alternatives, offers)."""
        return request.model_dump(mode="json")

    def derive(self, request: RequestT, customer_id: str, holds: Mapping[str, HoldResult]) -> RequestT:
        """The request this participant's hold takes, from the checkout's own part and the holds of every lower
        stage (a payment: their total). Pure and deterministic: it runs in workflow code. Raise
        services.errors.Declined to refuse (the checkout is then REJECTED naming this participant)."""
        return request

    def derive_quoted(self, request: RequestT, customer_id: str, quote: Money) -> RequestT:
        """The request this participant's hold takes from the API's quote of the checkout's total (a paid checkout
        started with one: CheckoutInput.quote), so that it holds beside the inventory, not after it. Once every
        hold is placed the saga `derive`s the request from the holds too, and refuses the checkout (`repriced`)
        when the two differ. Pure and deterministic, like `derive`; raise Declined to refuse."""
        return request

    def repriced(self, quoted: RequestT, held: RequestT) -> Declined:
        """The refusal of a checkout whose held lines no longer add up to what this participant held from the
        quote (a price changed between the API's reading and the holds): never a total the customer was not
        quoted. The checkout is REJECTED naming this participant, and everything is released."""
        return Declined(Shortage(resource=self.field, requested=0, available=0, reason=(
            f"the prices changed while the checkout was placed: {self.describe(held)}, not the quoted "
            f"{self.describe(quoted)}; place it again")))

    @property
    def noun(self) -> str:
        """How errors name one of its resources ("unknown flight BA117")."""
        return self.routes.noun if self.routes is not None else self.name

    # -- what a request touches ----------------------------------------------------------------------------------

    def rows(self, request: RequestT) -> dict[str, int]:
        """The ledger rows the request holds and how many units of each, named as the ledger names them
        (`resource`): the sold-out fast path and the per-customer limits read these. None for a participant
        that is not `inventory`."""
        return {}

    @abstractmethod
    def describe(self, request: RequestT) -> str:
        """One line for operators: 'BA117/economy x2' (workflow and activity summaries)."""

    @abstractmethod
    def resources(self, request: RequestT) -> list[str]:
        """What the CheckoutResources search attribute lists (prefixed with the participant's name)."""

    def alternative(self, request: RequestT, description: str, available: int) -> Alternative:
        """An alternative offering `request`, ready to merge into a new checkout."""
        return Alternative(
            service=self.name, description=description, available=available,
            request=request.model_dump(mode="json"), checkout={self.field: self.to_body(request)},
        )

    def starts_on(self, request: RequestT) -> date | None:
        """The first date a dated request uses (a stay's check-in, a rental's pick-up); None when undated. A new
        checkout whose part starts before today is refused (422); recorded requests are never re-checked."""
        return None

    def requested(self, request: RequestT, resource: str) -> int:
        """How many units of `resource` the request asked for (a resource may name a row or a whole entity)."""
        rows = self.rows(request)
        return rows.get(resource, max(rows.values(), default=0))

    # -- demo and HTTP ---------------------------------------------------------------------------------------

    routes: ResourceRoutes | None = None  # its HTTP resource (availability, operator upsert); None: none

    def demo_offers(self, today: date) -> list[RequestT]:
        """A few requests that the demo inventory (`seed_demo`) can serve: storefront offers, OpenAPI examples."""
        return []

    def demo_upsert(self, today: date) -> tuple[str, BaseModel] | None:
        """One resource of the demo inventory as `seed_demo` upserts it (its id and `routes.upsert` body): the
        OpenAPI example of the operator route. None: no example."""
        return None

    @abstractmethod
    def build_service(
        self, engine: AsyncEngine, sink: AvailabilitySink | None = None
    ) -> InventoryService[RequestT]:
        """Its ledger service on `engine` (import the service module here: declarations stay light)."""


class HoldOperations(ABC, Generic[RequestT]):
    """The ledger operations the activities call. Each is one transaction, idempotent by hold key, and raises
    only services.errors types."""

    name: str

    @abstractmethod
    async def hold(self, hold_key: str, request: RequestT, expires_at: datetime) -> HoldResult: ...

    @abstractmethod
    async def confirm(self, hold_key: str) -> HoldResult: ...

    @abstractmethod
    async def release(self, hold_key: str) -> HoldResult: ...

    async def decline(self, hold_key: str, refusal: Declined) -> HoldResult:
        """A release that records why (`refusal`, the customer's answer), so that the key asked to hold again is
        refused for it: what the saga does with a hold it placed and then must not keep (a payment authorized for
        a quote the held lines do not match). A participant without such a record releases: the key then answers
        "already released", and a saga whose task ran again without its results ends FAILED, not REJECTED."""
        return await self.release(hold_key)

    @abstractmethod
    async def extend(self, hold_key: str, expires_at: datetime) -> HoldResult: ...

    async def return_sale(self, hold_key: str) -> HoldResult:
        """A sale given back (CONFIRMED -> RETURNED, `sold` down), once per key. A participant that cannot take
        a sale back keeps this refusal."""
        raise InvalidRequest(f"{self.name} cannot take a sale back")

    @abstractmethod
    async def alternatives(self, request: RequestT) -> list[Alternative]: ...

    @abstractmethod
    async def expire_overdue(self, now: datetime, grace_seconds: int) -> int: ...

    @abstractmethod
    async def audit(self) -> list[Violation]: ...

    async def refund(self, hold_key: str, refund_key: str, amount: int | None = None) -> RefundResult:
        """Give back `amount` (None: all that is left) of what `hold_key` captured, once per `refund_key`: a
        duplicate answers the recorded refund. Only a participant declaring `refunds` implements it."""
        raise InvalidRequest(f"{self.name} has nothing to refund")


@dataclass(frozen=True)
class CancelWindows:
    """The business's cancellation windows (settings CANCEL_*), handed to each participant's `cancel_until`."""

    flight_hours_before_departure: int = 24
    hotel_hours_before_check_in: int = 0
    car_hours_before_pick_up: int = 0
    items_days_after_confirmation: int = 30


def day_starts(day: date, hours_before: int = 0) -> datetime:
    """When `day` starts (UTC), less `hours_before`: a dated part's window."""
    return datetime.combine(day, time(0), tzinfo=UTC) - timedelta(hours=hours_before)


class InventoryService(HoldOperations[RequestT]):
    """A participant's whole service: the hold operations plus what the API and the CLI need.

    `availability` and `upsert` take and answer the models its `routes` declare (the API validates them with
    those models first); an implementation narrows them with `expect`.
    """

    @abstractmethod
    async def availability(self, resource_id: str, query: BaseModel) -> BaseModel:
        """The participant's availability model for one resource (`routes.availability`); UnknownResource."""

    @abstractmethod
    async def upsert(self, resource_id: str, body: BaseModel) -> BaseModel:
        """Create or change one resource from the operator's body (`routes.upsert`); answers its availability."""

    @abstractmethod
    async def unknown(self, request: RequestT) -> str | None:
        """The first thing the request names that does not exist ('BA117/economy'), or None. The API refuses
        such a checkout with a 422 before starting a saga; anything else is left to the ledger."""

    @abstractmethod
    async def available(self, resources: list[str]) -> dict[str, int]:
        """Units available now per ledger row name (rows that do not exist are left out)."""

    async def cancel_until(self, request: RequestT, confirmed_at: datetime, windows: CancelWindows) -> datetime | None:
        """Until when a sale of `request` can be cancelled (its window); None: always. Each participant declares
        its own from `windows` (its setting)."""
        return None

    @abstractmethod
    async def seed_demo(self, today: date) -> None:
        """Upsert the demo inventory (`booking-saga seed`, `make dev`); safe to run again."""

    async def prices(self, resources: list[str]) -> dict[str, Price | None]:
        """The unit price of each named row now (None: unpriced); rows that do not exist are left out."""
        return {}

    def hold_ledger(self) -> HoldLedger | None:
        """What the saga-vs-ledger audit reads for this participant; None: nothing to hold against sagas."""
        return None
