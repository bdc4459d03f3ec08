"""`booking-saga dev` as a user runs it: everything comes up, answers, and stops without leaving a process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from booking_saga.embedded import free_port

pytestmark = [pytest.mark.devserver, pytest.mark.slow]


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 180.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"booking-saga dev exited early with {process.returncode}"
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered 200")


def _dev_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "OPERATOR_TOKEN")}
    env.update(
        DATA_DIR=str(data_dir),
        API_PORT=str(free_port()),
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        TEMPORAL_UI_PORT=str(free_port()),
        EMBEDDED_REDIS_PORT=str(free_port()),
    )
    return env


def test_dev_stack_starts_answers_and_stops_clean(tmp_path: Path) -> None:
    env = _dev_env(tmp_path / "data")
    dev = subprocess.Popen([sys.executable, "-m", "booking_saga.cli", "dev"], env=env, stdin=subprocess.DEVNULL)
    try:
        ready = _wait_for(f"http://127.0.0.1:{env['API_PORT']}/readyz", dev)
        checks = ready.json()["checks"]
        assert ready.json()["ready"] is True
        assert {name: check["ok"] for name, check in checks.items()} == {
            "temporal": True,
            "database": True,
            "redis": True,
        }
        ui = _wait_for(f"http://127.0.0.1:{env['TEMPORAL_UI_PORT']}/", dev, timeout=60)
        assert "html" in ui.headers.get("content-type", "")
        # The demo inventory was seeded.
        mug = httpx.get(f"http://127.0.0.1:{env['API_PORT']}/v1/items/SKU-MUG/availability", timeout=5)
        assert mug.status_code == 200 and mug.json()["capacity"] > 0
        family = psutil.Process(dev.pid).children(recursive=True)
        assert len(family) >= 4  # redis, temporal, workers, api (postgres is daemonized by pg_ctl)
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(90)
    assert code == 0
    _gone, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], f"left behind: {[p.pid for p in alive]}"
    pgdata = tmp_path / "data" / "postgres"
    assert not (pgdata / "postmaster.pid").exists(), "embedded PostgreSQL still running"


def test_dev_refuses_a_port_in_use(tmp_path: Path) -> None:
    env = _dev_env(tmp_path / "data")

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", int(env["API_PORT"])))
        busy.listen()
        result = subprocess.run(
            [sys.executable, "-m", "booking_saga.cli", "dev"], env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 2
    assert f"{env['API_PORT']} for the API" in result.stderr
    assert "Traceback" not in result.stderr
