"""LOG_FORMAT: json lines that parse, with checkout_id when the record concerns a checkout; text as before."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import NamedTuple

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from runtime.logs import TEXT_FORMAT, build_handler, configure_logging
from services.logcontext import bind_checkout, checkout_context, current_checkout_id
from settings import Settings
from workflows.checkout_saga import CheckoutSaga


class Captured(NamedTuple):
    logger: logging.Logger
    stream: io.StringIO
    handler: logging.Handler


@pytest.fixture
def captured() -> Iterator[Captured]:
    """A logger of its own writing JSON to a buffer (not propagated: pytest's capture stays out of it)."""
    stream = io.StringIO()
    logger = logging.getLogger("tests.logs.json")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = build_handler("json", stream)
    logger.addHandler(handler)
    yield Captured(logger, stream, handler)
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_parse_and_carry_the_fields(captured: Captured) -> None:
    logger, stream, _ = captured
    logger.info("placed %d hold(s)\nsecond line", 2)
    (line,) = lines(stream)
    assert line["level"] == "INFO"
    assert line["logger"] == "tests.logs.json"
    assert line["message"] == "placed 2 hold(s)\nsecond line"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])
    assert "checkout_id" not in line
    assert "exception" not in line


def test_checkout_id_present_when_bound(captured: Captured) -> None:
    logger, stream, _ = captured
    with checkout_context("chk_a"):
        logger.info("inside")
        with checkout_context("chk_b"):
            logger.info("nested")
        logger.info("back")
    logger.info("outside")
    logger.info("explicit", extra={"checkout_id": "chk_x"})
    assert [line.get("checkout_id") for line in lines(stream)] == ["chk_a", "chk_b", "chk_a", None, "chk_x"]


async def test_a_binding_stays_in_its_own_task(captured: Captured) -> None:
    logger, stream, _ = captured

    async def handle(checkout_id: str) -> None:
        bind_checkout(checkout_id)
        await asyncio.sleep(0)
        logger.info("handled")

    await asyncio.gather(handle("chk_1"), handle("chk_2"))
    assert current_checkout_id() is None
    assert sorted(line["checkout_id"] for line in lines(stream)) == ["chk_1", "chk_2"]


def test_exceptions_are_included(captured: Captured) -> None:
    logger, stream, _ = captured
    try:
        raise ValueError("ledger said no")
    except ValueError:
        logger.exception("hold failed")
    (line,) = lines(stream)
    assert line["message"] == "hold failed"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: ledger said no" in line["exception"]


def test_checkout_id_inside_a_checkout_activity(captured: Captured) -> None:
    """The SDK's activity context: a CheckoutSaga activity logs its workflow id (the checkout id) unasked; an
    activity of another workflow type does not, nor do lines after the activity."""
    logger, stream, _ = captured

    @activity.defn
    def hold() -> None:
        logger.info("plain logger")
        activity.logger.warning("sdk logger")

    handler = captured.handler
    sdk_logger = activity.logger.logger  # "temporalio.activity"
    sdk_logger.addHandler(handler)
    try:
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, workflow_id="chk_activity", workflow_type="CheckoutSaga")
        env.run(hold)
        other = ActivityEnvironment()
        other.info = dataclasses.replace(other.info, workflow_id="not-a-checkout", workflow_type="SomethingElse")
        other.run(hold)
    finally:
        sdk_logger.removeHandler(handler)
    logger.info("after")
    assert [line.get("checkout_id") for line in lines(stream)] == ["chk_activity", "chk_activity", None, None, None]


def test_the_checkout_workflow_type_is_the_one_the_filter_knows() -> None:
    definition = getattr(CheckoutSaga, "__temporal_workflow_definition")
    assert definition.name == "CheckoutSaga"


def test_workflow_logger_extra_names_the_checkout(captured: Captured) -> None:
    """What `workflow.logger` attaches to its records (temporal_workflow) is enough to find the checkout."""
    logger, stream, _ = captured
    logger.info("timer fired", extra={"temporal_workflow": {"workflow_id": "chk_wf", "workflow_type": "CheckoutSaga"}})
    assert lines(stream)[0]["checkout_id"] == "chk_wf"


def test_text_format_is_unchanged() -> None:
    stream = io.StringIO()
    handler = build_handler("text", stream)
    assert TEXT_FORMAT == "%(asctime)s %(levelname)s %(name)s: %(message)s"
    record = logging.LogRecord("runtime.worker", logging.WARNING, __file__, 1, "sweeper: %s", ("orders",), None)
    with checkout_context("chk_text"):
        handler.handle(record)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING runtime.worker: sweeper: orders\n",
                        stream.getvalue())


def test_log_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


def test_configure_logging_installs_a_json_root_handler() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    try:
        configure_logging(Settings(log_format="json", log_level="debug"))
        (handler,) = root.handlers
        assert root.level == logging.DEBUG
        stream = io.StringIO()
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        with checkout_context("chk_root"):
            logging.getLogger("checkouts.saga").warning("slow")
        assert json.loads(stream.getvalue())["checkout_id"] == "chk_root"
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


@pytest.mark.parametrize(("log_level", "expected"), [("info", logging.WARNING), ("warning", logging.WARNING),
                                                     ("error", logging.ERROR), ("debug", logging.DEBUG)])
def test_libraries_that_log_every_request_speak_at_warning_unless_debugging(log_level: str, expected: int) -> None:
    # Under pytest the root logger has handlers already: configure_logging leaves them, and still quietens these.
    saved = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    try:
        configure_logging(Settings(log_level=log_level))
        for name in ("httpx", "httpcore"):
            assert logging.getLogger(name).getEffectiveLevel() == expected, name
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
