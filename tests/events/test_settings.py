"""The events settings and commands: WEBHOOK_URLS forms, WEBHOOK_SECRET checks, the CLI's parser, backoff."""

from __future__ import annotations

import io
import json
from argparse import Namespace

import pytest
from pydantic import ValidationError

from booking_saga.cli import build_parser
from booking_saga.relay import events_main, relay_config
from services.events.relay import RelayConfig, endpoint_label
from settings import Settings
from tests.events.webhooks import SECRET


@pytest.mark.parametrize("value", ["https://a.example/h, https://b.example/h", "https://a.example/h https://b.example/h",
                                   '["https://a.example/h", "https://b.example/h"]'])
def test_webhook_urls_in_every_form(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WEBHOOK_URLS", value)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    assert Settings().webhook_urls == ["https://a.example/h", "https://b.example/h"]


@pytest.mark.parametrize(("secret", "message"), [("", "WEBHOOK_SECRET"), ("plain", "whsec_"),
                                                 ("whsec_not*base64", "base64")])
def test_webhook_urls_need_a_standard_secret(secret: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(webhook_urls=["https://a.example/h"], webhook_secret=secret)


def test_webhook_urls_must_be_http() -> None:
    with pytest.raises(ValidationError, match="not an http"):
        Settings(webhook_urls=["ftp://a.example/h"], webhook_secret=SECRET)


def test_relay_config_from_settings() -> None:
    settings = Settings(webhook_urls=["https://a.example/h"], webhook_secret=SECRET, webhook_retry_hours=2,
                        webhook_concurrency=3)
    config = relay_config(settings)
    assert (config.urls, config.retry_hours, config.concurrency) == (("https://a.example/h",), 2, 3)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    config = RelayConfig(urls=("https://a.example/h",), secret=SECRET, backoff_base_seconds=1,
                         backoff_max_seconds=60)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (30, 60)]:
        delays = [config.backoff(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 1  # jitter


def test_endpoint_labels_leave_credentials_and_query_out() -> None:
    assert endpoint_label("https://user:pw@a.example:8443/h?token=s") == "https://a.example:8443/h"


def test_the_cli_knows_relay_and_events() -> None:
    parser = build_parser()
    assert parser.parse_args(["relay"]).command == "relay"
    args = parser.parse_args(["events", "replay", "12", "13", "--endpoint", "https://a.example/h"])
    assert (args.action, args.event_ids, args.endpoint) == ("replay", [12, 13], "https://a.example/h")
    assert parser.parse_args(["events", "failed", "--json"]).json is True


async def test_events_commands_on_nothing_parked(migrated_database_url: str) -> None:
    settings = Settings(database_url=migrated_database_url)
    out = io.StringIO()
    failed = Namespace(action="failed", endpoint="https://nowhere.example/h", limit=10, json=True)
    assert await events_main(settings, failed, out) == 0
    assert json.loads(out.getvalue()) == []
    # Replaying an event that is not parked says so, exit 1.
    replay = Namespace(action="replay", event_ids=[10**12], endpoint=None)
    assert await events_main(settings, replay, io.StringIO()) == 1


def test_the_docs_show_an_example_of_every_event_type() -> None:
    import re
    from pathlib import Path

    from api.schemas import EventBody
    from services.events import EventType

    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    examples = [json.loads(block) for block in re.findall(r"### `checkout\.[a-z_]+`\n\n.*?\n\n```json\n(.*?)\n```",
                                                           text, re.S)]
    assert {example["type"] for example in examples} == {t.value for t in EventType}
    for example in examples:
        EventBody.model_validate(example)
        assert example["data"]["checkout_id"] == example["checkout_id"]
        assert (example["part"] is not None) == (example["type"] == "checkout.part_cancelled")
