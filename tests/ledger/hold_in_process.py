"""Run as a separate OS process by test_concurrency: place one hold when told to, print the outcome as JSON.

argv: database_url sku quantity hold_key. Prints "ready", waits for a line on stdin, holds, prints the result.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

from services.db import create_engine
from services.errors import Busy, LedgerError
from services.orders.schemas import ItemLine, ItemsRequest
from services.orders.service import OrdersService


async def main(url: str, sku: str, quantity: int, hold_key: str) -> None:
    engine = create_engine(url, pool_size=1)
    orders = OrdersService(engine)
    await orders.availability(sku)  # connect before the start signal, so both processes start level
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    request = ItemsRequest(items=[ItemLine(sku=sku, quantity=quantity)])
    outcome: dict[str, object]
    while True:
        try:
            result = await orders.hold(hold_key, request, datetime.now(UTC) + timedelta(minutes=10))
            outcome = {"ok": True, "result": result.model_dump(mode="json")}
            break
        except Busy:
            continue  # what the activity layer does: try again
        except LedgerError as error:
            outcome = {"ok": False, "error": type(error).__name__}
            break
    print(json.dumps(outcome), flush=True)
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
