"""SharedLookups: concurrent askers share one lookup; what is kept, and for how long."""

from __future__ import annotations

import asyncio

import pytest

from api.fast_path import SharedLookups


class Counted:
    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail
        self.release = asyncio.Event()

    async def __call__(self) -> list[int]:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError("lookup failed")
        return [self.calls]


async def test_concurrent_askers_share_one_lookup() -> None:
    shared: SharedLookups[str, list[int]] = SharedLookups(ttl_seconds=0)
    lookup = Counted()
    askers = [asyncio.ensure_future(shared.get("sku", lookup)) for _ in range(50)]
    await asyncio.sleep(0)
    lookup.release.set()
    assert await asyncio.gather(*askers) == [[1]] * 50
    assert lookup.calls == 1


async def test_without_ttl_a_later_asker_looks_again() -> None:
    shared: SharedLookups[str, list[int]] = SharedLookups(ttl_seconds=0)
    lookup = Counted()
    lookup.release.set()
    assert await shared.get("sku", lookup) == [1]
    assert await shared.get("sku", lookup) == [2]


async def test_with_ttl_the_answer_is_kept_and_other_keys_look_up_their_own() -> None:
    shared: SharedLookups[str, list[int]] = SharedLookups(ttl_seconds=60)
    lookup = Counted()
    lookup.release.set()
    assert await shared.get("a", lookup) == [1]
    assert await shared.get("a", lookup) == [1]
    assert await shared.get("b", lookup) == [2]


async def test_a_failed_lookup_is_not_kept() -> None:
    shared: SharedLookups[str, list[int]] = SharedLookups(ttl_seconds=60)
    failing = Counted(fail=True)
    failing.release.set()
    with pytest.raises(RuntimeError):
        await shared.get("sku", failing)
    working = Counted()
    working.release.set()
    assert await shared.get("sku", working) == [1]


async def test_one_asker_cancelled_does_not_cancel_the_others() -> None:
    shared: SharedLookups[str, list[int]] = SharedLookups(ttl_seconds=0)
    lookup = Counted()
    first = asyncio.ensure_future(shared.get("sku", lookup))
    second = asyncio.ensure_future(shared.get("sku", lookup))
    await asyncio.sleep(0)
    first.cancel()
    lookup.release.set()
    assert await second == [1]
    assert first.cancelled()
    assert lookup.calls == 1
