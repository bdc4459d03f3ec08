"""Secure by default (docs/security.md), tried from outside as a client or an operator would:

1. unsafe production settings refuse `booking-saga api` at start, naming each setting; ALLOW_INSECURE=1 starts
   it with a warning per setting;
2. bodies over MAX_BODY_BYTES are refused 413 before they are read (Content-Length, or chunked while streaming),
   over a real uvicorn; two Authorization or Idempotency-Key headers are a 400;
3. per-caller rate limits shared by replicas through Redis, 429 with Retry-After; Redis down lets requests through;
7. /readyz says which dependency is down without a driver message, an address or a port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis.asyncio as redis
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from api import rate_limit
from api.main import create_app
from runtime.embedded import free_port
from settings import MIN_SECRET_BYTES, Settings, UnsafeSettings, start_checks
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import unique
from tests.api.contract_fuzz import serve
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_api_without_servers import assert_problem
from tests.api.test_identity import AUDIENCE, ISSUER, bearer, make_issuer

REPO = Path(__file__).resolve().parents[2]
SECRET = "s" * MIN_SECRET_BYTES
# Production settings that pass every start check.
SAFE_ENV = {
    "OPERATOR_TOKEN": "o" * MIN_SECRET_BYTES,
    "CHECKOUT_ID_SECRET": "c" * MIN_SECRET_BYTES,
    "CUSTOMER_AUTH": "jwt",
    "CUSTOMER_JWT_SECRET": SECRET,
    "CUSTOMER_JWT_AUDIENCE": "https://api.shop.example",
    "CUSTOMER_JWT_ISSUER": "https://login.shop.example",
}
RATE_LIMITED = "https://booking-saga.dev/problems/rate-limited"


def _settings(env: dict[str, str]) -> Settings:
    return Settings(**{name.lower(): value for name, value in env.items()})


# --- 1. start checks ---------------------------------------------------------------------------------------------

UNSAFE = [
    ({"CUSTOMER_AUTH": "none"}, "CUSTOMER_AUTH=none"),
    ({"OPERATOR_TOKEN": "o" * (MIN_SECRET_BYTES - 1)}, "OPERATOR_TOKEN is shorter than 32 bytes"),
    ({"CHECKOUT_ID_SECRET": "dev-only-change-me"}, "CHECKOUT_ID_SECRET is the development default"),
    ({"CHECKOUT_ID_SECRET": "short"}, "CHECKOUT_ID_SECRET is shorter than 32 bytes"),
    ({"CUSTOMER_JWT_AUDIENCE": ""}, "CUSTOMER_JWT_AUDIENCE is not set"),
    ({"CUSTOMER_JWT_ISSUER": ""}, "CUSTOMER_JWT_ISSUER is not set"),
]


def test_safe_production_settings_pass() -> None:
    settings = _settings(SAFE_ENV)
    assert settings.unsafe("api") == []
    start_checks(settings, "api")
    start_checks(settings, "worker")


@pytest.mark.parametrize(("change", "named"), UNSAFE)
def test_each_unsafe_setting_is_refused_by_name(change: dict[str, str], named: str) -> None:
    settings = _settings({**SAFE_ENV, **change})
    with pytest.raises(UnsafeSettings, match="ALLOW_INSECURE=1") as refused:
        start_checks(settings, "api")
    assert named in str(refused.value)
    with pytest.raises(UnsafeSettings):
        create_app(settings)


def test_allow_insecure_starts_and_warns_about_each(caplog: pytest.LogCaptureFixture) -> None:
    # The development defaults: every rule at once.
    settings = Settings(operator_token="short", allow_insecure=True)
    with caplog.at_level(logging.WARNING, "settings"):
        create_app(settings)
    warned = [record.getMessage() for record in caplog.records]
    for named in ("OPERATOR_TOKEN", "CHECKOUT_ID_SECRET", "CUSTOMER_AUTH=none"):
        assert any(named in line and "ALLOW_INSECURE=1" in line for line in warned), warned


def test_no_operator_token_is_refused_even_when_insecure_is_allowed() -> None:
    with pytest.raises(UnsafeSettings, match="OPERATOR_TOKEN is not set"):
        create_app(Settings(operator_token="", allow_insecure=True))


def _cli_env(**values: str) -> dict[str, str]:
    # Nothing listens at these: the API starts anyway (it connects lazily) and the test never needs them.
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYTHONPATH", "VIRTUAL_ENV")}
    return {**keep, "DATABASE_URL": f"postgresql://x@127.0.0.1:{free_port()}/x",
            "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}", "API_HOST": "127.0.0.1", "API_PORT": str(free_port()),
            **values}


def test_the_api_command_refuses_unsafe_settings_naming_them() -> None:
    env = _cli_env(**{**SAFE_ENV, "CUSTOMER_AUTH": "none", "CHECKOUT_ID_SECRET": "short"})
    result = subprocess.run([sys.executable, "-m", "booking_saga.cli", "api"], env=env, capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 1, result.stderr
    assert "CUSTOMER_AUTH=none" in result.stderr and "CHECKOUT_ID_SECRET" in result.stderr, result.stderr
    assert "ALLOW_INSECURE=1" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_settings_stop_a_command_naming_them_without_echoing_values() -> None:
    env = _cli_env(**{**SAFE_ENV, "CUSTOMER_JWT_SECRET": "", "REDIS_URL": "redis://:hunter2-redis@127.0.0.1:1/0"})
    result = subprocess.run([sys.executable, "-m", "booking_saga.cli", "api"], env=env, capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 1, result.stderr
    assert "CUSTOMER_JWT_SECRET" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "hunter2" not in result.stderr and SAFE_ENV["OPERATOR_TOKEN"] not in result.stderr, result.stderr


def test_the_api_command_with_allow_insecure_starts_and_logs_each_setting(tmp_path: Path) -> None:
    env = _cli_env(OPERATOR_TOKEN=SAFE_ENV["OPERATOR_TOKEN"], ALLOW_INSECURE="1")  # dev secrets, CUSTOMER_AUTH=none
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        api = subprocess.Popen([sys.executable, "-m", "booking_saga.cli", "api"], env=env, stdout=out,
                               stderr=subprocess.STDOUT, cwd=REPO)
        try:
            url = f"http://127.0.0.1:{env['API_PORT']}/healthz"
            for _ in range(600):  # bounded: the test fails only if it never answers
                assert api.poll() is None, log.read_text()
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            else:
                pytest.fail(f"the API never answered: {log.read_text()}")
        finally:
            api.send_signal(signal.SIGTERM)
            api.wait(60)
    text = log.read_text()
    for named in ("CHECKOUT_ID_SECRET is the development default", "CUSTOMER_AUTH=none"):
        assert named in text and "ALLOW_INSECURE=1" in text, text


# --- 2. body size and duplicate headers, over a real uvicorn ------------------------------------------------------

@pytest.fixture(scope="module")
async def server() -> AsyncIterator[str]:
    # No Temporal, database or Redis behind it: every refusal here comes before any of them is needed.
    settings = Settings(operator_token=OPERATOR_TOKEN, temporal_address=f"127.0.0.1:{free_port()}",
                        database_url="", redis_url="", allow_insecure=True, rate_limit=0)
    assert settings.max_body_bytes == 64 * 1024  # the default is what is tried
    async with serve(create_app(settings)) as url:
        yield url


async def raw_exchange(url: str, head: str, parts: list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """Send a request head and body parts over one connection, then read one answer: status, headers, body. The
    body need not be complete: the answer is read without sending the rest."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
        for part in parts:
            writer.write(part)
            await writer.drain()
        status_line = await reader.readline()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.parametrize(("method", "path", "auth"), [
    ("POST", "/v1/checkouts", ""),  # the sold-out lane reads this body: the guard must come first
    ("PUT", "/v1/inventory/items/SKU-1", f"Authorization: Bearer {OPERATOR_TOKEN}\n"),
])
async def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(
    server: str, method: str, path: str, auth: str
) -> None:
    head = (f"{method} {path} HTTP/1.1\nHost: api\nContent-Type: application/json\nIdempotency-Key: k-1\n{auth}"
            f"Content-Length: {20 * 1024 * 1024}\n")
    status, headers, body = await raw_exchange(server, head, [b"{" + b" " * 1023])  # 1 KiB of the 20 MiB
    assert status == 413, body
    assert headers["content-type"] == "application/problem+json"
    assert b"65536 bytes" in body and b"body-too-large" in body


