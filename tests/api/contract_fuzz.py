"""The contract fuzz harness: the live app served over HTTP on loopback, and schemathesis (its CLI, as a client
generator reads the contract: only the published OpenAPI document) run against it with every check.

The app is wrapped in a counter of what it answered, by operation and status: the stateful phase's reach (a 200
on confirm, cancel and extend of a checkout a 201 created) is read from what the server itself served.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as redis
import uvicorn
from sqlalchemy import pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.openapi_contract import CREATE
from api.routes.availability import availability_operation, upsert_operation
from services.db import async_url
from services.migrate import reset
from services.participant import NoQuery
from services.registry import PARTICIPANTS

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKOUT_ID = re.compile(r"co-[0-9a-f]{32}")


def operation_of(method: str, path: str) -> str:
    """'POST /v1/checkouts/{checkout_id}/confirm' for any id that has the shape of a checkout id."""
    return f"{method} {CHECKOUT_ID.sub('{checkout_id}', path)}"


@dataclass
class Answers:
    """What the server answered: (operation, status) -> count."""

    counts: Counter[tuple[str, int]] = field(default_factory=Counter)

    def total(self) -> int:
        return sum(self.counts.values())

    def of(self, operation: str, status: int) -> int:
        return self.counts[(operation, status)]


class CountingApp:
    """ASGI middleware: counts every HTTP answer by operation and status."""

    def __init__(self, app: ASGIApp, answers: Answers) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        operation = operation_of(scope["method"], scope["path"])

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.answers.counts[(operation, int(message["status"]))] += 1
            await send(message)

        await self.app(scope, receive, counting_send)


@contextlib.asynccontextmanager
async def own_database(server_url: str) -> AsyncIterator[str]:
    """A migrated database of its own on the same PostgreSQL server, dropped afterwards: the fuzz seeds the demo
    inventory and upserts whatever it generates, which other tests sharing a database must not see."""
    name = f"contract_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(async_url(server_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(async_url(server_url)).set(database=name).render_as_string(hide_password=False)
        try:
            await reset(url)
            yield url
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


# The Redis logical database the fuzz's sold-out hints go to: the demo rows it sells out are named as other tests'
# demo rows are, and a hint must not leak into their stacks.
FUZZ_REDIS_DB = 15


async def own_redis_db(redis_url: str) -> str:
    """The same Redis server, logical database FUZZ_REDIS_DB, emptied of a previous run's hints."""
    url = urlunsplit(urlsplit(redis_url)._replace(path=f"/{FUZZ_REDIS_DB}"))
    client = redis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return url


@contextlib.asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """Serve `app` (its lifespan included) on a free loopback port for the block; yields the base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # the server failed to start: raise its error
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# A demo value is picked this often for a bound field: most generated checkouts then name inventory that
# exists and can be booked (a 201 the stateful phase follows); the rest, and every other field, still explore.
DEMO_PROBABILITY = 0.97
# Schema-valid requests that may still be refused by a rule the schema cannot state (documented in the
# operation's description, answered 422 naming the field): unknown resources, date order, capacity below held.
CROSS_FIELD_422 = ["2xx", "401", "403", "404", "409", "422", "429"]


def _add(values: dict[str, list[object]], key: str, value: object) -> None:
    if isinstance(value, str | int) and not isinstance(value, bool):
        known = values.setdefault(key, [])
        if value not in known:
            known.append(value)


def _demo_values(today: date) -> dict[str, dict[str, list[object]]]:
    """Per operationId, every field the participants' demo offers fill, with the values they use (names the demo
    inventory has, dates it covers, one unit): the checkout body's ('body.items[*].sku') and each availability
    route's path id and query ('path.hotel_id', 'query.check_in')."""
    operations: dict[str, dict[str, list[object]]] = {CREATE: {}}
    for participant in PARTICIPANTS:
        spec = participant.routes
        if spec is None or not participant.inventory:  # a payment has no inventory to name
            continue
        availability = operations.setdefault(availability_operation(participant), {})
        query_fields = set(spec.query.model_fields) if spec.query is not NoQuery else set()
        for offer in participant.demo_offers(today):
            body = participant.to_body(offer)
            lines, prefix = (body, f"body.{participant.field}[*]") if isinstance(body, list) else (
                [body], f"body.{participant.field}")
            for line in lines:
                for name, value in line.items():
                    _add(operations[CREATE], f"{prefix}.{name}", value)
                    if name == spec.id_name:
                        _add(availability, f"path.{name}", value)
                    elif name in query_fields:
                        _add(availability, f"query.{name}", value)
    return operations


