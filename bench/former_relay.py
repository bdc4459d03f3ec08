"""The relay's statements before the cut that made each of them one round trip, and its HTTP client before
aiohttp (httpx): kept as those cuts' baselines only.

Before, a relay round fanned out in a transaction (BEGIN, lock the endpoint's row, fan out, COMMIT: the endpoint's
row locked and rewritten even with nothing new) and again until a fan-out found nothing, then leased; a 2xx was
recorded in a transaction of two statements (BEGIN, DELETE, promote the next row, COMMIT), and every delivery was
followed by such a round. The webhooks scenario
(bench/scenarios/webhooks.py) runs the same load through a relay on these and on services/events/deliveries.py's,
in the same run, and through a relay on `httpx_client`. Nothing outside bench/ uses this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import httpx

from services.events.deliveries import WRITE_PICKED, Deliveries, Leased, Recorded
from services.events.outbox import DELIVERIES, ENDPOINTS, EVENTS
from services.events.relay import Post, RelayConfig
from services.ledger.transaction import driver_transaction

LOCK_ENDPOINT = f"SELECT cursor FROM {ENDPOINTS} WHERE id = $1 FOR UPDATE SKIP LOCKED"
FAN_OUT = f"""
WITH picked AS (
    SELECT id, checkout_id FROM {EVENTS} WHERE id > $2 ORDER BY id LIMIT $3
), written AS ({WRITE_PICKED}
)
UPDATE {ENDPOINTS} SET cursor = (SELECT coalesce(max(id), $2) FROM picked) WHERE id = $1
RETURNING (SELECT count(*) FROM picked)"""
DELIVERED = f"""DELETE FROM {DELIVERIES} WHERE endpoint_id = $1 AND event_id = $2 AND lease_owner = $3
    AND attempts = $4 RETURNING checkout_id"""
PROMOTE = f"""UPDATE {DELIVERIES} SET next_attempt_at = now()
    WHERE endpoint_id = $1 AND state = 'PENDING' AND next_attempt_at = 'infinity' AND event_id = (
        SELECT min(d.event_id) FROM {DELIVERIES} d WHERE d.endpoint_id = $1 AND d.checkout_id = $2)"""


class FormerDeliveries(Deliveries):
    """Deliveries with the former fan-out and 2xx statements (the lease and the rest are today's)."""

    async def _fan_out_once(self, endpoint_id: int, batch: int) -> int:
        async with driver_transaction(self.engine) as db:
            cursor = await db.fetchval(LOCK_ENDPOINT, endpoint_id)
            if cursor is None:
                return 0
            return int(await db.fetchval(FAN_OUT, endpoint_id, cursor, batch))

    async def fan_out(self, endpoint_id: int, batch: int = 500) -> int:
        # Done in `lease`: the former relay fanned out before every lease, also in the round it ran after each
        # delivery (today's relay runs a lease alone then, and only when the delivery made a row due).
        return 0

    async def lease(self, endpoint_id: int, owner: str, limit: int, lease_seconds: float) -> list[Leased]:
        # It fanned out until a fan-out found nothing: one more transaction each round.
        while await self._fan_out_once(endpoint_id, 500):
            pass
        return await super().lease(endpoint_id, owner, limit, lease_seconds)

    async def delivered(self, leased: Leased, owner: str, lease_seconds: float | None = None) -> Recorded:
        # The former relay leased nothing with a 2xx (`lease_seconds` unused).
        async with driver_transaction(self.engine) as db:
            checkout_id = await db.fetchval(DELIVERED, leased.endpoint_id, leased.event.id, owner, leased.attempt)
            if checkout_id is not None:
                await db.execute(PROMOTE, leased.endpoint_id, checkout_id)
        # The former relay ran a round (its fan-outs and a lease) after every delivery, whatever was waiting.
        return Recorded(recorded=checkout_id is not None, next_due=True)


@contextlib.asynccontextmanager
async def httpx_client(url: str, config: RelayConfig) -> AsyncIterator[Post]:
    """The relay's client before aiohttp: httpx with its defaults, its log line per request quiet and sniffio
    installed (the two earlier cuts to it), a pool of `concurrency` connections."""
    slots = config.concurrency
    limits = httpx.Limits(max_connections=slots, max_keepalive_connections=slots)
    async with httpx.AsyncClient(timeout=config.timeout_seconds, limits=limits) as client:

        async def post(body: bytes, headers: Mapping[str, str]) -> int:
            return (await client.post(url, content=body, headers=headers)).status_code

        yield post
