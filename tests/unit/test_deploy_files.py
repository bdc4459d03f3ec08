"""deploy/: the Grafana dashboard and the Prometheus scrape config agree with what the code exports.

Every metric a dashboard query names must be one the project registers (prometheus_client's Counter / Histogram /
Gauge / Summary in api/, services/, workflows/, activities/, booking_saga/, read from the source) or one the
Temporal SDK's worker endpoint serves (the list below, as the Runtime's PrometheusConfig in booking_saga/temporal.py
names them): a renamed metric fails here instead of leaving an empty panel."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "booking-saga.json"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
SOURCE_DIRS = ("api", "services", "workflows", "activities", "booking_saga")

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
        # issue 15's business metrics: conversion and outcomes, compensations, confirm / cancel answers
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
