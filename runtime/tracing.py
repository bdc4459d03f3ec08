"""OpenTelemetry tracing: one trace per checkout, from the HTTP request through Temporal into the ledgers.

Contract:
- `setup_tracing(service_name, settings)` (called by `booking-saga api` and `booking-saga worker`) turns tracing on
  only when OTEL_EXPORTER_OTLP_ENDPOINT is set: a tracer provider exporting over OTLP/HTTP in batches, asyncpg and
  Redis instrumented. Unset, it installs nothing and imports none of the OpenTelemetry SDK: no cost.
- Once on, `client_interceptors()` gives Temporal's `TracingInterceptor` (runtime.temporal.connect puts it on
  every client, so the API's Update-with-Start carries the trace context and the workers built on a client create
  RunWorkflow / StartActivity / RunActivity spans under it) and `instrument_app(app)` wraps the FastAPI app.
  The interceptor creates no workflow span while a workflow replays (worker restart, cache eviction, `Replayer`).
- `install(provider)` / `uninstall()` are the same without the exporter, for tests with an in-memory exporter.
- `shutdown_tracing()` flushes the spans still batched: the commands leave with os._exit, which flushes nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Interceptor

log = logging.getLogger(__name__)

# The instrumentation scope of the spans Temporal's interceptor makes.
TRACER_NAME = "runtime.temporal"

_provider: TracerProvider | None = None


def enabled() -> bool:
    return _provider is not None


def setup_tracing(service_name: str, settings: Settings) -> bool:
    """Trace this process when OTEL_EXPORTER_OTLP_ENDPOINT is set; True when tracing is on."""
    if not settings.otel_exporter_otlp_endpoint:
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    # The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and _HEADERS, _TIMEOUT...) itself and appends /v1/traces.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # Global too, so any other instrumented library of the process joins the same traces.
    trace.set_tracer_provider(provider)
    install(provider)
    log.info("tracing on: %s exports OTLP spans to %s", service_name, settings.otel_exporter_otlp_endpoint)
    return True


def install(provider: TracerProvider) -> None:
    """Instrument asyncpg and Redis with `provider`, and make connect() / the app factory trace."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    global _provider
    if _provider is not None:
        uninstall()
    AsyncPGInstrumentor().instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    _provider = provider


def uninstall() -> None:
    """Undo `install` (tests): asyncpg and Redis calls untraced, new clients and apps without tracing."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    global _provider
    if _provider is None:
        return
    AsyncPGInstrumentor().uninstrument()
    RedisInstrumentor().uninstrument()
    _provider = None


def client_interceptors() -> list[Interceptor]:
    """Temporal's tracing interceptor when tracing is on (client calls and, through the client, its workers)."""
    if _provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(_provider.get_tracer(TRACER_NAME))]


def instrument_app(app: FastAPI) -> None:
    """A server span per HTTP request, the parent of the request's Temporal, PostgreSQL and Redis spans."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls="healthz,readyz,metrics")


def shutdown_tracing() -> None:
    """Export what is still batched; a no-op without tracing."""
    if _provider is not None:
        _provider.shutdown()
