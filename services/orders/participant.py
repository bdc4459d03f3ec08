"""The orders participant's declaration: stock per sku; the checkout field `items` (a list of lines)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from services.orders.schemas import ItemAvailability, ItemInventory, ItemLine, ItemLines, ItemsRequest
from services.participant import InventoryService, NoQuery, Participant, ResourceRoutes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from services.protocol import AvailabilitySink

# The demo inventory (services/orders/service.py seeds it).
DEMO_ITEMS = {"SKU-TSHIRT": 100, "SKU-MUG": 50, "SKU-POSTER": 25, "SKU-CAP": 10, "SKU-LIMITED": 3}
# Demo prices per item, in minor units of DEMO_CURRENCY.
DEMO_CURRENCY = "EUR"
DEMO_PRICES = {"SKU-TSHIRT": 2000, "SKU-MUG": 1200, "SKU-POSTER": 1500, "SKU-CAP": 1800, "SKU-LIMITED": 9900}

_LINES = TypeAdapter(ItemLines)


class OrdersParticipant(Participant[ItemsRequest]):
    name = "orders"
    field = "items"
    title = "Shop items"
    request_model = ItemsRequest
    quantity_field = "quantity"
    list_field = True
    routes = ResourceRoutes(
        collection="items", id_name="sku", noun="sku", query=NoQuery,
        availability=ItemAvailability, upsert=ItemInventory,
        availability_summary="Stock left of a shop item",
        upsert_summary="Create or restock a shop item",
        upsert_description="Sets the sku's stock. A stock below what is already held + sold is refused (422).",
    )

    def body_type(self) -> object:
        return ItemLines

    def to_request(self, body: object) -> ItemsRequest:
        # Sorted by sku: the same basket in another order is the same request (and the same hash).
        return ItemsRequest(items=sorted(_LINES.validate_python(body), key=lambda line: line.sku))

    def to_body(self, request: ItemsRequest) -> list[dict[str, object]]:
        return [line.model_dump(mode="json") for line in request.items]

    def rows(self, request: ItemsRequest) -> dict[str, int]:
        return {line.sku: line.quantity for line in request.items}

    def describe(self, request: ItemsRequest) -> str:
        return ", ".join(f"{line.sku} x{line.quantity}" for line in request.items)

    def resources(self, request: ItemsRequest) -> list[str]:
        return [line.sku for line in request.items]

    def demo_offers(self, today: date) -> list[ItemsRequest]:
        return [ItemsRequest(items=[ItemLine(sku=sku, quantity=1)]) for sku in DEMO_ITEMS]

    def demo_upsert(self, today: date) -> tuple[str, ItemInventory]:
        sku, stock = next(iter(DEMO_ITEMS.items()))
        return sku, ItemInventory(stock=stock, currency=DEMO_CURRENCY, price=DEMO_PRICES[sku])

    def build_service(
        self, engine: AsyncEngine, sink: AvailabilitySink | None = None
    ) -> InventoryService[ItemsRequest]:
        from services.orders.service import OrdersService

        return OrdersService(engine, sink)
