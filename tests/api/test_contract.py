"""The OpenAPI document says exactly what the API accepts and answers (docs/http-contract.md).

- Fuzzed from outside against the real stack (API over HTTP, saga workers, Temporal dev server, PostgreSQL,
  Redis, the demo inventory seeded as `make dev` seeds it): schemathesis with every check and every phase,
  at least MIN_CASES requests, zero failures, and the stateful phase (OpenAPI links) reaching confirm, cancel
  and extend of checkouts it created.
- Without servers: strict input types on every participant's bodies and queries, the unreadable-body 400, the
  links, and examples that validate against their own models and name the demo inventory.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from api.openapi_contract import FOLLOW_UPS
from api.routes.availability import availability_operation, upsert_operation
from api.schemas import CheckoutBody, ExtendBody
from runtime.embedded import free_port
from services.db import create_engine
from services.participant import NoQuery
from services.registry import PARTICIPANTS, build_services
from services.seed import seed_demo
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.contract_fuzz import Answers, CountingApp, own_database, own_redis_db, run_schemathesis, serve
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_api_without_servers import assert_problem

MIN_CASES = 1000
# Per operation and phase: 18 operations x (examples + coverage + fuzzing) clear MIN_CASES with room to spare.
MAX_EXAMPLES = 40
# Half the generated checkouts carry a `payment` the fuzz's customers cannot make (no wallet: 409): enough scenarios
# that the others still reach confirm, cancel and extend.
STATEFUL_EXAMPLES = 300
# Fixed in CI (reproducible); CONTRACT_FUZZ_SEED explores others locally.
SEED = int(os.environ.get("CONTRACT_FUZZ_SEED", "3"))

CHECKOUT = "/v1/checkouts/{checkout_id}"
# The inventory participants: their routes are the /v1/inventory upserts and availability reads tested here (a
# payment such as the wallet has an account of its own: tests/api/test_money_e2e.py).
INVENTORY = [p for p in PARTICIPANTS if p.inventory]


@pytest.fixture(scope="module")
async def fuzz_settings(
    dev_server_env: WorkflowEnvironment, database_url: str, redis_url: str
) -> AsyncIterator[Settings]:
    async with own_database(database_url) as fuzz_database:
        # Limits off: the fuzz places many checkouts, mostly for the same few customer ids. A hold may live long
        # enough that the largest hold_seconds plus the largest extend still fit (the fuzz picks the bounds), so
        # its extends of HELD checkouts are accepted rather than all refused at the lifetime.
        yield live_settings(dev_server_env, fuzz_database, await own_redis_db(redis_url),
                            customer_active_checkouts_max=0, customer_units_max=0,
                            hold_lifetime_max_seconds=4 * 3600)


@pytest.fixture(scope="module")
async def live_url(dev_server_env: WorkflowEnvironment, fuzz_settings: Settings) -> AsyncIterator[tuple[str, Answers]]:
    engine = create_engine(fuzz_settings.database_url)
    try:
        await seed_demo(build_services(engine), datetime.now(UTC).date())
    finally:
        await engine.dispose()
    answers = Answers()
    async with saga_workers(dev_server_env, fuzz_settings), serve(
        CountingApp(create_app(fuzz_settings), answers)
    ) as url:
        yield url, answers


@pytest.mark.devserver
@pytest.mark.slow
async def test_schemathesis_every_check_zero_failures(live_url: tuple[str, Answers], tmp_path: Path) -> None:
    url, answers = live_url
    run = await run_schemathesis(url, tmp_path / "schemathesis", operator_token=OPERATOR_TOKEN,
                                 max_examples=MAX_EXAMPLES, stateful_examples=STATEFUL_EXAMPLES, seed=SEED)
    served = "\n".join(f"{status} {operation}: {n}" for (operation, status), n in sorted(answers.counts.items()))
    (tmp_path / "schemathesis" / "served.txt").write_text(served)
    assert run.exit_code == 0, run.output
    assert answers.total() >= MIN_CASES, (answers.total(), run.output)
    created = answers.of("POST /v1/checkouts", 201)
    reached = {action: answers.of(f"POST {CHECKOUT}/{action}", 200) for action in ("confirm", "cancel")}
    # A scenario follows any earlier 201's links, so most extends find a checkout an earlier step already cancelled
    # or confirmed (409 from the saga; an id that leads nowhere is 404): a run with seed 3 has answered from 0 to 5
    # extends 200. Either answer shows the link reached a real checkout; the extend itself is asserted end to end
    # in tests/api and tests/workflow.
    reached["extend"] = answers.of(f"POST {CHECKOUT}/extend", 200) + answers.of(f"POST {CHECKOUT}/extend", 409)
    assert created > 0 and all(reached.values()), (created, reached, sorted(answers.counts.items()))


# ---- without servers ----------------------------------------------------------------------------------------

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
# Values that JSON Schema does not call integers, dates or date-times, and that a lax parser would still take.
NOT_INTEGERS: list[object] = [True, False, 2.5, "2", None, [], {}]
NOT_DAYS: list[object] = [0, 1700000000, "1700000000", "2026-12-01T00:00:00", True, "20261201"]


@pytest.fixture(scope="module")
async def bare() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(operator_token=OPERATOR_TOKEN, temporal_address=f"127.0.0.1:{free_port()}",
                        database_url="", redis_url="")
    async with running_app(settings) as (_app, http):
        yield http


@pytest.fixture(scope="module")
async def document(bare: httpx.AsyncClient) -> dict[str, Any]:
    return (await bare.get("/openapi.json")).json()


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for item in document["paths"].values() for op in item.values()}


def _upsert_example(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    example: dict[str, Any] = _operations(document)[operation_id]["requestBody"]["content"]["application/json"][
        "example"]
    return example


def _integer_paths(model: type[BaseModel], example: dict[str, Any]) -> list[tuple[str, ...]]:
    """Paths to every integer in a valid body (map values included)."""
    found: list[tuple[str, ...]] = []

    def walk(value: object, path: tuple[str, ...]) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int):
            found.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*path, str(index)))

    walk(example, ())
    return found


def _replaced(body: Any, path: tuple[str, ...], value: object) -> Any:
    if not path:
        return value
    if isinstance(body, list):
        copy = list(body)
        copy[int(path[0])] = _replaced(copy[int(path[0])], path[1:], value)
        return copy
    return {**body, path[0]: _replaced(body[path[0]], path[1:], value)}


@pytest.mark.parametrize("participant", INVENTORY, ids=lambda p: p.name)
async def test_upsert_bodies_take_json_integers_only(
    participant: Any, bare: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    example = _upsert_example(document, upsert_operation(participant))
    demo = participant.demo_upsert(datetime.now(UTC).date())
    assert demo is not None, "every participant gives its operator route an example"
    resource_id = demo[0]
    paths = _integer_paths(participant.routes.upsert, example)
    assert paths, "every upsert body counts something"
    for path in paths:
        for wrong in NOT_INTEGERS:
            body = _replaced(example, path, wrong)
            with pytest.raises(ValidationError):
                participant.routes.upsert.model_validate_json(httpx.Request("PUT", "/", json=body).content)
            response = await bare.put(f"/v1/inventory/{participant.routes.collection}/{resource_id}", json=body,
                                      headers=OPERATOR)
            problem = assert_problem(response, 422)
            assert ".".join(path) in problem["detail"], problem["detail"]
        # 2.0 is the JSON number 2 (JSON Schema's integer): read as 2, never truncated from 2.5.
        assert participant.routes.upsert.model_validate_json(
            httpx.Request("PUT", "/", json=_replaced(example, path, 2.0)).content
        ) == participant.routes.upsert.model_validate_json(
            httpx.Request("PUT", "/", json=_replaced(example, path, 2)).content
        )


@pytest.mark.parametrize("participant", INVENTORY, ids=lambda p: p.name)
def test_checkout_parts_take_json_integers_and_iso_dates_only(participant: Any) -> None:
    body = participant.to_body(participant.demo_offers(datetime.now(UTC).date())[0])
    line = body[0] if isinstance(body, list) else body
    for name, value in line.items():
        wrongs = NOT_INTEGERS if isinstance(value, int) else NOT_DAYS if name in _date_fields(participant) else []
        for wrong in wrongs:
            bad_line = {**line, name: wrong}
            bad = [bad_line] if isinstance(body, list) else bad_line
            with pytest.raises(ValidationError):
                CheckoutBody.model_validate({"customer_id": "c-1", participant.field: bad})


def _date_fields(participant: Any) -> set[str]:
    schema = participant.request_model.model_json_schema()
    return {name for name, prop in schema.get("properties", {}).items() if prop.get("format") == "date"}


@pytest.mark.parametrize("participant", [p for p in INVENTORY if p.routes.query is not NoQuery],
                         ids=lambda p: p.name)
async def test_availability_queries_take_iso_dates_only(
    participant: Any, bare: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    operation = _operations(document)[availability_operation(participant)]
    examples = {p["name"]: p["example"] for p in operation["parameters"]}
    resource_id = examples.pop(participant.routes.id_name)
    for name in examples:
        for wrong in NOT_DAYS:
            if isinstance(wrong, bool):
                continue
            query = {**examples, name: str(wrong)}
            response = await bare.get(f"/v1/{participant.routes.collection}/{resource_id}/availability",
                                      params=query)
            assert_problem(response, 422, name)


@pytest.mark.parametrize("wrong", NOT_INTEGERS)
def test_hold_and_extend_seconds_are_json_integers(wrong: object) -> None:
    with pytest.raises(ValidationError):
        ExtendBody.model_validate_json(httpx.Request("POST", "/", json={"seconds": wrong}).content)
    if wrong is None:  # hold_seconds is optional: null is the server's default
        return
    with pytest.raises(ValidationError):
        CheckoutBody.model_validate({"customer_id": "c-1", "items": [{"sku": "S", "quantity": 1}],
                                     "hold_seconds": wrong})


async def test_departure_is_an_rfc3339_string(bare: httpx.AsyncClient) -> None:
    flight = next(p for p in INVENTORY if "departs_at" in p.routes.upsert.model_fields)
    demo = flight.demo_upsert(datetime.now(UTC).date())
    assert demo is not None
    example = demo[1].model_dump(mode="json")
    for wrong in [0, 1700000000, "1700000000", "2026-12-01", "2026-12-01T09:30:00"]:
        with pytest.raises(ValidationError):
            flight.routes.upsert.model_validate({**example, "departs_at": wrong})


@pytest.mark.parametrize("path", ["/v1/checkouts", "/v1/checkouts/co-" + "0" * 32 + "/extend"]
                         + [f"/v1/inventory/{p.routes.collection}/x" for p in INVENTORY])
async def test_an_unreadable_body_is_a_400(path: str, bare: httpx.AsyncClient) -> None:
    """FastAPI answers 400 for a body it cannot read at all; every route with a body documents it
    (test_every_operation_documents_what_it_answers)."""
    method = "PUT" if path.startswith("/v1/inventory") else "POST"
    for content in (b"\x80not utf-8", b"1" * 5000):
        response = await bare.request(method, path, content=content, headers={
            **OPERATOR, "Content-Type": "application/json", "Idempotency-Key": "k-1"})
        problem = assert_problem(response, 400, "cannot be read")
        assert problem["type"].endswith("/unreadable-body")


def test_problem_types_are_an_enum(document: dict[str, Any]) -> None:
    kinds = document["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
    assert any(kind.endswith("/unreadable-body") for kind in kinds) and "about:blank" in kinds


def test_created_checkout_links_to_read_confirm_cancel_extend(document: dict[str, Any]) -> None:
    operations = _operations(document)
    links = operations["create_checkout"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == set(FOLLOW_UPS)
    for link in links.values():
        assert link["parameters"] == {"checkout_id": "$response.body#/checkout_id"}
        target = operations[link["operationId"]]
        assert [p["name"] for p in target["parameters"] if p["in"] == "path"] == ["checkout_id"]
        assert target["parameters"][0]["schema"]["pattern"] == "^co-[0-9a-f]{32}$"


def test_examples_validate_and_name_the_demo_inventory(document: dict[str, Any]) -> None:
    operations = _operations(document)
    example = document["components"]["schemas"]["CheckoutBody"]["examples"][0]
    CheckoutBody.model_validate(example)
    ExtendBody.model_validate(operations["extend_checkout"]["requestBody"]["content"]["application/json"][
        "example"])
    today = datetime.now(UTC).date()
    for participant in INVENTORY:
        spec = participant.routes
        assert participant.field in example
        demo = participant.demo_upsert(today)
        assert demo is not None, participant.name
        resource_id, body = demo
        upsert = operations[upsert_operation(participant)]
        assert spec.upsert.model_validate(_upsert_example(document, upsert_operation(participant))) == body
        availability = operations[availability_operation(participant)]
        examples = {p["name"]: p["example"] for p in availability["parameters"]}
        demo_ids = {str(line[spec.id_name]) for offer in participant.demo_offers(today)
                    for line in _lines(participant.to_body(offer))}
        assert examples[spec.id_name] in demo_ids
        assert {p["name"]: p["example"] for p in upsert["parameters"]}[spec.id_name] == resource_id
        if spec.query is not NoQuery:
            spec.query.model_validate({k: v for k, v in examples.items() if k != spec.id_name})


def _lines(body: Any) -> list[dict[str, Any]]:
    return body if isinstance(body, list) else [body]


def test_every_operation_documents_what_it_answers(document: dict[str, Any]) -> None:
    for operation_id, operation in _operations(document).items():
        statuses = set(operation["responses"])
        if "requestBody" in operation:
            assert {"400", "422"} <= statuses, operation_id
        if any(p["in"] in ("query", "path") for p in operation.get("parameters", [])):
            assert "422" in statuses or "404" in statuses, operation_id


def _date_names(model: type[BaseModel]) -> list[str]:
    """The model's date fields in declaration order (the later one must come after the earlier)."""
    properties = model.model_json_schema().get("properties", {})
    return [name for name, prop in properties.items() if prop.get("format") == "date"]


