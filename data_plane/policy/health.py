"""Health of upstream targets: a circuit breaker and a latency average per target (pure: every
method takes ``now``, in ``time.monotonic()`` seconds; nothing here reads a clock).

Breaker: closed until ``failures`` consecutive failed attempts, then open: no request is sent
for ``cooldown_s``. Then half-open: exactly one request at a time probes the target; a
success closes the breaker, a failure opens it again for twice the previous cool-down (at
most ``max_cooldown_s``). A probe that neither succeeds nor fails (the client went away, the
provider could not even be asked) frees the probe slot after ``cooldown_s``, so a lost probe
cannot keep a target out for ever. Independently, a 429 with ``Retry-After`` keeps the target
out until then (at most ``max_cooldown_s``), so the gateway does not hammer a provider that
asked it to wait.

Provider options: ``breaker_failures`` (default 5), ``breaker_cooldown_s`` (default 10),
``breaker_max_cooldown_s`` (default 300).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from data_plane.types import Target

DEFAULTS = (5, 10.0, 300.0)
EWMA_WEIGHT = 0.2  # weight of the newest latency sample


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failures: int = DEFAULTS[0]
    cooldown_s: float = DEFAULTS[1]
    max_cooldown_s: float = DEFAULTS[2]

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> BreakerConfig:
        def number(name: str, default: float) -> float:
            try:
                value = float(options.get(name, default))
            except ValueError:
                return default
            return value if math.isfinite(value) and value > 0 else default  # "inf", "nan"

        cooldown = number("breaker_cooldown_s", DEFAULTS[1])
        return cls(
            failures=int(number("breaker_failures", DEFAULTS[0])),
            cooldown_s=cooldown,
            max_cooldown_s=max(cooldown, number("breaker_max_cooldown_s", DEFAULTS[2])),
        )


@dataclass(slots=True)
class Breaker:
    config: BreakerConfig = field(default_factory=BreakerConfig)
    state: State = State.CLOSED
    failures: int = 0
    cooldown_s: float = 0.0
    open_until: float = 0.0
    probe_since: float | None = None  # a half-open probe is in flight since then
    wait_until: float = 0.0  # Retry-After

    def blocked(self, now: float) -> str | None:
        """Why no request may be sent now ("circuit_open", "retry_after"), or None."""
        if self.state is State.OPEN:
            if now < self.open_until:
                return "circuit_open"
            self.state, self.probe_since = State.HALF_OPEN, None
        probing = self.state is State.HALF_OPEN and self.probe_since is not None
        if probing and now < (self.probe_since or 0.0) + self.config.cooldown_s:
            return "circuit_open"
        if now < self.wait_until:
            return "retry_after"
        return None

    def begin(self, now: float) -> None:
        """An attempt is sent (after ``blocked`` said None); half-open, it is the probe."""
        if self.state is State.HALF_OPEN:
            self.probe_since = now

    def succeeded(self, now: float) -> bool:
        """Record a success; True when it closed the breaker."""
        reopened = self.state is not State.CLOSED
        self.state, self.failures, self.cooldown_s, self.probe_since = State.CLOSED, 0, 0.0, None
        return reopened

    def failed(self, now: float, retry_after: float | None = None) -> bool:
        """Record a failure; True when it opened the breaker."""
        if retry_after and retry_after > 0:  # capped: a provider cannot shut a target for days
            wait = min(retry_after, self.config.max_cooldown_s)
            self.wait_until = max(self.wait_until, now + wait)
        if self.state is State.HALF_OPEN:
            self.cooldown_s = min(
                self.cooldown_s * 2 or self.config.cooldown_s, self.config.max_cooldown_s
            )
            self._open(now)
            return True
        self.failures += 1
        if self.state is State.CLOSED and self.failures >= self.config.failures:
            self.cooldown_s = self.config.cooldown_s
            self._open(now)
            return True
        return False

    def abandoned(self, now: float) -> None:
        """The attempt ended without telling anything about the target's health."""
        if self.state is State.HALF_OPEN:
            self.probe_since = None

    def _open(self, now: float) -> None:
        self.state, self.open_until, self.probe_since = State.OPEN, now + self.cooldown_s, None

    def ready_in(self, now: float) -> float:
        """Seconds until a request may be sent again (0: now)."""
        until = self.wait_until
        if self.state is State.OPEN:
            until = max(until, self.open_until)
        return max(0.0, until - now)


TargetKey = tuple[str, str, str]  # provider id, model id, credential id


def key_of(target: Target) -> TargetKey:
    return (target.provider_id, target.model_id, target.credential_id)


@dataclass(slots=True)
class TargetHealth:
    breaker: Breaker
    options: Mapping[str, str]
    latency_s: float | None = None  # exponentially weighted average time to answer


@dataclass(frozen=True, slots=True)
class Transition:
    at: float
    provider_id: str
    model_id: str
    state: State


Listener = Callable[[Target, State], None]


class HealthBook:
    """Per-target health of one data-plane process. ``transitions`` keeps the latest breaker
    state changes (for logs and tests); ``listener`` hears each one (metrics)."""

    def __init__(self, listener: Listener | None = None, history: int = 1000) -> None:
        self._targets: dict[TargetKey, TargetHealth] = {}
        self._listener = listener
        self.transitions: deque[Transition] = deque(maxlen=history)

    def of(self, target: Target) -> TargetHealth:
        key = key_of(target)
        health = self._targets.get(key)
        if health is None:
            config = BreakerConfig.from_options(target.options)
            health = self._targets[key] = TargetHealth(Breaker(config), target.options)
        elif health.options is not target.options:  # a new snapshot may change the settings
            health.breaker.config = BreakerConfig.from_options(target.options)
            health.options = target.options
        return health

    def blocked(self, target: Target, now: float) -> str | None:
        breaker = self.of(target).breaker
        before = breaker.state
        reason = breaker.blocked(now)
        if breaker.state is not before:
            self._note(target, now, breaker.state)
        return reason

    def begin(self, target: Target, now: float) -> None:
        self.of(target).breaker.begin(now)

    def succeeded(self, target: Target, now: float, latency_s: float | None = None) -> None:
        health = self.of(target)
        if latency_s is not None:
            previous = health.latency_s
            health.latency_s = (
                latency_s if previous is None else previous + EWMA_WEIGHT * (latency_s - previous)
            )
        if health.breaker.succeeded(now):
            self._note(target, now, State.CLOSED)

    def failed(self, target: Target, now: float, retry_after: float | None = None) -> bool:
        """Record a failure; True when the target's breaker is (now) open."""
        breaker = self.of(target).breaker
        if breaker.failed(now, retry_after):
            self._note(target, now, State.OPEN)
        return breaker.state is State.OPEN

    def abandoned(self, target: Target, now: float) -> None:
        self.of(target).breaker.abandoned(now)

    def latency(self, target: Target) -> float | None:
        health = self._targets.get(key_of(target))
        return health.latency_s if health is not None else None

    def state(self, target: Target) -> State:
        return self.of(target).breaker.state

    def ready_in(self, target: Target, now: float) -> float:
        return self.of(target).breaker.ready_in(now)

    def _note(self, target: Target, now: float, state: State) -> None:
        self.transitions.append(Transition(now, target.provider_id, target.model_id, state))
        if self._listener is not None:
            self._listener(target, state)
