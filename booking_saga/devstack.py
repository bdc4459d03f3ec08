"""`booking-saga dev`: the whole stack on one machine from wheels, data kept under .data/ between runs."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
import urllib.request
from pathlib import Path

from booking_saga.children import Children
from booking_saga.embedded import port_is_free, redis_args, redis_url, start_postgres, wait_for_port
from booking_saga.settings import Settings
from booking_saga.temporal import dev_server_path
from workflows.search_attributes import dev_server_flags


class PortInUse(Exception):
    pass


def _temporal_port(settings: Settings) -> int:
    return int(settings.temporal_address.rsplit(":", 1)[1])


def check_ports(settings: Settings) -> None:
    wanted = {
        "API (API_PORT)": settings.api_port,
        "Temporal frontend (TEMPORAL_ADDRESS)": _temporal_port(settings),
        "Temporal UI (TEMPORAL_UI_PORT)": settings.temporal_ui_port,
    }
    if not settings.redis_url:
        wanted["embedded Redis (EMBEDDED_REDIS_PORT)"] = settings.embedded_redis_port
    busy = [f"  {port} for the {what}" for what, port in wanted.items() if not port_is_free(port)]
    if busy:
        raise PortInUse(
            "These ports are already in use (another `booking-saga dev`?):\n"
            + "\n".join(busy)
            + "\nStop whatever holds them, or pick other ports with the variables named."
        )


def _wait_ready(url: str, children: Children, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (failed := children.exited()) is not None:
            raise RuntimeError(f"{failed[0]} exited with code {failed[1]} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")


async def _migrate_and_seed(database_url: str) -> None:
    from booking_saga.maintenance import migrate, seed

    await migrate(database_url)
    await seed(database_url)


def run(settings: Settings) -> int:
    try:
        check_ports(settings)
    except PortInUse as problem:
        print(problem, file=sys.stderr)
        return 2

    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    children = Children()
    postgres = None
    stopping = False

    def _request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        database_url = settings.database_url
        if not database_url:
            postgres = start_postgres(data_dir / "postgres")
            database_url = postgres.url
        cache_url = settings.redis_url
        if not cache_url:
            children.start("redis", redis_args(data_dir / "redis", settings.embedded_redis_port, persist=True))
            wait_for_port(settings.embedded_redis_port)
            cache_url = redis_url(settings.embedded_redis_port)

        temporal_port = _temporal_port(settings)
        children.start(
            "temporal",
            [dev_server_path(), "server", "start-dev", "--db-filename", str(data_dir / "temporal.db"),
             "--ip", "127.0.0.1", "--port", str(temporal_port), "--ui-port", str(settings.temporal_ui_port),
             "--log-level", "warn", "--namespace", settings.temporal_namespace, *dev_server_flags()],
        )
        wait_for_port(temporal_port, timeout=60)

        asyncio.run(_migrate_and_seed(database_url))

        operator_token = settings.operator_token or secrets.token_urlsafe(24)
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=cache_url,
                   TEMPORAL_ADDRESS=settings.temporal_address, OPERATOR_TOKEN=operator_token)
        command = [sys.executable, "-m", "booking_saga.cli"]
        children.start("workers", [*command, "worker", "--service", "all"], env)
        children.start("api", [*command, "api"], env)
        api = f"http://{settings.api_host}:{settings.api_port}"
        token_note = "" if settings.operator_token else "  (generated: set OPERATOR_TOKEN to keep one)"
        _wait_ready(f"{api}/readyz", children)

        print(
            "\nbooking-saga is up:\n"
            f"  API            {api}  (docs: {api}/docs)\n"
            f"  Temporal UI    http://127.0.0.1:{settings.temporal_ui_port}\n"
            f"  Temporal       {settings.temporal_address}  namespace {settings.temporal_namespace}\n"
            f"  PostgreSQL     {database_url}\n"
            f"  Redis          {cache_url}\n"
            f"  operator token {operator_token}{token_note}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        while not stopping:
            if (failed := children.exited()) is not None:
                print(f"{failed[0]} exited with code {failed[1]}: stopping the stack", file=sys.stderr)
                return 1
            time.sleep(0.3)
        return 0
    finally:
        print("stopping...", file=sys.stderr, flush=True)
        children.stop_all()
        if postgres is not None:
            postgres.stop()
