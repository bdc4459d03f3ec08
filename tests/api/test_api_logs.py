"""The API tags its log records about a checkout with the checkout id (LOG_FORMAT=json prints it on the line):
bound in the checkout routes as soon as the id is known, so the request's later records all carry it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from api.idempotency import checkout_id
from runtime.embedded import free_port
from runtime.logs import build_handler
from services.logcontext import checkout_context
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app

BODY = {"customer_id": "c-logs", "flight": {"flight_id": "BA117", "seat_class": "economy", "seats": 1}}
SETTINGS = Settings(operator_token=OPERATOR_TOKEN, temporal_address=f"127.0.0.1:{free_port()}", database_url="",
                    redis_url="")


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # Temporal unreachable, no database, no Redis: every checkout route answers 503 after binding its id.
    async with running_app(SETTINGS) as (_app, http):
        yield http


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The API's loggers write JSON into a buffer, as under LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = build_handler("json", stream)
    logger = logging.getLogger("api")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def _records(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_checkout_request_logs_with_its_checkout_id(
    client: httpx.AsyncClient, json_lines: io.StringIO
) -> None:
    with checkout_context("outside"):  # the request's own binding wins inside it, and is not this one
        response = await client.post("/v1/checkouts", json=BODY, headers={"Idempotency-Key": "log-key-1"})
    assert response.status_code == 503, response.text
    expected = checkout_id(SETTINGS.checkout_id_secret, "c-logs", "log-key-1")
    records = [r for r in _records(json_lines) if r["logger"] == "api.admission"]
    assert records and all(record.get("checkout_id") == expected for record in records), records


async def test_a_request_without_a_checkout_id_logs_none(
    client: httpx.AsyncClient, json_lines: io.StringIO
) -> None:
    response = await client.post("/v1/checkouts", json={**BODY, "hold_seconds": 1}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 422, response.text
    records = [r for r in _records(json_lines) if r["logger"] == "api.admission"]
    assert records and all("checkout_id" not in record for record in records), records