async def test_a_chunked_body_is_413_as_soon_as_it_passes_the_limit(server: str) -> None:
    head = ("POST /v1/checkouts HTTP/1.1\nHost: api\nContent-Type: application/json\nIdempotency-Key: k-2\n"
            "Transfer-Encoding: chunked\n")
    # 80 KiB in 16 KiB chunks, and no final chunk: the answer comes while the body is still open.
    status, headers, body = await raw_exchange(server, head, [_chunk(b" " * 16 * 1024) for _ in range(5)])
    assert status == 413, body
    assert headers["content-type"] == "application/problem+json"


async def test_a_chunked_body_within_the_limit_reaches_the_route(server: str) -> None:
    head = ("POST /v1/checkouts HTTP/1.1\nHost: api\nContent-Type: application/json\nIdempotency-Key: k-3\n"
            "Transfer-Encoding: chunked\n")
    status, headers, body = await raw_exchange(server, head, [_chunk(b'{"customer_id": '), _chunk(b'"c1"}'),
                                                              b"0\r\n\r\n"])
    assert status == 422, body  # the route's own answer, to the whole body: it names nothing to book
    assert headers["content-type"] == "application/problem+json" and b"invalid-request" in body


@pytest.mark.parametrize("header", ["Authorization", "Idempotency-Key"])
async def test_a_repeated_header_is_400(server: str, header: str) -> None:
    headers = [(header, "Bearer one" if header == "Authorization" else "k-4"),
               (header, "Bearer two" if header == "Authorization" else "k-5"),
               ("Idempotency-Key" if header == "Authorization" else "X-Other", "k-6")]
    async with httpx.AsyncClient(base_url=server) as http:
        for path in ("/v1/checkouts", "/v1/audit"):
            response = await http.post(path, json={"customer_id": "c1"}, headers=headers)
            body = assert_problem(response, 400, f"send one {header} header")
            assert body["type"].endswith("/duplicate-header")