def write_config(path: Path, today: date, max_examples: int, stateful_examples: int) -> Path:
    """schemathesis.toml: the demo dictionaries bound to the operations that read inventory (never to the
    upserts, which would change it), and the operations whose schema-valid requests may meet a documented
    cross-field 422."""
    # list_checkouts: a cursor is opaque (only one this API gave decodes), and under CUSTOMER_AUTH=none a
    # customer_id is needed; cancel_checkout: parts the checkout does not have.
    may_422 = {CREATE, "list_checkouts", "cancel_checkout",
               *(upsert_operation(p) for p in PARTICIPANTS if p.routes is not None), *(
        availability_operation(p) for p in PARTICIPANTS if p.routes is not None and p.routes.query is not NoQuery
    )}
    lines = ["[generation]", f"max-examples = {max_examples}", ""]
    # The stateful phase is the only one that reaches confirm, cancel and extend of a real checkout (through the
    # links): more scenarios than the other phases' examples.
    lines += ["[phases.stateful.generation]", f"max-examples = {stateful_examples}", ""]
    dictionaries: list[str] = []
    operations: list[str] = []
    for operation_id, fields in sorted(_demo_values(today).items()):
        bindings: list[str] = []
        for key, known in sorted(fields.items()):
            name = f"demo{sum(line.startswith('[dictionaries.') for line in dictionaries)}"
            dictionaries += [f"[dictionaries.{name}]", f"values = {json.dumps(known)}", ""]
            bindings.append(f'{json.dumps(key)} = {{ dictionary = "{name}", probability = {DEMO_PROBABILITY} }}')
        operations += ["[[operations]]", f"include-operation-id = {json.dumps(operation_id)}",
                       f"parameters = {{ {', '.join(bindings)} }}"]
        if operation_id in may_422:
            operations.append(f"checks.positive_data_acceptance.expected-statuses = {json.dumps(CROSS_FIELD_422)}")
            may_422.discard(operation_id)
        operations.append("")
    for operation_id in sorted(may_422):
        operations += ["[[operations]]", f"include-operation-id = {json.dumps(operation_id)}",
                       f"checks.positive_data_acceptance.expected-statuses = {json.dumps(CROSS_FIELD_422)}", ""]
    path.write_text("\n".join([*lines, *dictionaries, *operations]))
    return path


@dataclass(frozen=True)
class FuzzRun:
    exit_code: int
    output: str
    report: dict[str, Any]


async def run_schemathesis(base_url: str, report_dir: Path, *, operator_token: str, max_examples: int,
                           stateful_examples: int, seed: int) -> FuzzRun:
    """`schemathesis run` against the live schema with every check and every phase (examples, coverage,
    fuzzing, stateful). The operator token rides on every request: operator routes need it, checkout routes
    (CUSTOMER_AUTH=none) ignore it."""
    report_path = report_dir / "report.json"
    config = await asyncio.to_thread(_prepare, report_dir, max_examples, stateful_examples)
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{base_url}/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--seed", str(seed),
        # No example database: a run is the same on a fresh clone (CI) and after earlier runs on a laptop.
        "--generation-database", "none",
        "--workers", "1",
        "--header", f"Authorization: Bearer {operator_token}",
        "--suppress-health-check", "all",
        "--continue-on-failure",
        "--request-timeout", "60",
        "--report", "json", "--report-json-path", str(report_path),
        "--output-truncate", "false",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={"NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false", "PATH": str(SCHEMATHESIS.parent)},
    )
    stdout, _ = await process.communicate()
    output = stdout.decode(errors="replace")
    report = await asyncio.to_thread(_finish, report_dir, report_path, output)
    return FuzzRun(exit_code=process.returncode or 0, output=output, report=report)


def _prepare(report_dir: Path, max_examples: int, stateful_examples: int) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    return write_config(report_dir / "schemathesis.toml", datetime.now(UTC).date(), max_examples, stateful_examples)


def _finish(report_dir: Path, report_path: Path, output: str) -> dict[str, Any]:
    """Keep the console output next to the report (CI uploads the folder); the parsed JSON report."""
    (report_dir / "output.txt").write_text(output)
    report: dict[str, Any] = json.loads(report_path.read_text()) if report_path.exists() else {}
    return report
