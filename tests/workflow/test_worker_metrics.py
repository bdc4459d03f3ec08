"""WORKER_METRICS_PORT: a `booking-saga worker` process serves the Temporal SDK's metrics for Prometheus, in
Prometheus' conventions (counters end in _total, durations in seconds), and logs JSON lines under LOG_FORMAT=json."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from runtime.embedded import free_port
from tests.ledger.helpers import unique

pytestmark = [pytest.mark.devserver]

# Bounds on waiting for the child process, not expectations of speed: a loaded 2-core machine gets all of it.
READY_WITHIN = 30.0
STOP_WITHIN = 15.0
_POLL = 0.2

# Metrics every polling worker reports before it has run a task; the dashboard's other Temporal panels
# (schedule-to-start latencies, sticky cache) come from the same endpoint once tasks flow.
EXPECTED = ("temporal_worker_task_slots_available", "temporal_num_pollers")


@pytest.fixture
def metrics_worker(dev_server_env: WorkflowEnvironment, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes],
                                                                                          Path, int]]:
    client = dev_server_env.client
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
        "TASK_QUEUE_CHECKOUT": unique("checkout-metrics"),
        "WORKER_METRICS_PORT": str(port),
        "LOG_FORMAT": "json",
    })
    stderr_path = tmp_path / "worker.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "booking_saga.cli", "worker", "--service", "checkout", "--noop"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    yield process, stderr_path, port
    if process.poll() is None:
        process.kill()
        process.wait()


def _text(path: Path) -> str:
    return path.read_text(errors="replace")


async def scrape_until(url: str, names: tuple[str, ...], process: subprocess.Popen[bytes], stderr: Path) -> str:
    """The endpoint's text once it lists every one of `names`; fails early if the worker exits."""
    deadline = asyncio.get_running_loop().time() + READY_WITHIN
    body = ""
    async with httpx.AsyncClient(timeout=5.0) as http:
        while True:
            assert process.poll() is None, f"worker exited {process.returncode}:\n{_text(stderr)}"
            try:
                response = await http.get(url)
                body = response.text if response.status_code == 200 else ""
            except httpx.TransportError:
                body = ""  # not listening yet
            if all(name in body for name in names):
                return body
            assert asyncio.get_running_loop().time() < deadline, (
                f"{url} lacks {names} after {READY_WITHIN:.0f}s:\n{body[:2000]}\n{_text(stderr)}"
            )
            await asyncio.sleep(_POLL)


async def test_worker_serves_temporal_sdk_metrics(
    metrics_worker: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    process, stderr, port = metrics_worker
    body = await scrape_until(f"http://127.0.0.1:{port}/metrics", EXPECTED, process, stderr)
    metric_lines = [line for line in body.splitlines() if line and not line.startswith("#")]
    assert metric_lines and all(line.startswith("temporal_") for line in metric_lines), body[:2000]
    # The checkout worker's workflow slots, labelled with its task queue.
    assert any(line.startswith("temporal_worker_task_slots_available{") and 'worker_type="WorkflowWorker"' in line
               for line in metric_lines), body[:2000]

    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, STOP_WITHIN) == 0, _text(stderr)
    # LOG_FORMAT=json: every line the worker wrote is one JSON object.
    records = [json.loads(line) for line in _text(stderr).splitlines()]
    assert any(record["message"] == "workers running: checkout" for record in records), records