# --- 3. rate limits -----------------------------------------------------------------------------------------------

RATE = 2  # per second: a burst of 4 in any window
# The rate tests' window (production's is 2 s, api/rate_limit.py): long enough that a test's burst always falls in
# one window however slow a loaded machine answers (with 2 s, a burst answered slower than that was not refused).
WINDOW = 30


@pytest.fixture
async def limit_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session's Redis, a logical database of the rate tests' own, emptied: no count from another test.
    The limiters the test's apps build meanwhile count over WINDOW seconds."""
    monkeypatch.setattr(rate_limit, "WINDOW_SECONDS", WINDOW)
    url = urlunsplit(urlsplit(redis_url)._replace(path="/13"))
    client = redis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return url


def limited_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "operator_token": OPERATOR_TOKEN, "temporal_address": f"127.0.0.1:{free_port()}", "database_url": "",
        "redis_url": redis_url, "allow_insecure": True, "rate_limit": RATE, **overrides,
    }
    return Settings(**values)


def rate_limited(app: Any, caller: str) -> float:
    value = app.state.booking.metrics.registry.get_sample_value("booking_rate_limited_total", {"caller": caller})
    return float(value or 0.0)


def assert_429(response: httpx.Response) -> None:
    body = assert_problem(response, 429)
    assert body["type"] == RATE_LIMITED
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW


