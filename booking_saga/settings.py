"""One settings object for every process, read from the environment (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache

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
    task_queue_flight: str = "flight"
    task_queue_hotel: str = "hotel"
    task_queue_orders: str = "orders"

    hold_seconds_default: int = 600
    hold_seconds_min: int = 5
    hold_seconds_max: int = 3600
    # A hold may be pushed out by extend, but never further than this from the checkout's start.
    hold_lifetime_max_seconds: int = 7200
    # The sweeper only expires holds this long past expires_at: the workflow's own timer goes first.
    sweeper_grace_seconds: int = 120
    # How often each service worker sweeps; overdue holds wait at most this long past their grace.
    sweeper_every_seconds: float = Field(default=30.0, gt=0)

    operator_token: str = ""
    # Keys the HMAC that turns (customer_id, Idempotency-Key) into an unguessable checkout id.
    checkout_id_secret: str = "dev-only-change-me"
    cors_origins: list[str] = Field(default_factory=list)

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    # `booking-saga dev` only: where the embedded servers keep their data, and the embedded Redis port.
    data_dir: str = ".data"
    embedded_redis_port: int = 6390

    log_level: str = "INFO"
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
        return self

    def task_queue(self, service: str) -> str:
        return {
            "checkout": self.task_queue_checkout,
            "flight": self.task_queue_flight,
            "hotel": self.task_queue_hotel,
            "orders": self.task_queue_orders,
        }[service]


@lru_cache
def get_settings() -> Settings:
    return Settings()
