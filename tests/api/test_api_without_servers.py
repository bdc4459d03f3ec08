"""The API's own behaviour with no Temporal, PostgreSQL or Redis behind it: validation, problem+json, auth,
CORS, health, and 503 when Temporal is unreachable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from checkouts import answers
from runtime.embedded import free_port
from services.registry import PARTICIPANTS
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import metric
from workflows.models import CheckoutStatus, CheckoutView

PROBLEM = "application/problem+json"
GOOD_BODY = {"customer_id": "c1", "flight": {"flight_id": "BA117", "seat_class": "economy", "seats": 1}}


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # Nothing listens on this port: Temporal is unreachable for the whole module. No database and no Redis
    # either, whatever the environment says (CI's second pass sets DATABASE_URL and REDIS_URL).
    settings = Settings(operator_token=OPERATOR_TOKEN, temporal_address=f"127.0.0.1:{free_port()}",
                        database_url="", redis_url="", cors_origins=["https://shop.example"])
    async with running_app(settings) as (_app, http):
        yield http


def assert_problem(response: httpx.Response, status: int, *in_detail: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["type"] and body["instance"]
    for text in in_detail:
        assert text in body["detail"], body["detail"]
    return body


async def post(client: httpx.AsyncClient, body: object, key: str | None = "k-1", **kwargs: object) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await client.post("/v1/checkouts", json=body, headers=headers, **kwargs)


async def test_missing_idempotency_key_is_400(client: httpx.AsyncClient) -> None:
    body = assert_problem(await post(client, GOOD_BODY, key=None), 400, "Idempotency-Key", "required")
    assert body["errors"][0]["location"] == "header.Idempotency-Key"


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "é"])
async def test_malformed_idempotency_key_is_400(client: httpx.AsyncClient, key: str) -> None:
    headers = {"Idempotency-Key": key.encode("utf-8")}
    response = await client.post("/v1/checkouts", json=GOOD_BODY, headers=headers)
    assert_problem(response, 400, "Idempotency-Key")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"customer_id": "c1"}, "at least one of " + ", ".join(p.field for p in PARTICIPANTS)),
        ({"customer_id": "c1", "items": []}, "items"),
        ({"customer_id": "c1", "flight": {"flight_id": "F", "seat_class": "y", "seats": 0}}, "flight.seats"),
        ({"customer_id": "c1", "flight": {"flight_id": "F", "seat_class": "y", "seats": -2}}, "flight.seats"),
        ({"customer_id": "c1", "flight": {"flight_id": "F", "seat_class": "y", "seats": 10**12}}, "flight.seats"),
        ({"customer_id": "c1", "items": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]}, "only once"),
        ({"customer_id": "c1", "hotel": {"hotel_id": "H", "room_type": "d", "check_in": "2026-12-03",
                                         "check_out": "2026-12-03", "rooms": 1}}, "check_out must be after check_in"),
        ({"customer_id": "", "items": [{"sku": "A", "quantity": 1}]}, "customer_id"),
        ({"customer_id": "c1", "items": [{"sku": "A", "quantity": 1}], "surprise": 1}, "surprise"),
        ([1, 2], "body"),
    ],
)
async def test_invalid_bodies_are_422_with_readable_detail(
    client: httpx.AsyncClient, body: object, words: str
) -> None:
    problem = assert_problem(await post(client, body), 422, words)
    assert problem["errors"]


@pytest.mark.parametrize("hold_seconds", [0, 4, 3601, -1, 10**20])
async def test_hold_seconds_out_of_bounds_is_422(client: httpx.AsyncClient, hold_seconds: int) -> None:
    assert_problem(await post(client, {**GOOD_BODY, "hold_seconds": hold_seconds}), 422, "between 5 and 3600")


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "k", "Content-Type": "application/json"}
    response = await client.post("/v1/checkouts", content=b'{"customer_id": ', headers=headers)
    assert_problem(response, 422, "not valid JSON")


async def test_unreachable_temporal_is_503_with_retry_after(client: httpx.AsyncClient) -> None:
    response = await post(client, GOOD_BODY)
    assert_problem(response, 503, "unreachable", "same Idempotency-Key")
    assert int(response.headers["Retry-After"]) > 0


async def test_unknown_checkout_id_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/checkouts/not-a-checkout"), 404, "not-a-checkout")
    assert_problem(await client.post("/v1/checkouts/co-123/confirm"), 404)


async def test_unknown_path_and_method_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v2/nothing"), 404, "/v2/nothing")
    assert_problem(await client.delete("/v1/checkouts"), 405)


async def test_readyz_reports_each_dependency(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["temporal"]["ok"] is False and "cannot reach Temporal" in checks["temporal"]["detail"]
    assert checks["database"] == {"ok": False, "detail": "DATABASE_URL is not set"}
    assert checks["redis"]["ok"] is True
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_metrics_count_checkouts_by_outcome(client: httpx.AsyncClient) -> None:
    outcomes = ("unavailable", "invalid")
    before = {o: await metric(client, "booking_checkouts_total", outcome=o) for o in outcomes}
    timed = await metric(client, "booking_checkout_seconds_count", outcome="unavailable")
    await post(client, GOOD_BODY)
    await post(client, {**GOOD_BODY, "hold_seconds": 1})
    after = {o: await metric(client, "booking_checkouts_total", outcome=o) for o in outcomes}
    assert {o: after[o] - before[o] for o in outcomes} == {"unavailable": 1, "invalid": 1}
    assert await metric(client, "booking_checkout_seconds_count", outcome="unavailable") == timed + 1


async def test_cors_allows_only_configured_origins(client: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "idempotency-key"}
    allowed = await client.options("/v1/checkouts", headers={"Origin": "https://shop.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    refused = await client.options("/v1/checkouts", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in refused.headers


def test_cors_wildcard_is_refused() -> None:
    with pytest.raises(ValueError, match="may not contain"):
        Settings(operator_token="t", cors_origins=["*"])


def test_app_refuses_to_start_without_operator_token() -> None:
    from api.main import create_app

    with pytest.raises(RuntimeError, match="OPERATOR_TOKEN"):
        create_app(Settings(operator_token=""))


def test_openapi_documents_problems() -> None:
    from api.main import create_app

    schema = create_app(Settings(operator_token="t", allow_insecure=True)).openapi()
    post_checkout = schema["paths"]["/v1/checkouts"]["post"]
    assert {"201", "400", "409", "422", "503"} <= set(post_checkout["responses"])
    assert PROBLEM in post_checkout["responses"]["409"]["content"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (CheckoutStatus.REJECTED, "nothing is held"),
        (CheckoutStatus.FAILED, "nothing is held"),
        (CheckoutStatus.NEEDS_ATTENTION, "holds are being released"),
    ],
)
def test_a_checkout_that_was_not_placed_is_a_409_saying_what_is_held(status: CheckoutStatus, says: str) -> None:
    view = CheckoutView(checkout_id="co-" + "0" * 32, customer_id="c", request_hash="h", status=status)
    problem = answers.not_placed(view)
    assert (problem.status, problem.extras["checkout_status"]) == (409, status.value)
    assert says in problem.detail
