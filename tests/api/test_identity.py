"""Customer identity (CUSTOMER_AUTH=jwt, api/identity.py): who may place, read, confirm, cancel and extend.

The 401 and 403 cases are decided before Temporal is asked, so they run against an app whose Temporal is
unreachable (an accepted caller then gets 503, which proves the token passed). The ownership cases (404 for
another customer's checkout, the operator reading any) and schemathesis with auth on run against the live stack.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.idempotency import checkout_id
from api.identity import CustomerTokens
from api.main import create_app
from runtime.embedded import free_port
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, running_app
from tests.api.conftest import metric, unique
from tests.api.live_stack import live_settings, saga_workers
from tests.api.test_api_without_servers import assert_problem

AUDIENCE = "booking-saga-api"
ISSUER = "https://id.shop.example"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
CHECKOUT_ID = "co-" + "0" * 32
CHALLENGE = 'Bearer realm="booking-saga"'

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Issuer:
    """An identity provider for one algorithm: signs tokens, and says how the API is configured to trust it."""

    algorithm: str
    signing_key: str | PrivateKey
    verify_settings: dict[str, str]

    def token(self, sub: object = "cust-a", *, expires_in: int = 600, drop: tuple[str, ...] = (),
              key: str | PrivateKey | None = None, **claims: object) -> str:
        payload: dict[str, object] = {"sub": sub, "exp": int(time.time()) + expires_in, "aud": AUDIENCE,
                                      "iss": ISSUER, **claims}
        for name in drop:
            payload.pop(name, None)
        return jwt.encode(payload, key if key is not None else self.signing_key, algorithm=self.algorithm)

    def other_key(self) -> str | PrivateKey:
        """A key of the same kind the API does not trust: what a forger has."""
        return _new_key(self.algorithm)

    def public_pem(self) -> bytes:
        assert not isinstance(self.signing_key, str)
        return self.signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _new_key(algorithm: str) -> str | PrivateKey:
    if algorithm == "HS256":
        return base64.urlsafe_b64encode(hashlib.sha256(unique("secret").encode()).digest()).decode()
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def make_issuer(algorithm: str, directory: Path) -> Issuer:
    key = _new_key(algorithm)
    if isinstance(key, str):
        return Issuer(algorithm, key, {"customer_jwt_secret": key})
    issuer = Issuer(algorithm, key, {})
    path = directory / f"{algorithm.lower()}-public.pem"
    path.write_bytes(issuer.public_pem())
    issuer.verify_settings = {"customer_jwt_public_key": str(path)}
    return issuer


def jwt_settings(issuer: Issuer, **overrides: Any) -> Settings:
    # Nothing listens on this port: Temporal is unreachable; no database and no Redis either.
    values: dict[str, Any] = {
        "operator_token": OPERATOR_TOKEN, "temporal_address": f"127.0.0.1:{free_port()}", "database_url": "",
        "redis_url": "", "customer_auth": "jwt", "customer_jwt_audience": AUDIENCE, "customer_jwt_issuer": ISSUER,
        **issuer.verify_settings, **overrides,
    }
    return Settings(**values)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def checkout_body(customer_id: str = "cust-a") -> dict[str, Any]:
    return {"customer_id": customer_id, "flight": {"flight_id": "BA117", "seat_class": "economy", "seats": 1}}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, object]) -> str:
    """`alg: none`: no signature at all."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."


def hs256_with(secret: bytes, payload: dict[str, object]) -> str:
    """The algorithm-confusion forgery: HS256 keyed with the (public) verification key's PEM."""
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


ROUTES = [
    ("POST", "/v1/checkouts"),
    ("GET", f"/v1/checkouts/{CHECKOUT_ID}"),
    ("POST", f"/v1/checkouts/{CHECKOUT_ID}/confirm"),
    ("POST", f"/v1/checkouts/{CHECKOUT_ID}/cancel"),
    ("POST", f"/v1/checkouts/{CHECKOUT_ID}/extend"),
]