async def test_the_limit_is_shared_by_replicas_through_redis(limit_redis: str) -> None:
    settings = limited_settings(limit_redis)
    async with running_app(settings) as (app_a, a), running_app(settings) as (app_b, b):
        # Any route counts (here: unknown paths, 404): the limit is checked before routing.
        statuses = [(await a.get("/v1/nothing")).status_code for _ in range(2)]
        statuses += [(await b.get("/v1/nothing")).status_code for _ in range(2)]
        assert statuses == [404] * 4
        assert_429(await b.get("/v1/nothing"))
        assert_429(await a.get("/v1/catalogue"))
        assert (rate_limited(app_a, "address"), rate_limited(app_b, "address")) == (1, 1)
        assert (await a.get("/healthz")).status_code == 200  # never limited


async def test_a_refused_caller_is_refused_from_the_process_until_its_window_frees(limit_redis: str) -> None:
    async with running_app(limited_settings(limit_redis)) as (_app, http):
        assert [(await http.get("/v1/nothing")).status_code for _ in range(2 * RATE)] == [404] * 2 * RATE
        assert_429(await http.get("/v1/nothing"))
        client = redis.Redis.from_url(limit_redis)
        try:
            await client.flushdb()  # Redis forgets the count: the refusal stands until the window frees
        finally:
            await client.aclose()
        assert_429(await http.get("/v1/nothing"))


async def test_callers_are_counted_apart(limit_redis: str, tmp_path: Path) -> None:
    issuer = make_issuer("HS256", tmp_path)
    settings = limited_settings(limit_redis, trusted_proxies=["127.0.0.1/32"], customer_auth="jwt",
                                customer_jwt_audience=AUDIENCE, customer_jwt_issuer=ISSUER, **issuer.verify_settings)
    async with running_app(settings) as (app, http):
        async def exhaust(headers: dict[str, str]) -> None:
            for _ in range(2 * RATE):
                assert (await http.get("/v1/nothing", headers=headers)).status_code == 404
            assert_429(await http.get("/v1/nothing", headers=headers))

        # Behind a trusted proxy: the right-most forwarded address that is not a proxy is the client.
        await exhaust({"X-Forwarded-For": "198.51.100.7, 203.0.113.1"})
        assert (await http.get("/v1/nothing", headers={"X-Forwarded-For": "203.0.113.2"})).status_code == 404
        # A customer is its token's `sub`, wherever it comes from; another customer has its own count.
        alice = bearer(issuer.token("alice"))
        await exhaust({**alice, "X-Forwarded-For": "203.0.113.1"})
        assert (await http.get("/v1/nothing", headers=bearer(issuer.token("bob")))).status_code == 404
        # A token that does not verify counts as its address (exhausted above).
        forged = {**bearer(issuer.token("alice", key=issuer.other_key())), "X-Forwarded-For": "203.0.113.1"}
        assert_429(await http.get("/v1/nothing", headers=forged))
        # The operator token is a caller of its own.
        operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "X-Forwarded-For": "203.0.113.1"}
        await exhaust(operator)
        assert [rate_limited(app, kind) for kind in ("address", "customer", "operator")] == [2, 1, 1]


def test_a_trusted_proxy_that_is_no_address_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match=r"TRUSTED_PROXIES: 'lb\.internal'"):
        Settings(trusted_proxies=["10.0.0.0/8", "lb.internal"])


async def test_forwarded_for_counts_only_from_a_trusted_proxy(limit_redis: str) -> None:
    async with running_app(limited_settings(limit_redis)) as (_app, http):
        for i in range(2 * RATE):  # a new forged address each time: still one caller, the peer
            assert (await http.get("/v1/nothing", headers={"X-Forwarded-For": f"192.0.2.{i}"})).status_code == 404
        assert_429(await http.get("/v1/nothing", headers={"X-Forwarded-For": "192.0.2.99"}))


