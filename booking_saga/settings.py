"""One settings object for every process, read from the environment (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # A saga's workflow task timeout: how long a checkout worker that died inside a task (placing local holds,
    # confirming) holds up its sagas before another worker runs the task again.
    workflow_task_timeout_seconds: float = Field(default=2.0, gt=0)
    # A remote participant's task queue, by participant name (JSON: TASK_QUEUES='{"cars": "cars-eu"}'); a
    # participant missing here uses its name.
    task_queues: dict[str, str] = Field(default_factory=dict)
    # A participant's placement overridden by name (JSON: PARTICIPANT_PLACEMENTS='{"cars": "remote"}'): each one's
    # own (Participant.placement) otherwise. API and workers must agree.
    participant_placements: dict[str, Literal["local", "remote"]] = Field(default_factory=dict)
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

    operator_token: str = ""
    # Keys the HMAC that turns (customer_id, Idempotency-Key) into an unguessable checkout id.
    checkout_id_secret: str = "dev-only-change-me"
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

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    # `booking-saga dev` only: where the embedded servers keep their data, and the embedded Redis port.
    data_dir: str = ".data"
    embedded_redis_port: int = 6390

    log_level: str = "INFO"
    # text: one human line per record; json: one JSON object per line, with the checkout id (booking_saga.logs).
    log_format: Literal["text", "json"] = "text"
    # Workers only: serve the Temporal SDK's Prometheus metrics on this port (unset: no endpoint).
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"
    # OpenTelemetry's own variable: when set, `api` and `worker` export traces over OTLP/HTTP to it (the exporter
    # also reads OTEL_EXPORTER_OTLP_HEADERS and friends); unset, nothing is traced (booking_saga/tracing.py).
    otel_exporter_otlp_endpoint: str = ""
    # Run CheckoutSaga inside the SDK's sandbox in the checkout worker. Off by default: the sandbox re-executes
    # the workflow module for every new checkout (about 40% of the worker's CPU, measured with py-spy). The
    # tests and every replay run the workflow in the sandbox, so a non-deterministic call still fails there.
    workflow_sandbox: bool = False

    # How long a Redis call may take before the caller goes on without the cache. The event loop's own backlog
    # counts against it: at the start of a burst of 50 checkouts the API's loop is ~70 ms behind, and a 50 ms
    # budget sent a whole burst of sold-out checkouts to the saga (measured: 50 sagas per flash-sale wave).
    redis_budget_ms: int = 200
    cache_ttl_seconds: int = 300

    @model_validator(mode="after")
    def _check_bounds(self) -> Settings:
        if not (0 < self.hold_seconds_min <= self.hold_seconds_default <= self.hold_seconds_max):
            raise ValueError("need 0 < HOLD_SECONDS_MIN <= HOLD_SECONDS_DEFAULT <= HOLD_SECONDS_MAX")
        if "*" in self.cors_origins:
            # Credentials (the operator bearer token) must never be sent to any origin.
            raise ValueError("CORS_ORIGINS may not contain '*': list the front-end origins")
        self._check_customer_auth()
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

    def task_queue(self, service: str) -> str:
        """The task queue of the checkout worker ('checkout') or of a participant's worker."""
        if service == "checkout":
            return self.task_queue_checkout
        return self.task_queues.get(service, service)


@lru_cache
def get_settings() -> Settings:
    return Settings()
