"""Demo inventory for `booking-saga dev` and `booking-saga seed`. Upserts only, so it can run again."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from services.flight.service import FlightService
from services.hotel.service import HotelService
from services.orders.service import OrdersService

ROUTES = {("LHR", "JFK"): ("BA", time(9, 30)), ("CDG", "BCN"): ("AF", time(7, 15))}
SEATS = {"economy": 150, "business": 20}
HOTELS = {"H-LON-1": "London", "H-PAR-1": "Paris"}
ROOMS = {"standard": 20, "deluxe": 8, "suite": 2}
ITEMS = {"SKU-TSHIRT": 100, "SKU-MUG": 50, "SKU-POSTER": 25, "SKU-CAP": 10, "SKU-LIMITED": 3}
DAYS = 7
NIGHTS = 30


async def seed_demo(services: Mapping[str, Any], today: date) -> None:
    """Flights LHR-JFK and CDG-BCN each day of the coming week (economy, business); two hotels (London,
    Paris) with three room types for the next 30 nights; a handful of skus. Flight ids: BA100 + day, AF200 + day."""
    flight = cast(FlightService, services["flight"])
    hotel = cast(HotelService, services["hotel"])
    orders = cast(OrdersService, services["orders"])
    for number, ((origin, destination), (carrier, departs)) in enumerate(ROUTES.items()):
        for day in range(1, DAYS + 1):
            when = datetime.combine(today + timedelta(days=day), departs, tzinfo=UTC)
            await flight.upsert_flight(f"{carrier}{100 * (number + 1) + day}", origin, destination, when, SEATS)
    for hotel_id, city in HOTELS.items():
        await hotel.upsert_hotel(hotel_id, city, ROOMS, today, today + timedelta(days=NIGHTS - 1))
    for sku, stock in ITEMS.items():
        await orders.upsert_item(sku, stock)
