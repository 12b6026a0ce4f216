"""The node's share of every budget and rate limit: leases, spent locally (no I/O).

For each limit a ``Lease`` holds the current window, what the control plane granted this node
in it (cumulative) and what the node has committed in it (actual spend of finished requests
plus reservations in flight). Admission reserves a request's worst case in every limit it
falls under, all or nothing; settlement replaces the reservation by the actual figure.

Bound (documented in docs/adr/0004-limits-and-leases.md): the control plane never lets the
claims of a window pass the limit, so the spend admitted under live leases is at most the
limit, plus, per request, what its actual usage exceeds its worst-case reservation by (only
a completion longer than the assumed ``DEFAULT_MAX_TOKENS`` can). Without a live lease:
- a hard budget refuses (fail closed); a soft one admits and records;
- a rate limit admits up to its safe share, amount / nodes (the node count of the last grant),
  and reports what it admitted with its next ask, so a window's total stays within
  amount + (share x nodes that lapsed in it).

Windows: a request counts in the calendar window it arrived in (``unix``, the instant its usage
record carries), also when it waited for a lease. A lease serves its window until the calendar
leaves it, not until a countdown that ends a little early (the grant's ``window_ends_in_ms``
is measured from when the ask was sent); a request whose window the lease has already left
(it waited across the boundary, was overtaken by one that arrived after the turn, or this
node's clock is behind the control plane's) takes what the grant of its window still had when
the lease left it, and is otherwise refused by a hard limit with Retry-After 1, never counted
in a window it did not arrive in.

Times: ``now`` is ``time.monotonic()`` for lease validity and ``unix`` is wall-clock seconds
for calendar windows; both are passed in, so the book is deterministic under test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from data_plane.errors import ApiError
from data_plane.limits.rules import BUDGET, Demand, refusal, unavailable
from data_plane.policy.compiled import LimitEntry
from data_plane.types import INT64_MAX, INT64_MIN
from shared import windows
from shared.pb import control_pb2

# Renew once the room left falls under this share of the last slice, or the lease is this
# close (share of its TTL) to lapsing while in use.
LOW_WATER = 0.5
# A lease not used for this long is left to lapse: its unused slice goes back to the others.
IDLE_S = 5.0


@dataclass(slots=True)
class Lease:
    limit: LimitEntry
    window: str = ""
    granted: int = 0
    committed: int = 0
    expires: float = 0.0  # monotonic; the grant is void after this
    window_end: float = 0.0  # monotonic; 0: the window never ends
    span: tuple[float, float] = (0.0, 0.0)  # Unix start and end of ``window``, once known
    ttl: float = 10.0
    nodes: int = 1
    slice: int = 0
    remaining: int = 0  # of the limit, not granted to any node at the last grant
    pending: int = 0  # the largest demand waiting for this lease
    last_used: float = 0.0
    asked: bool = False  # a renewal is in flight
    # The window the lease left last and the room its grant still had then (none once lapsed):
    # for requests that arrived in that window and reach admission after the lease moved on.
    left: tuple[str, int] = ("", 0)

    def live(self, now: float) -> bool:
        """The grant holds until its TTL lapses; the calendar ends its window (``_roll``)."""
        return now < self.expires

    def room(self) -> int:
        return self.granted - self.committed

    def advance(self, window: str, now: float) -> None:
        """Move on to ``window``, a later one, from nothing granted or committed."""
        self.left = (self.window, max(self.room(), 0) if self.live(now) else 0)
        self.window, self.granted, self.committed = window, 0, 0
        self.expires = self.window_end = 0.0
        self.span = (0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Admission:
    """Reservations to settle: (lease, window, units) per limit."""

    held: tuple[tuple[Lease, str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class NeedsLease:
    """No lease yet for these limits; the caller may wait for one briefly and retry."""

    limits: tuple[LimitEntry, ...]


ADMITTED = Admission()


@dataclass
class LeaseBook:
    leases: dict[str, Lease] = field(default_factory=dict)
    # False while the control plane does not answer: waiting for a lease would be pointless.
    reachable: bool = True

    def admit(
        self,
        limits: Sequence[LimitEntry],
        demand: Demand,
        now: float,
        unix: float,
        *,
        may_wait: bool = True,
    ) -> Admission | NeedsLease | ApiError:
        if not limits:
            return ADMITTED
        plan: list[tuple[Lease, str, int]] = []
        missing: list[LimitEntry] = []
        wait = may_wait and self.reachable
        for limit in limits:
            lease, window = self._lease(limit, now, unix)
            units = demand.of(limit.kind)
            lease.last_used = now
            if lease.window != window and limit.hard:  # it arrived in a window the lease left
                left, room = lease.left
                if left != window or units > room:
                    return refusal(limit, 1)
                plan.append((lease, window, units))
                continue
            live = lease.live(now)
            # Without a live lease but with the control plane reachable: wait, don't guess.
            fits = units <= lease.room() if live else not wait and self._fits_share(lease, units)
            if fits or not limit.hard:
                plan.append((lease, lease.window, units))
            elif wait and (not live or units <= lease.room() + lease.remaining):
                lease.pending = max(lease.pending, units)  # a renewal may make room
                missing.append(limit)
            elif live:
                return refusal(limit, _retry_after(lease, now))
            elif limit.kind == BUDGET:
                return unavailable(limit)  # hard budget, no lease: fail closed
            else:
                return refusal(limit, _retry_after(lease, now))
        if missing:
            return NeedsLease(tuple(missing))
        for lease, window, units in plan:
            if window == lease.window:
                lease.committed += units
            else:
                lease.left = (window, lease.left[1] - units)
        return Admission(tuple(plan))

    def settle(self, admission: Admission, actual: Demand) -> None:
        """Replace each reservation by the actual figure (in the window it was made in)."""
        for lease, window, reserved in admission.held:
            if lease.window == window:
                lease.committed += actual.of(lease.limit.kind) - reserved

    def asks(self, now: float, unix: float) -> list[control_pb2.LeaseAsk]:
        """Leases in use that need a renewal (low, lapsing or lapsed), as asks."""
        out = []
        for lease in self.leases.values():
            if lease.asked or now - lease.last_used > IDLE_S:
                continue
            self._roll(lease, now, unix)
            low = lease.room() < max(lease.slice * LOW_WATER, lease.pending)
            lapsing = lease.expires - now < lease.ttl * LOW_WATER
            if lease.granted == 0 or low or lapsing or not lease.live(now):
                want = max(self._slice(lease), lease.pending)
                out.append(
                    control_pb2.LeaseAsk(
                        limit_id=lease.limit.id,
                        window=lease.window,
                        committed=_int64(lease.committed),
                        want=_int64(max(0, want - lease.room())),
                    )
                )
                lease.asked, lease.pending = True, 0
        return out

    def apply(self, grants: Iterable[control_pb2.LeaseGrant], sent_at: float) -> None:
        """Grants answering asks sent at ``sent_at`` (monotonic): valid for their TTL from
        then, which is never later than the control plane's own view of them."""
        for grant in grants:
            lease = self.leases.get(grant.limit_id)
            if lease is None:
                continue
            lease.asked = False
            if not grant.window:  # the limit is gone from the control plane
                continue
            if _later(lease.window, grant.window):  # answers an ask of a window left since
                continue
            if grant.window != lease.window:
                lease.advance(grant.window, sent_at)
            lease.granted = grant.granted
            lease.remaining = grant.remaining
            lease.nodes = max(1, grant.nodes)
            lease.ttl = grant.ttl_ms / 1000
            lease.expires = sent_at + lease.ttl
            lease.window_end = (
                sent_at + grant.window_ends_in_ms / 1000 if grant.window_ends_in_ms else 0.0
            )

    def failed(self, limit_ids: Iterable[str]) -> None:
        for limit_id in limit_ids:
            lease = self.leases.get(limit_id)
            if lease is not None:
                lease.asked = False

    def forget_missing(self, live_ids: set[str]) -> None:
        """Drop leases of limits no longer in the snapshot."""
        for limit_id in [i for i in self.leases if i not in live_ids]:
            del self.leases[limit_id]

    def _lease(self, limit: LimitEntry, now: float, unix: float) -> tuple[Lease, str]:
        """The limit's lease, and the window ``unix`` falls in."""
        lease = self.leases.get(limit.id)
        if lease is None or (lease.limit.period, lease.limit.zone) != (limit.period, limit.zone):
            lease = self.leases[limit.id] = Lease(limit)  # other windows: start afresh
        elif lease.limit != limit:
            lease.limit = limit  # amount or hardness changed in a new snapshot
        return lease, self._roll(lease, now, unix)

    @staticmethod
    def _roll(lease: Lease, now: float, unix: float) -> str:
        """Start the window ``unix`` falls in when the calendar has moved past the lease's
        (never back: a lease already in a later window keeps it); returns that window."""
        start, end = lease.span
        if start <= unix < end:
            return lease.window
        window, start, end = windows.window_in(lease.limit.period, lease.limit.zone, unix)
        if _later(window, lease.window):
            lease.advance(window, now)
        if window == lease.window:
            lease.span = (start, end or math.inf)
        return window

    @staticmethod
    def _fits_share(lease: Lease, units: int) -> bool:
        """Without a live lease: budgets never fit (hard ones fail closed); rate limits fit
        within the node's safe share of the window."""
        if lease.limit.kind == BUDGET:
            return False
        return lease.committed + units <= lease.limit.amount // max(lease.nodes, 1)

    @staticmethod
    def _slice(lease: Lease) -> int:
        """What to hold: a quarter of a fair share, enough for a few of the largest requests."""
        share = lease.limit.amount // (4 * max(lease.nodes, 1))
        lease.slice = max(share, 1)
        return lease.slice


def _later(window: str, than: str) -> bool:
    """Whether ``window`` comes after ``than``: the keys of one limit's windows share a format
    whose text order is their time order (shared/windows.py); "" is before every window."""
    return window > than


def _int64(value: int) -> int:
    """Saturated to the ask's int64 fields: a sum of reservations may pass them."""
    return max(INT64_MIN, min(value, INT64_MAX))


def _retry_after(lease: Lease, now: float) -> int:
    if lease.limit.kind == BUDGET or not lease.window_end:
        return 60
    return max(1, int(lease.window_end - now) + 1)
