"""One settings object for every process, read from the environment (pydantic-settings)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# --- Secure by default (docs/security.md) ---------------------------------------------------------------------------
# The processes `start_checks` knows: the HTTP API and the Temporal workers.
Process = Literal["api", "worker"]
# Secrets and tokens shorter than this can be guessed or brute-forced offline (RFC 7518 3.2's rule for HS256).
MIN_SECRET_BYTES = 32
DEV_CHECKOUT_ID_SECRET = "dev-only-change-me"
_log = logging.getLogger("settings")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    # Empty means "start the embedded server" for `booking-saga dev` and the tests; production sets both.
    database_url: str = ""
    redis_url: str = ""

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233

    task_queue_checkout: str = "checkout"
    # How long a checkout worker's sticky workflow tasks wait for it before any worker may take them: the time a
    # dead checkout worker's sagas stand still.
    sticky_timeout_seconds: float = Field(default=2.0, gt=0)
    # How many sagas a checkout worker keeps in memory between their workflow tasks (the SDK's
    # max_cached_workflows): fewer costs a replay of the saga's history on its next task; 0 keeps none, so no task
    # ever waits for one worker in particular (sticky execution off).
    workflow_cache_size: int = Field(default=1000, ge=0)
    # A saga's workflow task timeout: how long a checkout worker that died inside a task (placing local holds,
    # confirming) holds up its sagas before another worker runs the task again.
    workflow_task_timeout_seconds: float = Field(default=2.0, gt=0)
    # A remote participant's task queue, by participant name (JSON: TASK_QUEUES='{"cars": "cars-eu"}'); a
    # participant missing here uses its name.
    task_queues: dict[str, str] = Field(default_factory=dict)
    # A participant's placement overridden by name (JSON: PARTICIPANT_PLACEMENTS='{"cars": "remote"}'): each one's
    # own (Participant.placement) otherwise. API and workers must agree.
    participant_placements: dict[str, Literal["local", "remote"]] = Field(default_factory=dict)
    # A sale's cancellation (CancelSale) reads and writes the booking record as local activities of the checkout
    # worker: with local participants the whole cancellation is one workflow task. Off: each is an activity task of
    # its own, listed with its attempts in the Temporal UI (while PostgreSQL is down, say), a round trip more each.
    cancel_sale_local_activities: bool = True
    # A participant whose ledger lives in another database, by participant name (JSON); the rest use DATABASE_URL.
    participant_database_urls: dict[str, str] = Field(default_factory=dict)

    hold_seconds_default: int = 600
    hold_seconds_min: int = 5
    hold_seconds_max: int = 3600
    # A hold may be pushed out by extend, but never further than this from the checkout's start.
    hold_lifetime_max_seconds: int = 7200
    # The sweeper only expires holds this long past expires_at: the workflow's own timer goes first.
    sweeper_grace_seconds: int = 120
    # How often each service worker sweeps; overdue holds wait at most this long past their grace.
    sweeper_every_seconds: float = Field(default=30.0, gt=0)

    # Per-customer limits (services/customer_limits.py); 0 turns a limit off.
    customer_active_checkouts_max: int = Field(default=3, ge=0)
    customer_units_max: int = Field(default=9, ge=0)

    # Booking records (services/bookings): how many days a settled checkout's record is kept after its last change;
    # 0 keeps every record (the default: how long is the business's decision).
    booking_records_keep_days: int = Field(default=0, ge=0)
    # Cancellation windows (services/<participant>/participant.py `cancel_until`), each a setting.
    cancel_flight_hours_before_departure: int = Field(default=24, ge=0)
    cancel_hotel_hours_before_check_in: int = Field(default=0, ge=0)
    cancel_car_hours_before_pick_up: int = Field(default=0, ge=0)
    cancel_items_days_after_confirmation: int = Field(default=30, ge=0)

    operator_token: str = ""
    # Keys the HMAC that turns (customer_id, Idempotency-Key) into an unguessable checkout id.
    checkout_id_secret: str = DEV_CHECKOUT_ID_SECRET  # unsafe outside dev (start_checks)
    cors_origins: list[str] = Field(default_factory=list)
    # Who the customer is: "none" trusts the body's customer_id (`make dev`); "jwt" takes it from the `sub` of an
    # `Authorization: Bearer <JWT>` that `exp` limits, verified with exactly one of the secret (HS256) or the
    # public key file (RS256 / ES256, read when the API starts). api/identity.py holds the rules.
    customer_auth: Literal["none", "jwt"] = "none"
    customer_jwt_secret: str = ""
    customer_jwt_public_key: str = ""
    customer_jwt_audience: str = ""
    customer_jwt_issuer: str = ""
    # One algorithm, pinned: empty means HS256 with the secret, or what the key file is (RSA: RS256, EC: ES256).
    customer_jwt_algorithm: Literal["", "HS256", "RS256", "ES256"] = ""

    # Events (docs/events.md). GET /v1/events takes the operator token, or this token of its own (empty: none).
    feed_token: str = ""
    # Webhook endpoints, comma- or space-separated (or a JSON list): every event is POSTed to each, signed with
    # WEBHOOK_SECRET (`whsec_` + base64, Standard Webhooks) by `booking-saga relay`.
    webhook_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_secret: str = ""
    # A delivery is retried with exponential backoff (base doubling up to max, with jitter) for this long, then
    # parked for an operator (`booking-saga events failed|replay`).
    webhook_retry_hours: float = Field(default=24.0, gt=0)
    webhook_backoff_base_seconds: float = Field(default=1.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Requests in flight per endpoint and relay process (each to a different checkout).
    webhook_concurrency: int = Field(default=8, ge=1)
    # The relay polls this often besides waking on each commit's NOTIFY.
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    # An endpoint's rounds that fan out start at most this often: the events committed meanwhile go out in one round
    # (0: a round at every commit).
    webhook_round_seconds: float = Field(default=0.1, ge=0)
    # `booking-saga relay` serves its Prometheus metrics on this port (unset: no endpoint).
    relay_metrics_port: int | None = None
    relay_metrics_host: str = "127.0.0.1"

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    # `booking-saga dev` only: where the embedded servers keep their data, and the embedded Redis port.
    data_dir: str = ".data"
    embedded_redis_port: int = 6390

    log_level: str = "INFO"
    # text: one human line per record; json: one JSON object per line, with the checkout id (runtime.logs).
    log_format: Literal["text", "json"] = "text"
    # Workers only: serve the Temporal SDK's Prometheus metrics on this port (unset: no endpoint).
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"
    # OpenTelemetry's own variable: when set, `api` and `worker` export traces over OTLP/HTTP to it (the exporter
    # also reads OTEL_EXPORTER_OTLP_HEADERS and friends); unset, nothing is traced (runtime/tracing.py).
    otel_exporter_otlp_endpoint: str = ""
    # Run CheckoutSaga inside the SDK's sandbox in the checkout worker. Off by default: the sandbox re-executes
    # the workflow module for every new checkout, a large share of the worker's CPU. The tests and every replay
    # run the workflow in the sandbox, so a non-deterministic call still fails there.
    workflow_sandbox: bool = False
    # A workflow task that fails with a non-determinism error (workflow code changed under running sagas without
    # `workflow.patched`) fails the whole saga instead of retrying the task until a fixed worker is deployed.
    # Off in production: a retried task resumes as soon as the bad deploy is rolled back, a failed saga does not
    # (its holds wait for the sweeper). On in the tests (tests/conftest.py), where a retry would hang the test.
    workflow_fail_on_nondeterminism: bool = False

    # How long a Redis call may take before the caller goes on without the cache. The event loop's own backlog
    # counts against it: at the start of a burst the API's loop runs behind, and a budget shorter than that
    # backlog times out a healthy Redis and sends the whole burst of sold-out checkouts to the saga.
    redis_budget_ms: int = 200
    cache_ttl_seconds: int = 300

    # --- Temporal: payload encryption and transport security (issue 25 items 4-5; docs/temporal-security.md) ---
    # The payload codec's keys, "id1:<base64 of 32 bytes>,id2:...": every key still needed to read; new payloads
    # use PAYLOAD_KEY_ID, else the first. Required by `api` and `worker` (runtime/codec.py); `booking-saga dev`
    # generates a dev key.
    payload_keys: str = Field(default="", repr=False)
    payload_key_id: str = ""
    # The origins of the Temporal UIs that call the codec server (/codec/*) from the browser (JSON list).
    codec_cors_origins: list[str] = Field(default_factory=list)
    # TLS to the Temporal frontend: on when TEMPORAL_TLS=1 or any file below is set (PEM files); an API key turns
    # it on too (Temporal Cloud). SERVER_NAME: the name the server's certificate is checked against (and the SNI).
    temporal_tls: bool = False
    temporal_tls_ca: str = ""
    temporal_tls_cert: str = ""
    temporal_tls_key: str = ""
    temporal_tls_server_name: str = ""
    temporal_api_key: str = Field(default="", repr=False)

    @model_validator(mode="after")
    def _check_temporal_security(self) -> Settings:
        keys = parse_payload_keys(self.payload_keys)  # raises, naming PAYLOAD_KEYS
        if self.payload_key_id and self.payload_key_id not in keys:
            raise ValueError(f"PAYLOAD_KEY_ID={self.payload_key_id} is not one of the key ids in PAYLOAD_KEYS")
        if "*" in self.codec_cors_origins:
            raise ValueError("CODEC_CORS_ORIGINS may not contain '*': list the Temporal UI origins")
        if bool(self.temporal_tls_cert) != bool(self.temporal_tls_key):
            raise ValueError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together (a client certificate and its key)")
        return self

    @property
    def temporal_tls_enabled(self) -> bool:
        return self.temporal_tls or bool(self.temporal_tls_ca or self.temporal_tls_cert or self.temporal_api_key)
    # --- Secure by default (docs/security.md): the API's request limits and the production checks ---------------
    # ALLOW_INSECURE=1 starts a process whose settings are unsafe for production (start_checks names them), with a
    # warning per setting, instead of refusing. `booking-saga dev` gives it to its children.
    allow_insecure: bool = False
    # A customer token that lives longer than this (its `exp` past now, or past its `iat`) is refused: a stolen
    # token is good for at most this long.
    customer_jwt_max_lifetime_seconds: int = Field(default=3600, gt=0)
    # Request bodies over this many bytes: 413, refused before they are read whole (api/guard.py).
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    # Requests per second per caller (customer, operator token, or client address), with bursts of twice that,
    # counted in Redis (shared by the replicas) or in the process without REDIS_URL; 0 turns the limit off.
    rate_limit: float = Field(default=20.0, ge=0)
    # Addresses or networks (CIDR) of the reverse proxies whose X-Forwarded-For names the client (JSON list).
    trusted_proxies: list[str] = Field(default_factory=list)
    # Connections of the anonymous reads' own pool (catalogue, availability): a flood of reads waits for these and
    # never for the checkouts' connections.
    read_pool_size: int = Field(default=3, gt=0)
    # How long a checkout's price check (one currency, every line of a paid checkout priced) may use prices read
    # for another checkout of the same rows; 0 reads them for every checkout. A refusal is always read afresh, and
    # the saga holds the prices the ledger has when it holds, whatever the check read (api/precheck.py).
    price_check_seconds: float = Field(default=1.0, ge=0)
    # A paid checkout's total as the price check read it (its quote) goes to the saga, whose payment then
    # authorizes it while the inventory holds, and refuses the checkout when the held lines' total differs (a
    # price changed in between). Off: the payment waits for the holds and authorizes their total.
    payment_beside_holds: bool = True

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"TRUSTED_PROXIES: {value!r} is not an address or network (CIDR)") from exc
        return values

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [url for url in value.replace(",", " ").split() if url]
        return value

    @model_validator(mode="after")
    def _check_bounds(self) -> Settings:
        if not (0 < self.hold_seconds_min <= self.hold_seconds_default <= self.hold_seconds_max):
            raise ValueError("need 0 < HOLD_SECONDS_MIN <= HOLD_SECONDS_DEFAULT <= HOLD_SECONDS_MAX")
        if "*" in self.cors_origins:
            # Credentials (the operator bearer token) must never be sent to any origin.
            raise ValueError("CORS_ORIGINS may not contain '*': list the front-end origins")
        self._check_customer_auth()
        if self.webhook_urls and not self.webhook_secret.startswith("whsec_"):
            raise ValueError("WEBHOOK_URLS needs WEBHOOK_SECRET: `whsec_` followed by a base64 key (at least 24 "
                             "random bytes, e.g. `whsec_$(openssl rand -base64 32)`)")
        if self.webhook_secret:
            try:
                key = self.webhook_secret.removeprefix("whsec_").rstrip("=")
                base64.b64decode(key + "=" * (-len(key) % 4), validate=True)
            except binascii.Error as error:
                raise ValueError("WEBHOOK_SECRET: what follows `whsec_` must be base64") from error
        for url in self.webhook_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"WEBHOOK_URLS: {url!r} is not an http(s) URL")
        return self

    def _check_customer_auth(self) -> None:
        if self.customer_auth != "jwt":
            return
        if bool(self.customer_jwt_secret) == bool(self.customer_jwt_public_key):
            raise ValueError("CUSTOMER_AUTH=jwt needs exactly one of CUSTOMER_JWT_SECRET (HS256) and "
                             "CUSTOMER_JWT_PUBLIC_KEY (a PEM public key file, RS256 or ES256)")
        algorithm = self.customer_jwt_algorithm
        if self.customer_jwt_secret:
            if algorithm not in ("", "HS256"):
                raise ValueError(f"CUSTOMER_JWT_ALGORITHM={algorithm} needs CUSTOMER_JWT_PUBLIC_KEY, not a secret")
            # RFC 7518 3.2: an HS256 key at least as long as the hash; a short one can be brute-forced offline.
            if len(self.customer_jwt_secret.encode()) < 32:
                raise ValueError("CUSTOMER_JWT_SECRET must be at least 32 bytes")
        elif algorithm == "HS256":
            raise ValueError("CUSTOMER_JWT_ALGORITHM=HS256 needs CUSTOMER_JWT_SECRET, not a public key")

    def unsafe(self, process: Process) -> list[str]:
        """What makes these settings unsafe for `process` in production, one sentence per setting, each naming it."""
        found: list[str] = []
        if not self.payload_keys:  # both processes write checkouts into Temporal (runtime/codec.py)
            found.append("PAYLOAD_KEYS is not set: checkout payloads would reach Temporal in plaintext (set "
                         "\"<id>:<base64 of 32 random bytes>\" on every API and worker)")
        if process == "api":
            if len(self.operator_token.encode()) < MIN_SECRET_BYTES:
                found.append(f"OPERATOR_TOKEN is shorter than {MIN_SECRET_BYTES} bytes")
            if self.checkout_id_secret == DEV_CHECKOUT_ID_SECRET:
                found.append("CHECKOUT_ID_SECRET is the development default")
            elif len(self.checkout_id_secret.encode()) < MIN_SECRET_BYTES:
                found.append(f"CHECKOUT_ID_SECRET is shorter than {MIN_SECRET_BYTES} bytes")
            if self.feed_token and len(self.feed_token.encode()) < MIN_SECRET_BYTES:
                found.append(f"FEED_TOKEN is shorter than {MIN_SECRET_BYTES} bytes")
            if self.customer_auth == "none":
                found.append("CUSTOMER_AUTH=none trusts the body's customer_id: anyone is any customer")
            else:
                if not self.customer_jwt_audience:
                    found.append("CUSTOMER_JWT_AUDIENCE is not set: tokens meant for another service are accepted")
                if not self.customer_jwt_issuer:
                    found.append("CUSTOMER_JWT_ISSUER is not set: tokens from any issuer with the key are accepted")
        return found

    def task_queue(self, service: str) -> str:
        """The task queue of the checkout worker ('checkout') or of a participant's worker."""
        if service == "checkout":
            return self.task_queue_checkout
        return self.task_queues.get(service, service)


