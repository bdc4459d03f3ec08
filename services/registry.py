"""The three services, built once per process: what the activities, the API and the CLI use."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.flight.service import FlightService
from services.hotel.service import HotelService
from services.orders.service import OrdersService
from services.protocol import AvailabilitySink, InventoryService
from services.types import ServiceName


def build_services(engine: AsyncEngine, sink: AvailabilitySink | None = None) -> dict[ServiceName, InventoryService]:
    """{"flight": FlightService, "hotel": HotelService, "orders": OrdersService} sharing one engine."""
    return {
        "flight": FlightService(engine, sink),
        "hotel": HotelService(engine, sink),
        "orders": OrdersService(engine, sink),
    }
