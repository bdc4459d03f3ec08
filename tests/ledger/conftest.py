"""Ledger tests: real PostgreSQL, schemas reset once per session, one engine shared by the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.db import create_engine
from services.flight.service import FlightService
from services.hotel.service import HotelService
from services.orders.service import OrdersService
from services.registry import AnyService, build_services


@pytest.fixture(scope="session")
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=10)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def services(engine: AsyncEngine) -> dict[str, AnyService]:
    return build_services(engine)


@pytest.fixture
def flight(services: dict[str, AnyService]) -> FlightService:
    service = services["flight"]
    assert isinstance(service, FlightService)
    return service


@pytest.fixture
def hotel(services: dict[str, AnyService]) -> HotelService:
    service = services["hotel"]
    assert isinstance(service, HotelService)
    return service


@pytest.fixture
def orders(services: dict[str, AnyService]) -> OrdersService:
    service = services["orders"]
    assert isinstance(service, OrdersService)
    return service
