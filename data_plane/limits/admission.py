"""Limits on the request path: per-key caps, parallel requests, budgets and rate limits.

The decisions are pure (``limits``, ``leases``); this module only holds the node's state for
them (in-flight counts, the lease book) and, when a limit has no lease yet, waits for the
background lease client's next round (bounded by its ``max_wait``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from data_plane.errors import ApiError
from data_plane.limits import rules as limits
from data_plane.limits.client import LeaseClient
from data_plane.limits.leases import ADMITTED, Admission, NeedsLease
from data_plane.policy.compiled import CompiledPolicy, RouteEntry
from data_plane.policy.keys import KeyEntry
from data_plane.policy.tags import Tags
from data_plane.types import Usage


def too_many_parallel(key: KeyEntry) -> ApiError:
    return ApiError(
        429,
        "too_many_parallel_requests",
        f"This key may have at most {key.max_parallel} requests in flight at once.",
        "rate_limit_error",
        retry_after=1,
    )


@dataclass
class Admitter:
    leases: LeaseClient
    in_flight: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def slot(self, key: KeyEntry) -> Iterator[ApiError | None]:
        """A parallel-request slot of ``key`` for the block (this process's count)."""
        count = self.in_flight.get(key.id, 0)
        if key.max_parallel and count >= key.max_parallel:
            yield too_many_parallel(key)
            return
        self.in_flight[key.id] = count + 1
        try:
            yield None
        finally:
            left = self.in_flight[key.id] - 1
            if left:
                self.in_flight[key.id] = left
            else:
                del self.in_flight[key.id]

    async def admit(
        self,
        policy: CompiledPolicy,
        key: KeyEntry,
        route: RouteEntry,
        body_bytes: int,
        body: Mapping[str, Any],
        tags: Tags,
        arrived_unix: float,
    ) -> Admission | ApiError:
        """``arrived_unix``: when the request arrived (its usage record's instant), which names
        the window it counts in, also after waiting for a lease."""
        refused = limits.check_caps(key, body_bytes, body)
        if refused is not None:
            return refused
        applicable = limits.applicable(policy, key, route, tags)
        if not applicable:
            return ADMITTED
        demand = limits.worst_case(route, key, body_bytes, body)
        book = self.leases.book
        result = book.admit(applicable, demand, time.monotonic(), arrived_unix)
        if isinstance(result, NeedsLease):
            await self.leases.wait_for_round()
            result = book.admit(applicable, demand, time.monotonic(), arrived_unix, may_wait=False)
        assert not isinstance(result, NeedsLease)  # may_wait=False never asks to wait
        return result

    def policy_changed(self, policy: CompiledPolicy) -> None:
        """Drop the leases of limits the new policy no longer has (what the control plane
        granted for them is left to lapse); those of the limits it keeps stay as they are."""
        live = {limit.id for entries in policy.limits_by_subject.values() for limit in entries}
        self.leases.book.forget_missing(live)

    def settle(self, admission: Admission, usage: Usage, cost_nano_usd: int) -> None:
        if admission.held:
            self.leases.book.settle(admission, limits.actual(usage, cost_nano_usd))
