"""End to end, the booking record writing the outbox in its own transaction (services/bookings/records.py
`write_record`): a checkout over HTTP on the real stack (dev server, saga workers, PostgreSQL, Redis, the app) is
held, a part cancelled, then confirmed; the feed lists checkout.held, checkout.part_cancelled and checkout.confirmed
in that order, and a receiver process gets the same events, verified, from a relay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_checkouts_e2e import Inventory, post_checkout
from tests.events.webhooks import Receiver, config, eventually, in_order_per_checkout, relay_task

pytestmark = [
    pytest.mark.devserver,
    pytest.mark.slow,
]
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture(scope="module")
async def client(
    dev_server_env: WorkflowEnvironment, migrated_database_url: str, redis_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings: Settings = live_settings(dev_server_env, migrated_database_url, redis_url)
    async with saga_workers(dev_server_env, settings), running_app(settings) as (_app, http):
        yield http


async def feed_after(client: httpx.AsyncClient, after: int) -> list[dict[str, object]]:
    return list((await client.get("/v1/events", params={"after": after, "limit": 1000},
                                  headers=OPERATOR)).json()["events"])


async def test_a_checkout_announces_itself_to_the_feed_and_to_webhooks(
    client: httpx.AsyncClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    start = 0
    while page := await feed_after(client, start):
        start = int(str(page[-1]["id"]))
    receiver = Receiver(tmp_path).start()
    try:
        async with relay_task(engine, config(receiver.url)):
            inventory = Inventory()
            await inventory.create(client)
            created = await post_checkout(client, inventory.checkout())
            assert created.status_code == 201, created.text
            checkout_id = created.json()["checkout_id"]
            cancelled = await client.post(f"/v1/checkouts/{checkout_id}/cancel", json={"parts": ["hotel"]},
                                          headers=OPERATOR)
            assert cancelled.status_code == 200, cancelled.text
            confirmed = await client.post(f"/v1/checkouts/{checkout_id}/confirm", headers=OPERATOR)
            assert confirmed.status_code == 200, confirmed.text
            wanted = ["checkout.held", "checkout.part_cancelled", "checkout.confirmed"]

            async def in_the_feed() -> bool:
                return [e["type"] for e in await feed_after(client, start) if e["checkout_id"] == checkout_id] \
                    == wanted

            await eventually(in_the_feed, "the checkout's three events in the feed")
            await eventually(lambda: len(receiver.delivered({checkout_id})) >= 3, "the three events delivered")
        delivered = receiver.delivered({checkout_id})
        in_order_per_checkout(delivered)
        assert [e["type"] for e in delivered] == wanted
        assert delivered[-1]["data"]["status"] == "CONFIRMED"
    finally:
        receiver.stop()
