"""Logging for every booking-saga process: LOG_FORMAT=text (the default) or json, at LOG_LEVEL.

- text: `%(asctime)s %(levelname)s %(name)s: %(message)s`, one line per record, as it always was.
- json: one JSON object per line with `time` (ISO 8601, UTC), `level`, `logger`, `message`, plus `checkout_id`
  when the record concerns a checkout and `exception` (the formatted traceback) when it carries one.

The checkout id of a record comes from, first to last: an explicit `extra={"checkout_id": ...}`; the binding of
`services.logcontext` (the API binds it around a checkout's request); the Temporal SDK logger's extras
(`workflow.logger` / `activity.logger`); the running activity or workflow. A checkout's workflow id IS its
checkout id, but only CheckoutSaga runs are checkouts, so other workflow types get no checkout_id.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Literal

from temporalio import activity, workflow

from services.logcontext import current_checkout_id
from settings import Settings
from workflows.models import WORKFLOW_NAME

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The workflow type whose workflow id is a checkout id.
CHECKOUT_WORKFLOW_TYPES = frozenset({WORKFLOW_NAME})


def _from_sdk_extra(extra: object) -> str | None:
    """The SDK's loggers attach `temporal_workflow` / `temporal_activity` dicts with the ids."""
    if isinstance(extra, Mapping) and extra.get("workflow_type") in CHECKOUT_WORKFLOW_TYPES:
        workflow_id = extra.get("workflow_id")
        return workflow_id if isinstance(workflow_id, str) else None
    return None


def _from_temporal_context() -> str | None:
    if activity.in_activity():
        info = activity.info()
        return info.workflow_id if info.workflow_type in CHECKOUT_WORKFLOW_TYPES else None
    if workflow.in_workflow():
        winfo = workflow.info()
        return winfo.workflow_id if winfo.workflow_type in CHECKOUT_WORKFLOW_TYPES else None
    return None


def checkout_id_of(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "checkout_id", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    return (
        current_checkout_id()
        or _from_sdk_extra(getattr(record, "temporal_activity", None))
        or _from_sdk_extra(getattr(record, "temporal_workflow", None))
        or _from_temporal_context()
    )


class CheckoutIdFilter(logging.Filter):
    """Sets `record.checkout_id` (None when the record concerns no checkout). On the handler, not a logger, so it
    sees the records of every logger that propagates to it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.checkout_id = checkout_id_of(record)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        checkout_id = getattr(record, "checkout_id", None)
        if checkout_id:
            line["checkout_id"] = str(checkout_id)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # One line per record whatever the message holds: json.dumps escapes newlines inside strings.
        return json.dumps(line, ensure_ascii=False)


def build_handler(log_format: LogFormat, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler (stderr by default) writing `log_format`, with the checkout id filter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(CheckoutIdFilter())
    return handler


# Libraries that log every request they make at INFO (httpx: "HTTP Request: POST ... 204"). The relay makes one per
# webhook delivered, and counts and logs the outcomes itself; at INFO these would be a line, and its formatting and
# write, per delivery. They speak at WARNING and above, unless LOG_LEVEL is DEBUG.
CHATTY_LIBRARIES = ("httpx", "httpcore")


def configure_logging(settings: Settings) -> None:
    """The root logger of a booking-saga process. Like logging.basicConfig, a no-op when the root logger already
    has handlers (e.g. under pytest's log capture); the chatty libraries are quietened either way."""
    level = logging.getLevelName(settings.log_level.upper())
    logging.basicConfig(level=level, handlers=[build_handler(settings.log_format)])
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(level if level == logging.DEBUG else max(level, logging.WARNING))
