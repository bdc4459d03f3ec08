"""The relay's HTTP client (services/events/relay.py `endpoint_client`): an answer's status as it came (no redirect
followed: a 3xx is not delivery), the proxy the environment names for the endpoint (its credentials included) and
none where NO_PROXY says so, and keep-alive connections reused."""

from __future__ import annotations

import pytest

from services.events.relay import RelayConfig, endpoint_client, endpoint_proxy
from tests.unit.raw_http import http_server, status


def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


async def post_all(url: str, times: int) -> list[int]:
    async with endpoint_client(url, RelayConfig(urls=(url,), secret="s", timeout_seconds=5.0)) as post:
        return [await post(b'{"a":1}', {"content-type": "application/json"}) for _ in range(times)]


async def test_a_redirect_is_answered_not_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    no_proxy_env(monkeypatch)
    async with http_server(status(307, b"location: /elsewhere\r\n")) as (address, heads, _):
        assert await post_all(f"http://{address}/hooks", 1) == [307]
    assert len(heads) == 1 and heads[0].startswith(b"POST /hooks HTTP/1.1")


async def test_connections_are_kept_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    no_proxy_env(monkeypatch)
    async with http_server(status(204)) as (address, heads, connections):
        assert await post_all(f"http://{address}/hooks", 5) == [204] * 5
    assert len(heads) == 5 and len(connections) == 1


async def test_the_environment_s_proxy_carries_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    no_proxy_env(monkeypatch)
    async with http_server(status(204)) as (address, heads, _):
        monkeypatch.setenv("HTTP_PROXY", f"http://{address}")
        # The endpoint's host does not exist: only the proxy can have answered.
        assert await post_all("http://hooks.invalid/in", 2) == [204, 204]
    assert all(head.startswith(b"POST http://hooks.invalid/in HTTP/1.1") for head in heads) and len(heads) == 2


async def test_the_proxy_s_credentials_are_sent_to_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    no_proxy_env(monkeypatch)
    async with http_server(status(204)) as (address, heads, _):
        monkeypatch.setenv("HTTP_PROXY", f"http://relay:s3cret@{address}")
        assert await post_all("http://hooks.invalid/in", 1) == [204]
    assert len(heads) == 1
    # "relay:s3cret" in base64, as Proxy-Authorization (Basic) carries it.
    assert b"\r\nProxy-Authorization: Basic cmVsYXk6czNjcmV0\r\n" in heads[0]


def test_which_proxy_an_endpoint_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    no_proxy_env(monkeypatch)
    assert endpoint_proxy("https://hooks.example.com/in") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://egress:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://plain:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example.com,localhost")
    assert endpoint_proxy("https://hooks.example.com/in") == "http://egress:3128"
    assert endpoint_proxy("http://hooks.example.com/in") == "http://plain:3128"
    assert endpoint_proxy("https://internal.example.com/in") is None
    assert endpoint_proxy("http://localhost:9000/in") is None