async def call(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str] | None = None,
               customer_id: str = "cust-a") -> httpx.Response:
    sent = {"Idempotency-Key": unique("key"), **(headers or {})}
    body: dict[str, Any] | None = None
    if path == "/v1/checkouts":
        body = checkout_body(customer_id)
    elif path.endswith("/extend"):
        body = {"seconds": 60}
    return await client.request(method, path, json=body, headers=sent)


# --- 401 and 403: decided before Temporal -------------------------------------------------------------------


@pytest.fixture(scope="module", params=["HS256", "RS256", "ES256"])
def issuer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Issuer:
    return make_issuer(request.param, tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
async def client(issuer: Issuer) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(jwt_settings(issuer)) as (_app, http):
        yield http


def assert_invalid_token(response: httpx.Response, *words: str) -> None:
    assert_problem(response, 401, *words)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(CHALLENGE + ', error="invalid_token", error_description="'), challenge
    for word in words:
        assert word in challenge


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_missing_token_is_401_with_a_bare_challenge(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await call(client, method, path)
    assert_problem(response, 401, "Bearer")
    assert response.headers["WWW-Authenticate"] == CHALLENGE


async def test_another_scheme_counts_as_no_token(client: httpx.AsyncClient) -> None:
    response = await call(client, "GET", ROUTES[1][1], {"Authorization": "Basic Y3VzdDpwdw=="})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_expired_token_is_401(client: httpx.AsyncClient, issuer: Issuer, method: str, path: str) -> None:
    # Well past the tolerated clock skew.
    assert_invalid_token(await call(client, method, path, bearer(issuer.token(expires_in=-3600))), "expired")


async def test_forged_signature_is_401(client: httpx.AsyncClient, issuer: Issuer) -> None:
    forged = issuer.token(key=issuer.other_key())
    assert_invalid_token(await call(client, "POST", "/v1/checkouts", bearer(forged)), "signature")


async def test_tampered_payload_is_401(client: httpx.AsyncClient, issuer: Issuer) -> None:
    header, _payload, signature = issuer.token("cust-a").split(".")
    other = _b64(json.dumps({"sub": "cust-b", "exp": int(time.time()) + 600, "aud": AUDIENCE, "iss": ISSUER}).encode())
    tampered = f"{header}.{other}.{signature}"
    response = await call(client, "POST", "/v1/checkouts", bearer(tampered), customer_id="cust-b")
    assert_invalid_token(response, "signature")


async def test_alg_none_is_401(client: httpx.AsyncClient) -> None:
    token = unsigned({"sub": "cust-a", "exp": int(time.time()) + 600, "aud": AUDIENCE, "iss": ISSUER})
    assert_invalid_token(await call(client, "POST", "/v1/checkouts", bearer(token)), "not signed with")


async def test_another_algorithm_is_401(client: httpx.AsyncClient, issuer: Issuer) -> None:
    payload: dict[str, object] = {"sub": "cust-a", "exp": int(time.time()) + 600, "aud": AUDIENCE, "iss": ISSUER}
    if issuer.algorithm == "HS256":
        token = jwt.encode(payload, _new_key("ES256"), algorithm="ES256")
    else:
        # Algorithm confusion: HS256 "signed" with the public key the API verifies with.
        token = hs256_with(issuer.public_pem(), payload)
    assert_invalid_token(await call(client, "POST", "/v1/checkouts", bearer(token)), "not signed with")


async def test_wrong_audience_is_401(client: httpx.AsyncClient, issuer: Issuer) -> None:
    token = issuer.token(aud="another-api")
    assert_invalid_token(await call(client, "GET", ROUTES[1][1], bearer(token)), "audience")


async def test_wrong_issuer_is_401(client: httpx.AsyncClient, issuer: Issuer) -> None:
    token = issuer.token(iss="https://evil.example")
    assert_invalid_token(await call(client, "GET", ROUTES[1][1], bearer(token)), "issuer")


@pytest.mark.parametrize("claim", ["exp", "sub", "aud", "iss"])
async def test_missing_claim_is_401(client: httpx.AsyncClient, issuer: Issuer, claim: str) -> None:
    token = issuer.token(drop=(claim,))
    assert_invalid_token(await call(client, "GET", ROUTES[1][1], bearer(token)), f"no {claim} claim")


async def test_a_token_living_longer_than_the_maximum_is_401(client: httpx.AsyncClient, issuer: Issuer) -> None:
    # CUSTOMER_JWT_MAX_LIFETIME_SECONDS (3600 by default): from now, and from the token's own `iat`.
    for token in (issuer.token(expires_in=2 * 3600),
                  issuer.token(expires_in=600, iat=int(time.time()) - 2 * 3600)):
        assert_invalid_token(await call(client, "GET", ROUTES[1][1], bearer(token)), "lives longer than 3600 s")
    # Within it: past the token checks (Temporal is unreachable here: 503, not 401).
    within = issuer.token(expires_in=3000, iat=int(time.time()))
    assert (await call(client, "GET", ROUTES[1][1], bearer(within))).status_code == 503


@pytest.mark.parametrize("subject", ["", "has space", "x" * 65, "é"])
async def test_a_subject_that_is_no_customer_id_is_401(client: httpx.AsyncClient, issuer: Issuer,
                                                       subject: str) -> None:
    token = issuer.token(subject)
    response = await call(client, "POST", "/v1/checkouts", bearer(token), customer_id="cust-a")
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_garbage_is_401(client: httpx.AsyncClient) -> None:
    assert_invalid_token(await call(client, "GET", ROUTES[1][1], bearer("not-a-jwt")), "well-formed")


async def test_body_customer_other_than_the_token_is_403(client: httpx.AsyncClient, issuer: Issuer) -> None:
    response = await call(client, "POST", "/v1/checkouts", bearer(issuer.token("cust-a")), customer_id="cust-b")
    assert_problem(response, 403, "sub")


async def test_own_checkout_passes_auth(client: httpx.AsyncClient, issuer: Issuer) -> None:
    # Accepted: the request goes on to Temporal, which is unreachable here.
    response = await call(client, "POST", "/v1/checkouts", bearer(issuer.token("cust-a")), customer_id="cust-a")
    assert_problem(response, 503)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", "/v1/checkouts", 403),
    ("POST", f"/v1/checkouts/{CHECKOUT_ID}/confirm", 403),
    ("POST", f"/v1/checkouts/{CHECKOUT_ID}/extend", 403),
    # Reading and cancelling are the operator's: they go on to Temporal (503 here).
    ("GET", f"/v1/checkouts/{CHECKOUT_ID}", 503),
    ("POST", f"/v1/checkouts/{CHECKOUT_ID}/cancel", 503),
])
async def test_operator_token_reads_and_cancels_only(client: httpx.AsyncClient, method: str, path: str,
                                                     status: int) -> None:
    assert_problem(await call(client, method, path, OPERATOR), status)