async def test_without_redis_the_limit_is_the_process_own(tmp_path: Path) -> None:
    async with running_app(limited_settings("")) as (_app, http):
        assert [(await http.get("/v1/nothing")).status_code for _ in range(2 * RATE)] == [404] * 2 * RATE
        assert_429(await http.get("/v1/nothing"))


async def test_rate_limit_zero_turns_it_off() -> None:
    async with running_app(limited_settings("", rate_limit=0)) as (app, http):
        assert app.state.booking.rate_limiter is None
        assert {(await http.get("/v1/nothing")).status_code for _ in range(5 * RATE)} == {404}


async def test_redis_down_lets_requests_through_and_counts_them(caplog: pytest.LogCaptureFixture) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with running_app(limited_settings(dead)) as (app, http):
        statuses = {(await http.get("/v1/nothing")).status_code for _ in range(5 * RATE)}
        unchecked = app.state.booking.metrics.registry.get_sample_value("booking_rate_limit_unchecked_total")
    assert statuses == {404}
    assert unchecked == 5 * RATE
    assert "rate limits unchecked" in caplog.text


@pytest.mark.slow
async def test_with_redis_down_a_checkout_is_placed(dev_server_env: WorkflowEnvironment, api_database: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = live_settings(dev_server_env, api_database, dead, rate_limit=RATE)
    async with saga_workers(dev_server_env, settings), running_app(settings) as (app, http):
        sku = unique("SKU")
        put = await http.put(f"/v1/inventory/items/{sku}", json={"stock": 3},
                             headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert put.status_code == 200, put.text
        placed = await http.post("/v1/checkouts", json={"customer_id": unique("c"), "items": [{"sku": sku,
                                                                                             "quantity": 1}]},
                                 headers={"Idempotency-Key": unique("key")})
        assert placed.status_code == 201, placed.text
        assert app.state.booking.metrics.registry.get_sample_value("booking_rate_limit_unchecked_total") >= 2


# --- 7. /readyz says what is down, not where ----------------------------------------------------------------------

async def test_readyz_carries_no_address_or_driver_message(caplog: pytest.LogCaptureFixture) -> None:
    temporal_port, database_port = free_port(), free_port()
    settings = Settings(operator_token=OPERATOR_TOKEN, temporal_address=f"127.0.0.1:{temporal_port}",
                        database_url=f"postgresql://booking:hunter2@127.0.0.1:{database_port}/booking",
                        redis_url="")
    with caplog.at_level(logging.WARNING):
        async with running_app(settings) as (_app, http):
            ready = await http.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["temporal"]["ok"] is False and "Temporal" in checks["temporal"]["detail"]
    assert checks["database"]["ok"] is False and "PostgreSQL is unavailable" in checks["database"]["detail"]
    for hidden in (str(temporal_port), str(database_port), "127.0.0.1", "hunter2", "Error", "Errno"):
        assert hidden not in ready.text, ready.text
    # The log keeps the reasons, addresses included.
    assert str(temporal_port) in caplog.text and str(database_port) in caplog.text


def test_openapi_documents_the_guard_answers() -> None:
    schema = create_app(Settings(operator_token=OPERATOR_TOKEN, allow_insecure=True)).openapi()
    post = schema["paths"]["/v1/checkouts"]["post"]["responses"]
    assert {"413", "429"} <= set(post) and "Retry-After" in post["429"]["headers"]
    assert "rate-limited" in post["429"]["description"] and "hold limit" in post["429"]["description"]
    catalogue = schema["paths"]["/v1/catalogue"]["get"]["responses"]
    assert "429" in catalogue and "413" not in catalogue
    assert set(schema["paths"]["/healthz"]["get"]["responses"]) == {"200"}
