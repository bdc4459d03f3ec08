"""When the sold-out lane answers in front of the middleware stack (api/main.py `BookingApi`), and when not."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import metrics, trace

from api.main import BookingApi, create_app
from runtime.embedded import free_port
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, with_test_defaults


def app(**changes: Any) -> BookingApi:
    settings = Settings(operator_token=OPERATOR_TOKEN, temporal_address=f"127.0.0.1:{free_port()}",
                        database_url="", redis_url="", **changes)
    built = create_app(with_test_defaults(settings))
    assert isinstance(built, BookingApi)
    return built


def checkout(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/v1/checkouts", "headers": list(headers)}


def test_a_checkout_without_an_origin_is_answered_in_front() -> None:
    assert app()._front_for(checkout((b"content-type", b"application/json"))) is not None


def test_a_checkout_with_an_origin_takes_the_whole_stack() -> None:
    assert app()._front_for(checkout((b"origin", b"https://shop.example"))) is None


def test_no_front_where_a_layer_would_change_the_answer() -> None:
    assert app(cors_origins=["https://shop.example"])._front_for(checkout()) is None  # CORS: Vary: Origin
    traced = app()
    traced._is_instrumented_by_opentelemetry = True  # as the tracing instrumentor marks an app
    assert traced._front_for(checkout()) is None
    limited = app()
    limited.max_body_size = 1024
    assert limited._front_for(checkout()) is None
    without_lane = app()
    without_lane.user_middleware = [m for m in without_lane.user_middleware if m.cls.__name__ != "SoldOutLane"]
    assert without_lane._front_for(checkout()) is None


def test_choosing_the_front_asks_no_telemetry_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """FastAPI's own telemetry is off (tracing is runtime/tracing.py's), so a checkout asks none of
    OpenTelemetry's global providers whether one is set: with it on, every sold-out answer did, twice."""
    asked: list[str] = []
    for module, getter in ((trace, "get_tracer_provider"), (metrics, "get_meter_provider")):
        def counted(real: Any = getattr(module, getter), name: str = getter) -> Any:
            asked.append(name)
            return real()

        monkeypatch.setattr(module, getter, counted)
    built = app()
    for _ in range(3):
        assert built._front_for(checkout()) is not None
    assert asked == []
