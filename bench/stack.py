"""The servers a bench run talks to: a devstack Stack on free ports in a temporary directory, in memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench.api_client import BenchApi
from runtime.devstack import Stack
from runtime.embedded import free_port
from settings import Settings

MIB = 1024 * 1024


class BenchStack(Stack):
    """A Stack whose children get the bench's ports (the dev Stack takes them from the environment) and the
    placements of the shape being measured (PARTICIPANT_PLACEMENTS: the API and the workers must agree)."""

    placements: dict[str, str] | None = None
    # What the shape being measured sets over the environment below (bench/scenarios/shapes.py, shape_env).
    shape_env: dict[str, str] | None = None

    def env(self) -> dict[str, str]:
        env = super().env()
        # Deployed code runs from compiled bytecode (pip compiles on install). Without it, every new workflow's
        # sandbox compiles the workflow module from source again: give the children a byte-code cache in the
        # temporary directory even where PYTHONDONTWRITEBYTECODE is set (as in this dev environment).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return dict(
            env,
            PYTHONPYCACHEPREFIX=str(self.data_dir / "pycache"),
            API_HOST=self.settings.api_host,
            API_PORT=str(self.settings.api_port),
            TEMPORAL_NAMESPACE=self.settings.temporal_namespace,
            TEMPORAL_UI_PORT=str(self.settings.temporal_ui_port),
            DATA_DIR=str(self.data_dir),
            # The load comes from one address at far more than a caller's rate limit: off, as the bench measures
            # the checkout path (bench/read_flood.py runs the API with the limit on; the whole-booking shape turns
            # it on at a rate no bench caller reaches, through shape_env).
            RATE_LIMIT="0",
            **({"PARTICIPANT_PLACEMENTS": json.dumps(self.placements)} if self.placements is not None else {}),
        ) | (self.shape_env or {})

    def stop_api(self) -> None:
        self.stop_children("api")

    def stop_children(self, name: str) -> None:
        for child_name, child in list(self.children.started):
            if child_name == name:
                self.children.forget(child)

    def place(self, placements: dict[str, str], shape_env: dict[str, str] | None = None) -> None:
        """Restart the API under `placements` and `shape_env` (a no-op when they are already in force) and stop
        the workers and any relay: the caller starts the ones it wants under the same environment."""
        self.stop_workers()
        self.stop_children("relay")
        if placements == self.placements and shape_env == self.shape_env and self.process("api") is not None:
            return
        self.stop_api()
        self.placements = dict(placements)
        self.shape_env = dict(shape_env) if shape_env is not None else None
        self.start_api()

    def start_bench_relay(self, metrics_port: int) -> None:
        """`booking-saga relay` under the shape's environment (its WEBHOOK_URLS), its metrics on `metrics_port`."""
        env = dict(self.env(), RELAY_METRICS_PORT=str(metrics_port), RELAY_METRICS_HOST="127.0.0.1")
        self.children.start("relay", [sys.executable, "-m", "booking_saga.cli", "relay"], env)

    def start_child(self, name: str, args: list[str]) -> None:
        """A helper process (the webhook receiver), stopped with the stack."""
        self.children.start(name, args, self.env())

    def process(self, name: str) -> psutil.Process | None:
        if name == "postgres":  # embedded: the postmaster (bench/cpu.py counts its backends with it)
            pid = self.postgres.pid() if self.postgres is not None else None
            return psutil.Process(pid) if pid is not None else None
        for child_name, child in self.children.started:
            if child_name == name and child.poll() is None:
                return psutil.Process(child.pid)
        return None

    def rss_mib(self, name: str) -> float:
        process = self.process(name)
        return process.memory_info().rss / MIB if process is not None else float("nan")


def bench_settings(settings: Settings, data_dir: Path) -> Settings:
    """The caller's settings on free 127.0.0.1 ports, with embedded PostgreSQL and Redis (never configured ones)."""
    return settings.model_copy(
        update={
            "database_url": "",
            "redis_url": "",
            "api_host": "127.0.0.1",
            "api_port": free_port(),
            "temporal_address": f"127.0.0.1:{free_port()}",
            "temporal_ui_port": free_port(),
            "embedded_redis_port": free_port(),
            "data_dir": str(data_dir),
        }
    )


@contextlib.contextmanager
def running_stack(settings: Settings) -> Iterator[BenchStack]:
    """Temporal (in memory), PostgreSQL and Redis with migrations and demo data; no API or workers yet (each
    shape starts them under its placements, BenchStack.place)."""
    with tempfile.TemporaryDirectory(prefix="booking-bench-") as tmp:
        stack = BenchStack(bench_settings(settings, Path(tmp)), persist=False, seed=True)
        try:
            stack.start_servers()
            yield stack
        finally:
            stack.stop()


async def wait_for_workers(stack: BenchStack, api: BenchApi, *, checkouts: int, patience: float = 180.0) -> None:
    """Warm up: place `checkouts` checkouts once the workers answer (the first waits for them to poll)."""
    deadline = time.monotonic() + patience
    async with api.client() as http:
        inventory = await api.create_inventory(http)
        placed = 0
        while placed < checkouts:
            if (failed := stack.children.exited()) is not None:
                raise RuntimeError(f"{failed[0]} exited with code {failed[1]} while warming up")
            answer = await api.checkout(http, inventory.basket(api.unique("warm")), api.unique("warm"))
            if answer.status == 201:
                placed += 1
            elif time.monotonic() > deadline:
                raise TimeoutError(f"the workers did not place a checkout within {patience:.0f}s: {answer.body}")
            else:
                await asyncio.sleep(0.5)
