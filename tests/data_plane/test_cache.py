"""The response cache's parts without a server: the key (what it covers, what it ignores),
the entry's bytes, the in-process LRU backend (bounds, TTL, order), the Cache-Control
directives, and the cache's rule for a failing backend (a miss, counted, paused)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from data_plane.cache.backends import MemoryBackend
from data_plane.cache.cache import ResponseCache
from data_plane.cache.entry import Entry, decode, encode
from data_plane.cache.key import cache_key
from data_plane.http.caching import directives
from data_plane.metrics import Metrics
from data_plane.types import Usage

BODY = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
BASE: dict[str, Any] = {
    "tenant_id": "t-acme",
    "route_id": "r-chat",
    "targets": ["p/m/model"],
    "wire": "openai.chat",
    "stream": False,
    "headers": {},
    "body": BODY,
}


def key(**changes: Any) -> str:
    return cache_key(**{**BASE, **changes})


def test_the_key_is_stable_and_ignores_key_order_and_header_case() -> None:
    reordered = {"temperature": 0, "messages": BODY["messages"], "model": "chat"}
    assert key() == key(body=reordered)
    assert key(headers={"Anthropic-Version": "1"}) == key(headers={"anthropic-version": "1"})
    assert len(key()) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"tenant_id": "t-beta"},
        {"route_id": "r-other"},
        {"targets": ["p/m2/other-model"]},
        {"wire": "anthropic.messages"},
        {"stream": True},
        {"headers": {"anthropic-beta": "x"}},
        {"output_policy": "a1b2"},
        {"body": {**BODY, "temperature": 1}},
        {"body": {**BODY, "user": "someone"}},
        {"body": {**BODY, "messages": [{"role": "user", "content": "hi "}]}},
        {"body": {**BODY, "temperature": 0.0}},  # not the same JSON: not the same request
    ],
)
def test_anything_that_changes_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    assert key(**change) != key()


def test_an_entry_survives_its_bytes_and_foreign_bytes_are_none() -> None:
    entry = Entry(b'data: {"a":1}\n\ndata: [DONE]\n\n', True, Usage(3, 5, 1), 1234)
    assert decode(encode(entry)) == entry
    assert decode(b"no newline") is None
    assert decode(b"[1,2]\nbody") is None
    assert decode(b'{"a":1}\nbody') is None
    assert decode(b'["x",1,2,3,4]\nbody') is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_entries_expire_with_their_ttl() -> None:
    clock = Clock()
    memory = MemoryBackend(10, 1000, clock)
    await memory.set("a", b"x", 5)
    clock.now += 4.9
    assert await memory.get("a") == b"x"
    clock.now += 0.2
    assert await memory.get("a") is None
    assert (len(memory), memory.bytes) == (0, 0)


async def test_memory_drops_the_least_recently_used_past_either_bound() -> None:
    memory = MemoryBackend(2, 10, Clock())
    await memory.set("a", b"11", 60)
    await memory.set("b", b"22", 60)
    assert await memory.get("a") == b"11"  # a is now the most recent
    await memory.set("c", b"33", 60)  # three entries: b goes
    assert [await memory.get(k) for k in "abc"] == [b"11", None, b"33"]
    await memory.set("d", b"123456789", 60)  # 13 bytes: the older ones go until it fits
    assert [await memory.get(k) for k in "acd"] == [None, None, b"123456789"]
    assert (len(memory), memory.bytes) == (1, 9)
    await memory.set("e", b"x" * 11, 60)  # larger than the whole cache: not kept
    assert await memory.get("e") is None
    assert await memory.get("d") == b"123456789"


async def test_memory_replaces_an_entry_and_keeps_its_byte_count() -> None:
    memory = MemoryBackend(5, 100, Clock())
    await memory.set("a", b"1234", 60)
    await memory.set("a", b"12", 60)
    assert (await memory.get("a"), memory.bytes, len(memory)) == (b"12", 2, 1)
    await memory.set("z", b"1", 0)  # no TTL: not kept
    assert await memory.get("z") is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (True, True)),
        ("", (True, True)),
        ("no-cache", (False, True)),
        ("No-Store", (True, False)),
        ("max-age=0, no-store , no-cache", (False, False)),
        ("no-cache=foo", (False, True)),
        ("private", (True, True)),
    ],
)
def test_cache_control_directives(header: str | None, expected: tuple[bool, bool]) -> None:
    assert directives(header) == expected


class Failing:
    name = "redis"

    def __init__(self) -> None:
        self.calls = 0
        self.down = True
        self.stored: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("refused")
        return self.stored.get(key)

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("refused")
        self.stored[key] = value

    async def close(self) -> None:
        pass


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_a_failing_backend_is_a_miss_counted_then_left_alone_for_a_while() -> None:
    clock, backend, metrics = Clock(), Failing(), Metrics()
    cache = ResponseCache(backend, metrics, max_entry_bytes=100, pause_s=1.0, clock=clock)
    entry = Entry(b"{}", False, Usage(1, 2), 30)
    assert await cache.get("k", "chat") is None
    assert not await cache.put("k", "chat", entry, 60)  # paused: not even tried
    assert backend.calls == 1
    errors = "asc_dp_cache_backend_errors_total"
    assert sample(metrics, errors, backend="redis", operation="get") == 1
    assert sample(metrics, "asc_dp_cache_lookups_total", route="chat", result="miss") == 1
    clock.now += 1.0
    backend.down = False
    assert await cache.put("k", "chat", entry, 60)
    assert await cache.get("k", "chat") == entry
    assert sample(metrics, "asc_dp_cache_lookups_total", route="chat", result="hit") == 1
    assert sample(metrics, "asc_dp_cache_bytes_total", route="chat", direction="served") == 2


async def test_an_answer_over_the_entry_limit_is_not_stored() -> None:
    cache = ResponseCache(MemoryBackend(10, 1000), Metrics(), max_entry_bytes=4)
    assert not await cache.put("k", "chat", Entry(b"12345", False, Usage(), 0), 60)
    assert await cache.put("k", "chat", Entry(b"1234", False, Usage(), 0), 60)
