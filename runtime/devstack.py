"""The whole stack on one machine from wheels: `booking-saga dev`, and the benchmarks' servers.

Data is kept under DATA_DIR between runs. Each part is a child process stopped in reverse order.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

from runtime.children import Children
from runtime.codec import dev_payload_keys, ui_codec_path
from runtime.embedded import EmbeddedPostgres, port_is_free, redis_args, redis_url, start_postgres, wait_for_port
from runtime.temporal import dev_server_path, dynamic_config_flags
from settings import Settings
from workflows.search_attributes import dev_server_flags


class PortInUse(Exception):
    pass


# The dev server picks the ports of its internal services (history, matching, worker) itself, as free ports it
# releases before binding them again. Any other socket on the machine can take one in between (an outgoing
# connection's local port is enough), and the server then panics during start-up: seen once in CI. A server that
# has just started holds nothing yet, so starting it again is safe.
DEV_SERVER_ATTEMPTS = 3
# The dev server prints this line on stdout once every one of its services has started.
_DEV_SERVER_UP = b"Temporal Server:"
# A service that could not bind its port panics in a goroutine its start has already launched: this long is ample
# for that panic to end the process, so a server still running after it keeps running.
_DEV_SERVER_GRACE_SECONDS = 0.5


def dev_server_args(
    port: int, *, namespace: str, ui_port: int | None = None, db_file: Path | None = None,
    codec_endpoint: str | None = None,
) -> list[str]:
    """`temporal server start-dev` on 127.0.0.1 with our search attributes and dynamic config; its UI decrypts
    payloads through `codec_endpoint` (the API's codec server) when given."""
    ui = ["--ui-port", str(ui_port)] if ui_port is not None else ["--headless"]
    if ui_port is not None and codec_endpoint:
        ui += ["--ui-codec-endpoint", codec_endpoint]
    store = ["--db-filename", str(db_file)] if db_file is not None else []
    return [dev_server_path(), "server", "start-dev", *store, "--ip", "127.0.0.1", "--port", str(port), *ui,
            "--log-level", "warn", "--namespace", namespace, *dev_server_flags(), *dynamic_config_flags()]


def _forward_until_up(stdout: IO[bytes], up: threading.Event) -> None:
    # Reading stdout to its end also keeps the server from blocking on a full pipe after it is up.
    for line in stdout:
        os.write(1, line)
        if line.startswith(_DEV_SERVER_UP):
            up.set()


def _came_up(process: subprocess.Popen[bytes], timeout: float) -> bool:
    assert process.stdout is not None
    up = threading.Event()
    threading.Thread(target=_forward_until_up, args=(process.stdout, up), daemon=True).start()
    deadline = time.monotonic() + timeout
    while not up.wait(0.1):
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Temporal dev server did not finish starting within {timeout:.0f}s")
    try:
        process.wait(_DEV_SERVER_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        return True
    return False


def start_dev_server(children: Children, args: list[str], *, timeout: float = 60.0) -> subprocess.Popen[bytes]:
    """Start the dev server as the child "temporal" and return once all its services are up."""
    for attempt in range(1, DEV_SERVER_ATTEMPTS + 1):
        process = children.start("temporal", args, stdout=subprocess.PIPE)
        if _came_up(process, timeout):
            return process
        children.forget(process)
        print(
            f"the Temporal dev server exited with code {process.returncode} during start-up"
            f" (attempt {attempt} of {DEV_SERVER_ATTEMPTS})",
            file=sys.stderr,
            flush=True,
        )
    raise RuntimeError(f"the Temporal dev server failed to start {DEV_SERVER_ATTEMPTS} times: see its output above")


def temporal_port(settings: Settings) -> int:
    return int(settings.temporal_address.rsplit(":", 1)[1])


def check_ports(settings: Settings) -> None:
    wanted = {
        "API (API_PORT)": settings.api_port,
        "Temporal frontend (TEMPORAL_ADDRESS)": temporal_port(settings),
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


def wait_ready(url: str, children: Children, timeout: float = 120.0) -> None:
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
    from runtime.maintenance import migrate, seed

    await migrate(database_url)
    await seed(database_url)


class Stack:
    """Temporal dev server, PostgreSQL and Redis (embedded unless configured), then workers and the API."""

    def __init__(self, settings: Settings, *, persist: bool = True, seed: bool = True) -> None:
        self.settings = settings
        self.persist = persist
        self.seed = seed
        self.data_dir = Path(settings.data_dir).resolve()
        self.children = Children()
        self.postgres: EmbeddedPostgres | None = None
        self.workers: subprocess.Popen[bytes] | None = None
        self.database_url = settings.database_url
        self.redis_url = settings.redis_url
        self.operator_token = settings.operator_token or secrets.token_urlsafe(32)
        self.api_url = f"http://{settings.api_host}:{settings.api_port}"
        self.ui_url = f"http://127.0.0.1:{settings.temporal_ui_port}"
        # No PAYLOAD_KEYS configured: a dev key, so that `booking-saga dev` needs no setup yet encrypts as
        # production does. This process's own clients (the bench's) use it too.
        self.dev_payload_key = not settings.payload_keys
        if self.dev_payload_key:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            keys = dev_payload_keys(self.data_dir if persist else None)
            self.settings = settings = settings.model_copy(update={"payload_keys": keys, "payload_key_id": ""})
        # The UI's codec server: the API's /codec routes, under a path only the operator token opens (the UI sends
        # no Authorization header of ours; api/routes/codec.py).

        self.codec_endpoint = self.api_url + ui_codec_path(self.operator_token)

    def env(self) -> dict[str, str]:
        # ALLOW_INSECURE: a development stack (CUSTOMER_AUTH=none, the dev CHECKOUT_ID_SECRET) starts with no
        # setup; its API and workers log a warning per setting that production must change (docs/security.md).
        return dict(os.environ, DATABASE_URL=self.database_url, REDIS_URL=self.redis_url,
                    TEMPORAL_ADDRESS=self.settings.temporal_address, OPERATOR_TOKEN=self.operator_token,
                    PAYLOAD_KEYS=self.settings.payload_keys, PAYLOAD_KEY_ID=self.settings.payload_key_id,
                    CODEC_CORS_ORIGINS=json.dumps(self.codec_cors_origins()), ALLOW_INSECURE="1")

    def codec_cors_origins(self) -> list[str]:
        """The configured UI origins, and the dev UI's own (both spellings of the loopback address)."""
        port = self.settings.temporal_ui_port
        dev_ui = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
        return [*self.settings.codec_cors_origins, *(o for o in dev_ui if o not in self.settings.codec_cors_origins)]

    def start_servers(self) -> None:
        check_ports(self.settings)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.postgres = start_postgres(self.data_dir / "postgres", delete_on_stop=not self.persist)
            self.database_url = self.postgres.url
        if not self.redis_url:
            port = self.settings.embedded_redis_port
            self.children.start("redis", redis_args(self.data_dir / "redis", port, persist=self.persist))
            wait_for_port(port)
            self.redis_url = redis_url(port)
        args = dev_server_args(
            temporal_port(self.settings),
            namespace=self.settings.temporal_namespace,
            ui_port=self.settings.temporal_ui_port,
            db_file=self.data_dir / "temporal.db" if self.persist else None,
            codec_endpoint=self.codec_endpoint,
        )
        start_dev_server(self.children, args)
        if self.seed:
            asyncio.run(_migrate_and_seed(self.database_url))

    def start_workers(self, *, noop: bool = False) -> None:
        args = [sys.executable, "-m", "booking_saga.cli", "worker", "--service", "all"]
        self.workers = self.children.start("workers", args + (["--noop"] if noop else []), self.env())

    def stop_workers(self) -> None:
        if self.workers is not None:
            self.children.forget(self.workers)
            self.workers = None

    def start_relay(self) -> None:
        """The webhook relay, when WEBHOOK_URLS names endpoints (booking_saga/relay.py)."""
        if self.settings.webhook_urls:
            self.children.start("relay", [sys.executable, "-m", "booking_saga.cli", "relay"], self.env())

    def start_api(self) -> None:
        self.children.start("api", [sys.executable, "-m", "booking_saga.cli", "api"], self.env())
        wait_ready(f"{self.api_url}/readyz", self.children)

    def stop(self) -> None:
        self.children.stop_all()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


def run(settings: Settings) -> int:
    """`booking-saga dev`: bring everything up, print where it is, wait for Ctrl-C."""
    stack = Stack(settings)
    stopping = False

    def _request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        stack.start_servers()
        stack.start_workers()
        stack.start_relay()
        stack.start_api()
        token_note = "" if settings.operator_token else "  (generated: set OPERATOR_TOKEN to keep one)"
        key_note = (f"DEV KEY in {stack.data_dir / 'payload-keys'}: production sets its own PAYLOAD_KEYS"
                    if stack.dev_payload_key else "PAYLOAD_KEYS as configured")
        print(
            "\nbooking-saga is up:\n"
            f"  API            {stack.api_url}  (docs: {stack.api_url}/docs)\n"
            f"  Temporal UI    {stack.ui_url}  (decrypts through {stack.api_url}/codec)\n"
            f"  Temporal       {settings.temporal_address}  namespace {settings.temporal_namespace}\n"
            f"  PostgreSQL     {stack.database_url}\n"
            f"  Redis          {stack.redis_url}\n"
            f"  operator token {stack.operator_token}{token_note}\n"
            f"  payload key    {key_note}\n"
            f"  events         {stack.api_url}/v1/events; webhooks to "
            f"{', '.join(settings.webhook_urls) or 'nowhere (WEBHOOK_URLS unset)'}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        while not stopping:
            if (failed := stack.children.exited()) is not None:
                print(f"{failed[0]} exited with code {failed[1]}: stopping the stack", file=sys.stderr)
                return 1
            time.sleep(0.3)
        return 0
    except PortInUse as problem:
        print(problem, file=sys.stderr)
        return 2
    finally:
        print("stopping...", file=sys.stderr, flush=True)
        stack.stop()
