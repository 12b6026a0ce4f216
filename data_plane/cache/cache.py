"""The response cache the request path asks: a backend behind metrics and one rule for
failures. A backend that fails (Redis down, slow or refusing) never fails a request: the
failure is counted (``asc_dp_cache_backend_errors``) and logged once until the backend works
again, the lookup is a miss, and the backend is left alone for ``pause_s`` so a dead Redis
does not cost every request a timeout."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from data_plane.cache.backends import Backend
from data_plane.cache.entry import Entry, decode, encode
from data_plane.metrics import Metrics

log = logging.getLogger(__name__)

FAILURES = (RedisError, OSError, TimeoutError)


class ResponseCache:
    def __init__(
        self,
        backend: Backend,
        metrics: Metrics,
        *,
        max_entry_bytes: int,
        pause_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.max_entry_bytes = max_entry_bytes
        self._metrics = metrics
        self._pause_s = pause_s
        self._clock = clock
        self._paused_until = 0.0
        self._failing = False

    async def get(self, key: str, route: str) -> Entry | None:
        """The entry under ``key``, or None (a miss: none, expired, unreadable, or the
        backend failing). ``route``: the route's name, a snapshot value (metric label)."""
        metrics = self._metrics
        data = None
        if self._available():
            try:
                data = await self.backend.get(key)
            except FAILURES as exc:
                self._failed("get", exc)
            else:
                self._worked()
        entry = decode(data) if data is not None else None
        if entry is None:
            metrics.cache_lookups.labels(route, "miss").inc()
            return None
        metrics.cache_lookups.labels(route, "hit").inc()
        metrics.cache_bytes.labels(route, "served").inc(len(entry.body))
        return entry

    async def put(self, key: str, route: str, entry: Entry, ttl_s: int) -> bool:
        """Store ``entry`` for ``ttl_s`` seconds; False when it was not (too large, or the
        backend failing)."""
        if len(entry.body) > self.max_entry_bytes or ttl_s <= 0 or not self._available():
            return False
        try:
            await self.backend.set(key, encode(entry), ttl_s)
        except FAILURES as exc:
            self._failed("set", exc)
            return False
        self._worked()
        self._metrics.cache_stores.labels(route).inc()
        self._metrics.cache_bytes.labels(route, "stored").inc(len(entry.body))
        return True

    async def close(self) -> None:
        await self.backend.close()

    def _available(self) -> bool:
        return not self._paused_until or self._clock() >= self._paused_until

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._metrics.cache_errors.labels(self.backend.name, operation).inc()
        self._paused_until = self._clock() + self._pause_s
        if not self._failing:
            self._failing = True
            log.warning(
                "response cache backend %s failed (%s: %s); requests go on without the cache",
                self.backend.name,
                type(exc).__name__,
                exc,
            )

    def _worked(self) -> None:
        if self._failing:
            self._failing = False
            self._paused_until = 0.0
            log.info("response cache backend %s works again", self.backend.name)
