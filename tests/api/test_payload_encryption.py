"""Payloads in Temporal are encrypted (runtime/codec.py), and the codec server decrypts them for operators.

Black-box: checkouts go through the API and its workers on the real dev server with the session's PAYLOAD_KEYS;
the history is then read raw, through a client WITHOUT the codec, as anyone with access to Temporal could.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from runtime.codec import ENCODING, ui_codec_path
from runtime.replay import replayer
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_checkouts_e2e import Inventory, post_checkout
from workflows.models import STATE_QUERY, CheckoutView

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
UI_ORIGIN = "http://127.0.0.1:8233"


@pytest.fixture(scope="module")
async def stack_settings(dev_server_env: WorkflowEnvironment, api_database: str, redis_url: str) -> Settings:
    return live_settings(dev_server_env, api_database, redis_url, codec_cors_origins=[UI_ORIGIN])


@pytest.fixture(scope="module")
async def client(dev_server_env: WorkflowEnvironment, stack_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with saga_workers(dev_server_env, stack_settings), running_app(stack_settings) as (_app, http):
        yield http


def payloads_in(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every Payload anywhere inside `message`, with the path of fields that leads to it."""
    if isinstance(message, Payload):
        yield path, message
        return
    for field, value in message.ListFields():
        here = f"{path}.{field.name}"
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            for key, entry in value.items():
                if isinstance(entry, Message):
                    yield from payloads_in(entry, f"{here}[{key}]")
        elif isinstance(value, Message):
            yield from payloads_in(value, here)
        else:  # a repeated field of messages
            for index, item in enumerate(value):
                yield from payloads_in(item, f"{here}[{index}]")


