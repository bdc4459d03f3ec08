"""`checkout.release_claim`: the settled saga's per-customer claim removed (services/customer_limits.py).

A local activity of the checkout worker. Without a database (the benchmark's no-op floor) it removes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import activity

from activities.models import RELEASE_CLAIM
from services.customer_limits import CustomerLimits


class ClaimActivities:
    def __init__(self, limits: CustomerLimits | None) -> None:
        self.limits = limits

    async def release_claim(self, checkout_id: str) -> bool:
        return await self.limits.release(checkout_id) if self.limits is not None else False

    def activities(self) -> list[Callable[..., Awaitable[object]]]:
        # A bound method cannot carry Temporal's definition attribute: a plain function can.
        async def release_claim(checkout_id: str) -> bool:
            return await self.release_claim(checkout_id)

        return [activity.defn(name=RELEASE_CLAIM)(release_claim)]
