"""`booking-saga dev` as a user runs it: everything comes up, answers, and stops without leaving a process."""

from __future__ import annotations

import asyncio
import base64
import json
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
from temporalio.client import Client

from runtime.embedded import free_port
from runtime.temporal import dev_server_path

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
    # No setup: no servers, no operator token, no payload keys (the dev stack generates a dev key).
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "OPERATOR_TOKEN", "PAYLOAD_KEYS", "PAYLOAD_KEY_ID")}
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
        _the_cli_decrypts_it(env, *asyncio.run(_the_ui_decrypts_a_checkout(env, tmp_path / "data")))
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


async def _the_ui_decrypts_a_checkout(env: dict[str, str], data_dir: Path) -> tuple[str, str]:
    """A checkout's input is encrypted in Temporal with the generated dev key, and the dev UI's codec endpoint
    (its settings, as the browser reads them) decrypts it for a request from the UI's origin."""
    assert (data_dir / "payload-keys").read_text().startswith("dev:")
    api = f"http://127.0.0.1:{env['API_PORT']}"
    ui = f"http://127.0.0.1:{env['TEMPORAL_UI_PORT']}"
    body = {"customer_id": "smoke-customer", "items": [{"sku": "SKU-MUG", "quantity": 1}]}
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(f"{api}/v1/checkouts", json=body, headers={"Idempotency-Key": "smoke-codec"})
        assert created.status_code == 201, created.text
        endpoint = (await http.get(f"{ui}/api/v1/settings")).json()["Codec"]["Endpoint"]
        assert endpoint.startswith(f"{api}/codec/ui/")
        outsider = await Client.connect(env["TEMPORAL_ADDRESS"])  # no codec
        history = await outsider.get_workflow_handle(created.json()["checkout_id"]).fetch_history()
        payload = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
        assert b"smoke-customer" not in payload.data
        wire = {"metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
                "data": base64.b64encode(payload.data).decode()}
        decoded = await http.post(f"{endpoint}/decode", json={"payloads": [wire]},
                                  headers={"Origin": ui, "X-Namespace": "default"})
        assert decoded.status_code == 200, decoded.text
        assert decoded.headers["access-control-allow-origin"] == ui
        assert b"smoke-customer" in base64.b64decode(decoded.json()["payloads"][0]["data"])
    return created.json()["checkout_id"], endpoint


def _the_cli_decrypts_it(env: dict[str, str], checkout_id: str, endpoint: str) -> None:
    """The Temporal CLI speaks the same protocol: with the codec endpoint it shows the input decrypted."""
    show = [dev_server_path(), "workflow", "show", "--address", env["TEMPORAL_ADDRESS"], "--workflow-id",
            checkout_id, "--output", "json"]

    def started_input(*codec: str) -> tuple[bytes, bytes]:
        shown = subprocess.run([*show, *codec], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        event = json.loads(shown.stdout)["events"][0]["workflowExecutionStartedEventAttributes"]
        payload = event["input"]["payloads"][0]
        return base64.b64decode(payload["metadata"]["encoding"]), base64.b64decode(payload["data"])

    encoding, data = started_input("--codec-endpoint", endpoint)
    assert encoding == b"json/plain" and b"smoke-customer" in data
    encoding, data = started_input()
    assert encoding == b"binary/encrypted" and b"smoke-customer" not in data


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


def test_dev_with_customer_jwt_and_only_a_secret_starts_and_warns(tmp_path: Path) -> None:
    """Production refuses a JWT setup without audience and issuer (docs/security.md); `booking-saga dev` only warns,
    and its API rate-limits callers as production does."""
    env = _dev_env(tmp_path / "data")
    env.update(CUSTOMER_AUTH="jwt", CUSTOMER_JWT_SECRET="s" * 32)
    env.pop("RATE_LIMIT", None)
    env.pop("ALLOW_INSECURE", None)
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen([sys.executable, "-m", "booking_saga.cli", "dev"], env=env, stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT)
        try:
            api = f"http://127.0.0.1:{env['API_PORT']}"
            assert _wait_for(f"{api}/readyz", dev).json()["ready"] is True
            # A checkout route without a customer token: 401, as in production.
            assert httpx.get(f"{api}/v1/checkouts/co-{'0' * 32}", timeout=5).status_code == 401
            # The default rate limit is on: a burst past twice RATE_LIMIT from one address is refused.
            # Sent 16 at a time until one is refused (at most 600): however slow this machine answers, the burst
            # outruns RATE_LIMIT's window.
            assert _refused_within(f"{api}/v1/nothing", 600), "no request was refused"
        finally:
            dev.send_signal(signal.SIGINT)
            code = dev.wait(90)
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    for named in ("CUSTOMER_JWT_AUDIENCE is not set", "CUSTOMER_JWT_ISSUER is not set",
                  "CHECKOUT_ID_SECRET is the development default"):
        assert named in text and "ALLOW_INSECURE=1" in text, text[-3000:]


def _refused_within(url: str, most: int) -> bool:
    """Whether one of at most `most` GETs of `url`, 16 at a time, is answered 429."""
    from concurrent.futures import ThreadPoolExecutor

    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(16) as pool:
        for _ in range(most // 16):
            if 429 in set(pool.map(lambda _i: client.get(url).status_code, range(16))):
                return True
    return False