async def confirmed_checkout(client: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    stock = Inventory()
    await stock.create(client)
    body = stock.checkout()
    response = await post_checkout(client, body)
    assert response.status_code == 201, response.text
    checkout_id = response.json()["checkout_id"]
    assert (await client.post(f"/v1/checkouts/{checkout_id}/extend", json={"seconds": 120})).status_code == 200
    confirmed = await client.post(f"/v1/checkouts/{checkout_id}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "CONFIRMED", confirmed.text
    return body, checkout_id


async def plain_client(env: WorkflowEnvironment) -> Client:
    """A client as anyone reaching Temporal has: the pydantic converter, no codec, no keys."""
    return await Client.connect(env.client.service_client.config.target_host, data_converter=pydantic_data_converter)


async def test_the_history_holds_no_readable_customer_or_request(
    client: httpx.AsyncClient, dev_server_env: WorkflowEnvironment
) -> None:
    body, checkout_id = await confirmed_checkout(client)  # the saga works with the codec: held, extended, confirmed
    outsider = await plain_client(dev_server_env)
    handle = outsider.get_workflow_handle(checkout_id)
    history = await handle.fetch_history()

    raw = b"".join(event.SerializeToString() for event in history.events)
    assert body["customer_id"].encode() not in raw
    assert body["hotel"]["check_in"].encode() not in raw  # the request's dates are not in any readable field

    found = [(path, payload) for event in history.events for path, payload in payloads_in(event)]
    # Plaintext by design: search attributes (indexed by the server: workflows/search_attributes.py), headers
    # (tracing context only) and the SDK's own marker bookkeeping (a patch's id; a local activity's type, id,
    # attempt and times), which Temporal's core writes without the data converter. Every other payload (the
    # input, update arguments and results, activity inputs and results, local activities' results, the static
    # summary, failures' encoded attributes) is encrypted.
    plaintext = (".search_attributes", ".header", ".marker_recorded_event_attributes.details[patch-data]",
                 ".marker_recorded_event_attributes.details[data]")
    data = [(path, payload) for path, payload in found if not any(part in path for part in plaintext)]
    assert any(".marker_recorded_event_attributes.details[result]" in path for path, _ in data)
    assert len(data) > 10, [path for path, _ in found]
    readable = [path for path, payload in data if payload.metadata.get("encoding") != ENCODING]
    assert readable == [], [(path, payload.data[:300]) for path, payload in data if path in readable]
    attributes = [payload.data for path, payload in found if ".search_attributes" in path]
    assert attributes and not any(body["customer_id"].encode() in value for value in attributes)

    # The outsider's converter cannot read the result; the API's client (with the key) reads it as usual.
    with pytest.raises(Exception):  # noqa: B017 (whatever the converter raises for an unknown encoding)
        await handle.result()
    view = await dev_server_env.client.get_workflow_handle(checkout_id).query(STATE_QUERY, result_type=CheckoutView)
    assert view.customer_id == body["customer_id"]


async def _encrypted_input(env: WorkflowEnvironment, checkout_id: str) -> dict[str, Any]:
    """The saga's first event's input, in proto3 JSON as the Temporal UI sends it to a codec server."""
    history = await env.client.get_workflow_handle(checkout_id).fetch_history()
    payload = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    return {"metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
            "data": base64.b64encode(payload.data).decode()}


async def test_the_codec_server_decrypts_for_operators_only(
    client: httpx.AsyncClient, dev_server_env: WorkflowEnvironment
) -> None:
    body, checkout_id = await confirmed_checkout(client)
    encrypted = await _encrypted_input(dev_server_env, checkout_id)
    assert base64.b64decode(encrypted["metadata"]["encoding"]) == ENCODING
    request = {"payloads": [encrypted]}
    headers = {"X-Namespace": "default"}

    for path in ("/codec/decode", ui_codec_path(OPERATOR_TOKEN) + "/decode"):
        auth = OPERATOR if path == "/codec/decode" else {}
        decoded = await client.post(path, json=request, headers={**headers, **auth})
        assert decoded.status_code == 200, decoded.text
        (plain,) = decoded.json()["payloads"]
        assert base64.b64decode(plain["metadata"]["encoding"]) == b"json/plain"
        assert body["customer_id"] in base64.b64decode(plain["data"]).decode()

    # Encode then decode gives the payload back (the UI encodes what an operator sends, e.g. a signal's input).
    original = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(b'{"seconds": 60}').decode()}
    encoded = await client.post("/codec/encode", json={"payloads": [original]}, headers=OPERATOR)
    assert encoded.status_code == 200
    (sealed,) = encoded.json()["payloads"]
    assert base64.b64decode(sealed["metadata"]["encoding"]) == ENCODING
    back = await client.post("/codec/decode", json=encoded.json(), headers=OPERATOR)
    assert back.json() == {"payloads": [original]}

    # Without the token, with a wrong one, or on a made-up UI path: nothing is decrypted.
    assert (await client.post("/codec/decode", json=request)).status_code == 401
    wrong = await client.post("/codec/decode", json=request, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and body["customer_id"] not in wrong.text
    assert (await client.post("/codec/ui/not-the-key/decode", json=request)).status_code == 404
    # A body that is not payloads: 400 problem+json; a payload under a key this process lacks: 422 naming it.
    bad = await client.post("/codec/decode", content=b"{not json", headers=OPERATOR)
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    foreign = {**encrypted, "metadata": {**encrypted["metadata"],
                                         "encryption-key-id": base64.b64encode(b"retired").decode()}}
    unknown = await client.post("/codec/decode", json={"payloads": [foreign]}, headers=OPERATOR)
    assert unknown.status_code == 422 and "retired" in unknown.json()["detail"]


async def test_the_codec_server_answers_the_temporal_ui_origin_only(client: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"}
    allowed = await client.options(ui_codec_path(OPERATOR_TOKEN) + "/decode", headers={"Origin": UI_ORIGIN,
                                                                                      **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "x-namespace" in allowed.headers["access-control-allow-headers"].lower()
    other = await client.options("/codec/decode", headers={"Origin": "https://evil.example", **preflight})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    answer = await client.post("/codec/decode", json={"payloads": []}, headers={"Origin": UI_ORIGIN, **OPERATOR})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == UI_ORIGIN
    assert answer.json() == {"payloads": []}


async def test_an_encrypted_history_replays_with_the_keys_only(
    client: httpx.AsyncClient, dev_server_env: WorkflowEnvironment, stack_settings: Settings
) -> None:
    _body, checkout_id = await confirmed_checkout(client)
    history = await dev_server_env.client.get_workflow_handle(checkout_id).fetch_history()
    await replayer(stack_settings).replay_workflow(history)  # `booking-saga replay` with PAYLOAD_KEYS
    keyless = stack_settings.model_copy(update={"payload_keys": ""})
    with pytest.raises(Exception, match="PayloadKeyError"):  # the replay fails on the first payload it decodes
        await replayer(keyless).replay_workflow(history)
