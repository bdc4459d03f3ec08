"""runtime.tracing: nothing installed (no SDK imported, no interceptor) without OTEL_EXPORTER_OTLP_ENDPOINT;
with it, an OTLP exporter, the Temporal interceptor and the instrumented app. Each case in a fresh interpreter:
a process's global tracer provider can be set once only."""

from __future__ import annotations

import os
import subprocess
import sys

from runtime.embedded import free_port

OFF = """
import sys
from settings import Settings
from runtime import tracing
from api.main import create_app
assert tracing.setup_tracing("test", Settings()) is False
assert not tracing.enabled() and tracing.client_interceptors() == []
create_app(Settings(operator_token="t", allow_insecure=True))
# (redis-py imports opentelemetry.sdk.metrics for its own observability when installed: not ours, no tracing.)
ours = ("opentelemetry.sdk.trace", "opentelemetry.instrumentation", "opentelemetry.exporter")
loaded = sorted(name for name in sys.modules if name.startswith(ours))
assert not loaded, loaded
from opentelemetry import trace
assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # nothing set: spans are no-ops
print("off")
"""

ON = """
from opentelemetry import trace
from temporalio.contrib.opentelemetry import TracingInterceptor
from settings import Settings
from runtime import tracing
from api.main import create_app
assert tracing.setup_tracing("test", Settings()) is True
assert tracing.enabled()
(interceptor,) = tracing.client_interceptors()
assert isinstance(interceptor, TracingInterceptor)
assert trace.get_tracer_provider() is tracing._provider
app = create_app(Settings(operator_token="t", allow_insecure=True))
assert getattr(app, "_is_instrumented_by_opentelemetry", False)
tracing.shutdown_tracing()  # the collector is not there: the batch is dropped, nothing hangs
print("on")
"""


def _run(code: str, endpoint: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_without_an_endpoint_nothing_is_installed() -> None:
    assert _run(OFF, None) == "off"


def test_with_an_endpoint_the_process_traces() -> None:
    assert _run(ON, f"http://127.0.0.1:{free_port()}") == "on"
