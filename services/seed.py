"""Demo inventory for `booking-saga dev` and `booking-saga seed`: every participant seeds its own. Upserts only,
so it can run again."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from services.registry import AnyService


async def seed_demo(services: Mapping[str, AnyService], today: date) -> None:
    for service in services.values():
        await service.seed_demo(today)