def _swapped(values: dict[str, Any], first: str, second: str) -> dict[str, Any]:
    return {**values, first: values[second], second: values[first]}


@pytest.mark.parametrize("participant", INVENTORY, ids=lambda p: p.name)
async def test_rules_the_schema_cannot_state_are_422s_naming_the_field(
    participant: Any, bare: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    spec = participant.routes
    operations = _operations(document)
    today = datetime.now(UTC).date()
    dates = _date_names(spec.upsert)
    if dates:
        demo = participant.demo_upsert(today)
        assert demo is not None
        body = _swapped(demo[1].model_dump(mode="json"), *dates)
        problem = assert_problem(await bare.put(f"/v1/inventory/{spec.collection}/{demo[0]}", json=body,
                                                headers=OPERATOR), 422, f"body.{dates[1]}")
        assert problem["errors"][0]["location"] == f"body.{dates[1]}"
        assert "422" in operations[upsert_operation(participant)]["responses"]
    if spec.query is not NoQuery:
        availability = operations[availability_operation(participant)]
        examples = {p["name"]: p["example"] for p in availability["parameters"]}
        first, second = _date_names(spec.query)
        query = _swapped({first: examples[first], second: examples[second]}, first, second)
        response = await bare.get(f"/v1/{spec.collection}/{examples[spec.id_name]}/availability", params=query)
        assert_problem(response, 422, f"query.{second}")
    dates = _date_names(participant.request_model)
    if dates:
        part = _swapped(_lines(participant.to_body(participant.demo_offers(today)[0]))[0], *dates)
        response = await bare.post("/v1/checkouts", json={"customer_id": "c-1", participant.field: part},
                                   headers={"Idempotency-Key": "k-1"})
        assert_problem(response, 422, f"body.{participant.field}.{dates[1]}")
