"""Where cache entries live: a small protocol, an in-process LRU (the default) and Redis
(shared by every data plane). Both keep an entry at most its TTL; errors of the Redis client
propagate to ``ResponseCache``, which counts them and carries on without the cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo


class Backend(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: int) -> None: ...

    async def close(self) -> None: ...


class MemoryBackend:
    """Least recently used entries go first once either bound is passed (``max_entries``,
    ``max_bytes`` of values); an entry older than its TTL is a miss and is dropped when met.
    ``clock``: monotonic seconds (tests pass their own)."""

    name = "memory"

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        if ttl_s <= 0 or len(value) > self.max_bytes or self.max_entries <= 0:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + ttl_s, value)
        self.bytes += len(value)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.bytes -= len(value)

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0


class RedisBackend:
    """Entries as Redis strings under ``prefix`` + key, expiring with their TTL (Redis drops
    them; its own ``maxmemory`` policy bounds the total). Every call has ``timeout_s`` and is
    tried once."""

    name = "redis"

    def __init__(self, url: str, prefix: str, timeout_s: float) -> None:
        self.prefix = prefix
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # never retried: a failure is a miss, at once
            health_check_interval=30,
            # Named here: left out, redis-py reads its version from the installed package's
            # metadata (file system calls) on every new connection, inside the event loop.
            driver_info=DriverInfo(name="redis-py", lib_version=redis.__version__),
        )

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self.prefix + key)
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        if ttl_s > 0:
            await self._client.set(self.prefix + key, value, ex=ttl_s)

    async def close(self) -> None:
        await self._client.aclose()
