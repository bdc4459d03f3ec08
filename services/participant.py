"""The participant contract: one inventory service the saga coordinates, declared once in its own package.

A participant (flight, hotel, orders, cars, a team's own) lives in `services/<name>/` and declares everything
about itself here, once:
- `Participant` (services/<name>/participant.py): pure declarations, safe to import in workflow code: its name
  (hold-key suffix, activity prefix, task queue), the checkout-body field it answers to and that field's model,
  how a request names ledger rows, its operator-facing description, its HTTP resource (availability and upsert
  models), its demo offers, its placement;
- `InventoryService` (services/<name>/service.py): its ledger operations, availability, alternatives, operator
  upsert and demo inventory, over its own tables (services/ledger) and its own Alembic migration.

services/registry.py lists the participants. Everything above services/ (workflow, activities, workers, API,
CLI, audits, seed) iterates that list and never names a participant: adding one is a package, a registry line,
a migration and its tests. Each abstract method below is an operation a participant must implement; a package
missing one cannot be instantiated, and mypy refuses the registry line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from pydantic import BaseModel

from services.errors import InvalidRequest
from services.types import Alternative, Frozen, HoldResult, Violation

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

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


class NoQuery(Frozen):
    """The availability query of a resource that takes none (a flight, a sku)."""


@dataclass(frozen=True)
class ResourceRoutes:
    """A participant's HTTP resource: `GET /v1/{collection}/{id}/availability` and
    `PUT /v1/inventory/{collection}/{id}` (operators). The API builds both routes from this."""

    collection: str  # 'flights': the path segment
    id_name: str  # 'flight_id': the path parameter
    noun: str  # 'flight': how errors name one ("unknown flight BA117")
    query: type[BaseModel]  # NoQuery when the availability takes no query parameters
    availability: type[BaseModel]
    upsert: type[BaseModel]
    availability_summary: str
    upsert_summary: str
    upsert_description: str = ""


class Participant(ABC, Generic[RequestT]):
    """What the saga, the API and the workers know about one participant. Pure: no database, no I/O."""

    name: str  # 'flight': hold keys '{checkout_id}:flight', activities 'flight.hold', its task queue
    field: str  # 'flight': the checkout body's field
    title: str  # 'Flights': for people (storefront, docs)
    request_model: type[RequestT]  # what the saga and the ledger take (travels through Temporal)
    quantity_field: str  # the request's unit count: 'seats', 'rooms', 'quantity'
    placement: Placement = "local"
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

    # -- what a request touches ----------------------------------------------------------------------------------

    @abstractmethod
    def rows(self, request: RequestT) -> dict[str, int]:
        """The ledger rows the request holds and how many units of each, named as the ledger names them
        (`resource`): the sold-out fast path and the per-customer limits read these."""

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

    def requested(self, request: RequestT, resource: str) -> int:
        """How many units of `resource` the request asked for (a resource may name a row or a whole entity)."""
        rows = self.rows(request)
        return rows.get(resource, max(rows.values(), default=0))

    # -- demo and HTTP ---------------------------------------------------------------------------------------

    routes: ResourceRoutes  # its HTTP resource (availability, operator upsert)

    @abstractmethod
    def demo_offers(self, today: date) -> list[RequestT]:
        """A few requests that the demo inventory (`seed_demo`) can serve: storefront offers, OpenAPI examples."""

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

    @abstractmethod
    async def extend(self, hold_key: str, expires_at: datetime) -> HoldResult: ...

    @abstractmethod
    async def alternatives(self, request: RequestT) -> list[Alternative]: ...

    @abstractmethod
    async def expire_overdue(self, now: datetime, grace_seconds: int) -> int: ...

    @abstractmethod
    async def audit(self) -> list[Violation]: ...


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

    @abstractmethod
    async def seed_demo(self, today: date) -> None:
        """Upsert the demo inventory (`booking-saga seed`, `make dev`); safe to run again."""