PAYLOAD_KEY_BYTES = 32  # AES-256


def parse_payload_keys(text: str) -> dict[str, bytes]:
    """PAYLOAD_KEYS ("id:<base64>,id:<base64>") as {id: key}, in the order given; ValueError names the setting."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key_id, sep, encoded = item.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise ValueError("PAYLOAD_KEYS: each key is <id>:<base64 of 32 bytes>, separated by commas")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error as error:
            raise ValueError(f"PAYLOAD_KEYS: key {key_id!r} is not valid base64") from error
        if len(key) != PAYLOAD_KEY_BYTES:
            raise ValueError(f"PAYLOAD_KEYS: key {key_id!r} has {len(key)} bytes, not {PAYLOAD_KEY_BYTES}")
        if key_id in keys:
            raise ValueError(f"PAYLOAD_KEYS: key id {key_id!r} appears twice")
        keys[key_id] = key
    return keys
class UnsafeSettings(RuntimeError):
    """A process refused to start: the message names every setting at fault and the way out."""


def start_checks(settings: Settings, process: Process) -> None:
    """The one gate every production process passes at start (the API's create_app, the workers' run_worker).

    Raises UnsafeSettings naming each unsafe setting (Settings.unsafe), unless ALLOW_INSECURE=1: then the process
    starts and logs one warning per setting. The API never starts without an operator token at all.
    """
    if process == "api" and not settings.operator_token:
        raise UnsafeSettings("OPERATOR_TOKEN is not set: the API refuses to start without an operator token "
                             "(`booking-saga dev` generates one)")
    found = settings.unsafe(process)
    if not found:
        return
    if not settings.allow_insecure:
        raise UnsafeSettings(
            f"refusing to start the {process} with unsafe settings:\n" + "\n".join(f"  - {f}" for f in found)
            + "\nFix them (docs/security.md has the production checklist), or set ALLOW_INSECURE=1 to start anyway."
        )
    for problem in found:
        _log.warning("ALLOW_INSECURE=1: the %s starts although %s", process, problem)


@lru_cache
def get_settings() -> Settings:
    return Settings()