async def test_a_customer_token_is_no_operator_token(client: httpx.AsyncClient, issuer: Issuer) -> None:
    response = await client.get("/v1/audit", headers=bearer(issuer.token("cust-a")))
    assert_problem(response, 401)


async def test_openapi_declares_both_schemes(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["customerJwt"] == {**schemes["customerJwt"], "type": "http", "scheme": "bearer",
                                      "bearerFormat": "JWT"}
    assert schemes["operatorToken"]["type"] == "http" and schemes["operatorToken"]["scheme"] == "bearer"
    paths = document["paths"]
    read = paths["/v1/checkouts/{checkout_id}"]["get"]
    assert read["security"] == [{"customerJwt": []}, {"operatorToken": []}]
    assert paths["/v1/checkouts"]["post"]["security"] == [{"customerJwt": []}]
    assert "WWW-Authenticate" in read["responses"]["401"]["headers"]
    assert "application/problem+json" in paths["/v1/checkouts"]["post"]["responses"]["403"]["content"]
    assert paths["/v1/audit"]["get"]["security"] == [{"operatorToken": []}]


# --- CUSTOMER_AUTH=none: today's behaviour -------------------------------------------------------------------


async def test_auth_none_trusts_the_body_and_ignores_tokens() -> None:
    settings = Settings(operator_token=OPERATOR_TOKEN, temporal_address=f"127.0.0.1:{free_port()}",
                        database_url="", redis_url="")
    async with running_app(settings) as (_app, http):
        for headers in ({}, bearer("anything"), OPERATOR):
            assert_problem(await call(http, "POST", "/v1/checkouts", headers, customer_id="whoever"), 503)
        document = (await http.get("/openapi.json")).json()
        # The token is optional here: an empty requirement.
        assert {} in document["paths"]["/v1/checkouts"]["post"]["security"]


# --- configuration: refused at startup ------------------------------------------------------------------------


def test_jwt_needs_exactly_one_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Settings(operator_token=OPERATOR_TOKEN, customer_auth="jwt")
    with pytest.raises(ValidationError, match="exactly one"):
        Settings(operator_token=OPERATOR_TOKEN, customer_auth="jwt", customer_jwt_secret="s" * 32,
                 customer_jwt_public_key=str(tmp_path / "k.pem"))


def test_short_secret_and_mismatched_algorithm_are_refused() -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(operator_token=OPERATOR_TOKEN, customer_auth="jwt", customer_jwt_secret="short")
    with pytest.raises(ValidationError, match="needs CUSTOMER_JWT_PUBLIC_KEY"):
        Settings(operator_token=OPERATOR_TOKEN, customer_auth="jwt", customer_jwt_secret="s" * 32,
                 customer_jwt_algorithm="RS256")


def test_missing_key_file_stops_the_api(tmp_path: Path) -> None:
    settings = Settings(operator_token=OPERATOR_TOKEN, customer_auth="jwt", allow_insecure=True,
                        customer_jwt_public_key=str(tmp_path / "absent.pem"))
    with pytest.raises(RuntimeError, match=r"absent\.pem cannot be read"):
        create_app(settings)


def test_a_file_that_is_no_public_key_stops_the_api(tmp_path: Path) -> None:
    path = tmp_path / "private.pem"
    private = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    settings = Settings(operator_token=OPERATOR_TOKEN, customer_auth="jwt", customer_jwt_public_key=str(path),
                        allow_insecure=True)
    with pytest.raises(RuntimeError, match="not a PEM public key"):
        create_app(settings)


def test_algorithm_must_match_the_key(tmp_path: Path) -> None:
    issuer = make_issuer("ES256", tmp_path)
    settings = jwt_settings(issuer, customer_jwt_algorithm="RS256", allow_insecure=True)
    with pytest.raises(RuntimeError, match="does not match"):
        create_app(settings)


# --- ownership on the live stack --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live_issuer(tmp_path_factory: pytest.TempPathFactory) -> Issuer:
    # A key file, as a production identity provider would publish.
    return make_issuer("ES256", tmp_path_factory.mktemp("live-keys"))


@pytest.fixture(scope="module")
async def jwt_stack_settings(dev_server_env: WorkflowEnvironment, api_database: str, redis_url: str,
                             live_issuer: Issuer) -> Settings:
    return live_settings(dev_server_env, api_database, redis_url, customer_auth="jwt",
                         customer_jwt_audience=AUDIENCE, customer_jwt_issuer=ISSUER, **live_issuer.verify_settings)


@pytest.fixture(scope="module")
async def live_client(dev_server_env: WorkflowEnvironment,
                      jwt_stack_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with saga_workers(dev_server_env, jwt_stack_settings), running_app(jwt_stack_settings) as (_app, http):
        yield http


async def seats(client: httpx.AsyncClient, checkout_id: str) -> tuple[int, int]:
    """(held, sold) of the economy seats of the flight `held_checkout` made for this checkout."""
    flight = FLIGHTS[checkout_id]
    economy = (await client.get(f"/v1/flights/{flight}/availability")).json()["seat_classes"]["economy"]
    return economy["held"], economy["sold"]


FLIGHTS: dict[str, str] = {}  # checkout id -> the flight held_checkout made for it


async def held_checkout(client: httpx.AsyncClient, issuer: Issuer, customer: str) -> str:
    flight = unique("F")
    departs = "2031-01-01T10:00:00+00:00"
    upsert = await client.put(f"/v1/inventory/flights/{flight}", headers=OPERATOR, json={
        "origin": "LHR", "destination": "JFK", "departs_at": departs, "seats": {"economy": 5}})
    assert upsert.status_code == 200, upsert.text
    body = {"customer_id": customer, "flight": {"flight_id": flight, "seat_class": "economy", "seats": 1}}
    response = await client.post("/v1/checkouts", json=body,
                                 headers={"Idempotency-Key": unique("key"), **bearer(issuer.token(customer))})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "HELD"
    checkout_id: str = response.json()["checkout_id"]
    FLIGHTS[checkout_id] = flight
    assert await seats(client, checkout_id) == (1, 0)
    return checkout_id


@pytest.mark.devserver
@pytest.mark.slow
async def test_another_customers_checkout_is_404_like_an_unknown_one(live_client: httpx.AsyncClient,
                                                                   live_issuer: Issuer) -> None:
    owner, other = unique("cust"), unique("cust")
    checkout_id = await held_checkout(live_client, live_issuer, owner)
    stranger = bearer(live_issuer.token(other))
    unknown = assert_problem(await live_client.get(f"/v1/checkouts/{CHECKOUT_ID}", headers=stranger), 404)
    for method, suffix, body in [("GET", "", None), ("POST", "/confirm", None), ("POST", "/cancel", None),
                                 ("POST", "/extend", {"seconds": 60})]:
        response = await live_client.request(method, f"/v1/checkouts/{checkout_id}{suffix}", json=body,
                                             headers=stranger)
        problem = assert_problem(response, 404)
        # The same answer as for an id that does not exist, the id aside.
        assert {**problem, "detail": "", "instance": ""} == {**unknown, "detail": "", "instance": ""}
        assert problem["detail"] == unknown["detail"].replace(CHECKOUT_ID, checkout_id)
    # Nothing happened to it.
    mine = await live_client.get(f"/v1/checkouts/{checkout_id}", headers=bearer(live_issuer.token(owner)))
    assert mine.status_code == 200 and mine.json()["status"] == "HELD"
    assert mine.json()["expires_at"] and mine.json()["customer_id"] == owner
    assert await seats(live_client, checkout_id) == (1, 0)


@pytest.mark.devserver
@pytest.mark.slow
async def test_the_owner_reads_extends_and_confirms(live_client: httpx.AsyncClient, live_issuer: Issuer) -> None:
    owner = unique("cust")
    checkout_id = await held_checkout(live_client, live_issuer, owner)
    mine = bearer(live_issuer.token(owner))
    before = (await live_client.get(f"/v1/checkouts/{checkout_id}", headers=mine)).json()
    extended = await live_client.post(f"/v1/checkouts/{checkout_id}/extend", json={"seconds": 60}, headers=mine)
    assert extended.status_code == 200, extended.text
    assert extended.json()["expires_at"] > before["expires_at"]
    assert {hold["expires_at"] for hold in extended.json()["holds"]} == {extended.json()["expires_at"]}
    assert_problem(await live_client.post(f"/v1/checkouts/{checkout_id}/confirm", headers=OPERATOR), 403)
    confirmed = await live_client.post(f"/v1/checkouts/{checkout_id}/confirm", headers=mine)
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "CONFIRMED"
    assert await seats(live_client, checkout_id) == (0, 1)


@pytest.mark.devserver
@pytest.mark.slow
async def test_the_operator_reads_and_cancels_any_checkout(live_client: httpx.AsyncClient,
                                                          live_issuer: Issuer) -> None:
    owner = unique("cust")
    checkout_id = await held_checkout(live_client, live_issuer, owner)
    read = await live_client.get(f"/v1/checkouts/{checkout_id}", headers=OPERATOR)
    assert read.status_code == 200 and read.json()["customer_id"] == owner
    assert_problem(await live_client.get(f"/v1/checkouts/{checkout_id}"), 401)
    cancelled = await live_client.post(f"/v1/checkouts/{checkout_id}/cancel", headers=OPERATOR)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert await seats(live_client, checkout_id) == (0, 0)


@pytest.mark.devserver
@pytest.mark.slow
async def test_a_customer_reads_only_its_own_wallet(live_client: httpx.AsyncClient, live_issuer: Issuer) -> None:
    owner, other = unique("cust"), unique("cust")
    funded = await live_client.put(f"/v1/wallets/{owner}", json={"currency": "EUR", "balance": 5_000},
                                   headers=OPERATOR)
    assert funded.status_code == 200, funded.text
    mine = await live_client.get(f"/v1/wallets/{owner}", headers=bearer(live_issuer.token(owner)))
    assert mine.status_code == 200 and mine.json()["available"] == 5_000
    assert_problem(await live_client.get(f"/v1/wallets/{owner}", headers=bearer(live_issuer.token(other))), 404)
    assert_problem(await live_client.get(f"/v1/wallets/{owner}"), 401)
    assert (await live_client.get(f"/v1/wallets/{owner}", headers=OPERATOR)).status_code == 200
    assert_problem(await live_client.put(f"/v1/wallets/{owner}", json={"currency": "EUR", "balance": 1},
                                         headers=bearer(live_issuer.token(owner))), 401)


@pytest.mark.devserver
@pytest.mark.slow
async def test_a_customer_lists_its_own_bookings_the_operator_anyones(live_client: httpx.AsyncClient,
                                                                      live_issuer: Issuer) -> None:
    owner, other = unique("cust"), unique("cust")
    mine = bearer(live_issuer.token(owner))
    # Under jwt the body may leave customer_id out: the token says who books.
    flight = unique("F")
    upsert = await live_client.put(f"/v1/inventory/flights/{flight}", headers=OPERATOR, json={
        "origin": "LHR", "destination": "JFK", "departs_at": "2031-01-01T10:00:00+00:00", "seats": {"economy": 5}})
    assert upsert.status_code == 200, upsert.text
    placed = await live_client.post("/v1/checkouts", headers={"Idempotency-Key": unique("key"), **mine},
                                    json={"flight": {"flight_id": flight, "seat_class": "economy", "seats": 1}})
    assert placed.status_code == 201 and placed.json()["customer_id"] == owner, placed.text
    checkout_id = placed.json()["checkout_id"]

    async def listed(headers: dict[str, str], **params: str) -> httpx.Response:
        for _ in range(100):  # the record is written just after the 201
            response = await live_client.get("/v1/checkouts", params=params, headers=headers)
            if response.status_code != 200 or response.json()["checkouts"]:
                return response
            await asyncio.sleep(0.05)
        return response

    own = await listed(mine)
    assert own.status_code == 200 and [c["checkout_id"] for c in own.json()["checkouts"]] == [checkout_id]
    named = await listed(mine, customer_id=owner)
    assert [c["checkout_id"] for c in named.json()["checkouts"]] == [checkout_id]
    assert_problem(await live_client.get("/v1/checkouts", params={"customer_id": other}, headers=mine), 403)
    assert_problem(await live_client.get("/v1/checkouts"), 401)
    theirs = await listed(bearer(live_issuer.token(other)))
    assert theirs.status_code == 200 and theirs.json()["checkouts"] == []
    operator = await listed(OPERATOR, customer_id=owner)
    assert [c["checkout_id"] for c in operator.json()["checkouts"]] == [checkout_id]
    everyone = await live_client.get("/v1/checkouts", params={"limit": 1}, headers=OPERATOR)
    assert everyone.status_code == 200 and len(everyone.json()["checkouts"]) == 1


@pytest.mark.devserver
@pytest.mark.slow
async def test_schemathesis_with_customer_auth(live_client: httpx.AsyncClient, jwt_stack_settings: Settings,
                                               live_issuer: Issuer) -> None:
    from tests.api.identity_fuzz import run_schemathesis_with_tokens

    # A long-lived token: the run must not outlast it.
    customer = bearer(live_issuer.token("fuzz-customer", expires_in=3600))
    # In a thread: the workers keep running on this event loop while schemathesis drives its own app copy.
    tested = await asyncio.to_thread(run_schemathesis_with_tokens, jwt_stack_settings, customer, OPERATOR)
    assert "POST /v1/checkouts" in tested and "GET /v1/checkouts/{checkout_id}" in tested


@pytest.mark.devserver
@pytest.mark.slow
async def test_a_checkouts_token_is_verified_once(
    live_client: httpx.AsyncClient, live_issuer: Issuer, jwt_stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rate limit, the sold-out lane (which looks, finds nothing short and hands on) and the route identify the
    caller of one checkout once between them (api/identity.py request_caller)."""
    assert jwt_stack_settings.redis_url, "the lane looks only with the availability cache"
    verified: list[str] = []
    real = CustomerTokens.customer_of

    def counted(self: CustomerTokens, token: str) -> str:
        verified.append(token)
        return real(self, token)

    monkeypatch.setattr(CustomerTokens, "customer_of", counted)
    await held_checkout(live_client, live_issuer, unique("cust"))  # a 201 through the lane and the route
    assert len(verified) == 1


@pytest.mark.devserver
@pytest.mark.slow
async def test_the_sold_out_lane_answers_a_customer_with_a_token(
    live_client: httpx.AsyncClient, live_issuer: Issuer, jwt_stack_settings: Settings,
    dev_server_env: WorkflowEnvironment,
) -> None:
    """CUSTOMER_AUTH=jwt with Redis on: a checkout the cache shows short is answered 409 by the lane, for the
    token's customer, and no saga is started."""
    assert jwt_stack_settings.redis_url, "the lane needs the availability cache"
    sku = unique("SKU")
    stocked = await live_client.put(f"/v1/inventory/items/{sku}", json={"stock": 0}, headers=OPERATOR)
    assert stocked.status_code == 200, stocked.text  # the API's own upsert publishes the row: 0 available
    customer, key = unique("cust"), unique("key")
    before = await metric(live_client, "booking_fast_path_rejections_total")
    response = await live_client.post(
        "/v1/checkouts", json={"customer_id": customer, "items": [{"sku": sku, "quantity": 1}]},
        headers={"Idempotency-Key": key, **bearer(live_issuer.token(customer))},
    )
    problem = assert_problem(response, 409)
    assert problem["checkout_status"] == "REJECTED"
    assert problem["unavailable"] == [{"resource": sku, "requested": 1, "available": 0}]
    assert await metric(live_client, "booking_fast_path_rejections_total") == before + 1
    saga_id = checkout_id(jwt_stack_settings.checkout_id_secret, customer, key)
    handle = dev_server_env.client.get_workflow_handle(saga_id)
    with pytest.raises(RPCError) as missing:
        await handle.describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
