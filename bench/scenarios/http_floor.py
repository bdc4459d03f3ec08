"""The HTTP floor: the API's sold-out lane (api/sold_out.py) against a bare ASGI app that answers the same 409.

The bare app runs in a process of its own under the API's own uvicorn settings (api/main.py SERVER_OPTIONS), reads
each request's body and answers the 409 the API gave for this very sold-out sku, byte for byte (status, headers
but uvicorn's own date and server, body): what uvicorn, the event loop and the bench's client cost a 409 before
any of the API's work. Both get the same requests (POST /v1/checkouts for one unit of a sold-out sku, each from a
customer and with an Idempotency-Key of its own, as the flash sale's late buyers), from the same client, at the
flash sale's concurrency; the rounds alternate which side goes first (ABBA...).

Run alone as the floor's server: `python -m bench.scenarios.http_floor PORT ANSWER_JSON`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client

from api.idempotency import checkout_id
from bench.api_client import REQUEST_TIMEOUT_SECONDS, Answer, BenchApi, run_bounded
from bench.http import HttpClient, Response
from bench.results import Figure
from bench.scenarios.flash_sale import workflows_started
from bench.sizes import Size
from bench.stats import per_second, percentile
from runtime.embedded import free_port, wait_for_port

SCENARIO = "http floor"
TARGET_RATIO = 0.5
ROUNDS = 4
WARMUP_REQUESTS = 100
# Headers uvicorn writes itself on every answer (the floor's included), or that the floor computes.
SERVER_HEADERS = {b"date", b"server", b"content-length"}
SIDES = ("sold-out lane", "bare ASGI")


def _answer_spec(response: Response) -> dict[str, Any]:
    headers = [[name.decode("latin-1"), value.decode("latin-1")]
               for name, value in response.headers if name not in SERVER_HEADERS]
    return {"status": response.status, "headers": headers, "body": response.body.decode()}


def _start_floor(port: int, spec: dict[str, Any], directory: Path) -> subprocess.Popen[bytes]:
    answer = directory / "answer.json"
    answer.write_text(json.dumps(spec))
    return subprocess.Popen([sys.executable, "-m", "bench.scenarios.http_floor", str(port), str(answer)],
                            env=dict(os.environ))


async def _sold_out_answer(api: BenchApi, http: HttpClient, sku: str) -> Response:
    """Hold the sku's one unit, then ask until the API answers 409 for it: the saga's refusal publishes the row as
    short, and the lane answers from then on."""
    held = await api.checkout(http, {"customer_id": api.unique("floor-first"), "items": [{"sku": sku, "quantity": 1}]},
                              api.unique("floor-key"))
    if held.status != 201:
        raise RuntimeError(f"the floor's first checkout answered {held.status}: {held.body}")
    for _ in range(50):
        response = await http.request("POST", "/v1/checkouts", _body(api, sku), {"Idempotency-Key": api.unique("k")})
        if response.status == 409:
            return response
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{sku} never answered 409: {response.status} {response.body[:300]!r}")


def _body(api: BenchApi, sku: str) -> dict[str, Any]:
    return {"customer_id": api.unique("floor"), "items": [{"sku": sku, "quantity": 1}]}


async def _wave(api: BenchApi, http: HttpClient, sku: str, count: int, concurrency: int,
                ids: list[str] | None = None, secret: str = "") -> tuple[list[Answer], float]:
    """`count` sold-out requests on `http`; `ids` gets the checkout id the API derives for each."""

    async def ask(_index: int) -> Answer:
        body, key = _body(api, sku), api.unique("floor-key")
        if ids is not None:
            ids.append(checkout_id(secret, body["customer_id"], key))
        return await api.checkout(http, body, key)

    started = time.perf_counter()
    answers = await run_bounded(count, concurrency, ask)
    return answers, time.perf_counter() - started


async def run(api: BenchApi, client: Client, secret: str, size: Size) -> tuple[list[Figure], dict[str, Any]]:
    concurrency = size.buyer_concurrency
    per_round = max(concurrency, size.floor_requests // ROUNDS)
    async with api.client() as http:
        sku = await api.create_item(http, 1)
        spec = _answer_spec(await _sold_out_answer(api, http, sku))
    port = free_port()
    urls = {SIDES[0]: api.base_url, SIDES[1]: f"http://127.0.0.1:{port}"}
    answers: dict[str, list[Answer]] = {side: [] for side in SIDES}
    seconds = dict.fromkeys(SIDES, 0.0)
    lane_ids: list[str] = []
    clients: dict[str, HttpClient] = {}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as directory:
        floor = _start_floor(port, spec, Path(directory))
        try:
            await asyncio.to_thread(wait_for_port, port)
            # One client a side for the whole scenario: its connections are opened by the warm-up, so the rounds
            # measure answers on open connections, not 50 connects at the start of each.
            clients = {side: HttpClient(urls[side], REQUEST_TIMEOUT_SECONDS) for side in SIDES}
            for side in SIDES:
                await _wave(api, clients[side], sku, WARMUP_REQUESTS, concurrency)
            for round_number in range(ROUNDS):
                for side in SIDES if round_number % 2 == 0 else SIDES[::-1]:
                    ids = lane_ids if side == SIDES[0] else None
                    got, took = await _wave(api, clients[side], sku, per_round, concurrency, ids, secret)
                    answers[side] += got
                    seconds[side] += took
        finally:
            for http in clients.values():
                await http.aclose()
            floor.terminate()
            floor.wait(10)
    started = await workflows_started(client, lane_ids)
    rates = {side: per_second(len(answers[side]), seconds[side]) for side in SIDES}
    latency = {side: {p: percentile([a.seconds * 1000 for a in answers[side]], p) for p in (50, 99)}
               for side in SIDES}
    lane, bare = SIDES
    other = {side: sum(1 for a in answers[side] if a.status != 409) for side in SIDES}
    figures = [
        Figure(SCENARIO, f"sold-out answers/s (c={concurrency})", rates[lane], "/s", baseline=rates[bare],
               baseline_name="bare ASGI 409", target_kind="ratio_at_least", target=TARGET_RATIO),
        Figure(SCENARIO, "sold-out answer p50", latency[lane][50], "ms", baseline=latency[bare][50],
               baseline_name="bare ASGI 409"),
        Figure(SCENARIO, "sold-out answer p99", latency[lane][99], "ms", baseline=latency[bare][99],
               baseline_name="bare ASGI 409"),
        Figure(SCENARIO, "answers other than 409 (both sides)", float(other[lane] + other[bare]), "",
               target_kind="equals", target=0),
        Figure(SCENARIO, "sold-out 409s that started a workflow", float(started), "", target_kind="equals",
               target=0),
    ]
    details = {
        "concurrency": concurrency,
        "requests_each": {side: len(answers[side]) for side in SIDES},
        "seconds": seconds,
        "per_second": rates,
        "latency_ms": {side: {f"p{p}": v for p, v in latency[side].items()} for side in SIDES},
        "other_statuses": {side: sorted({a.status for a in answers[side] if a.status != 409}) for side in SIDES},
        "answer": spec,
        "lane_409s_that_started_a_workflow": started,
    }
    return figures, details


def serve(port: int, answer: Path) -> None:
    """The bare ASGI app: drains the request body and answers the recorded 409."""
    import uvicorn

    from api.main import SERVER_OPTIONS

    spec = json.loads(answer.read_text())
    body = spec["body"].encode()
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in spec["headers"]]
    headers.append((b"content-length", str(len(body)).encode()))
    start = {"type": "http.response.start", "status": spec["status"], "headers": headers}
    finish = {"type": "http.response.body", "body": body}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send(start)
        await send(finish)

    uvicorn.run(app, host="127.0.0.1", port=port, **SERVER_OPTIONS)


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
