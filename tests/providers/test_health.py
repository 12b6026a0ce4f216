"""The circuit breaker and health book as pure state machines (every call is given ``now``),
and latency-aware target ordering."""

from __future__ import annotations

from itertools import cycle

from data_plane.policy.health import Breaker, BreakerConfig, HealthBook, State
from data_plane.policy.routing import order_targets
from data_plane.types import Prices, Target
from shared.pb import snapshot_pb2

CONFIG = BreakerConfig(failures=3, cooldown_s=10.0, max_cooldown_s=35.0)


def target(model_id: str, options: dict[str, str] | None = None) -> Target:
    return Target(
        kind=snapshot_pb2.PROVIDER_KIND_MOCK,
        base_url="",
        options=options or {},
        api_key="",
        provider_model=model_id,
        model_id=model_id,
        provider_id=f"p-{model_id}",
        credential_id="c",
        region="eu",
        prices=Prices(),
    )


def opened(breaker: Breaker, now: float = 0.0) -> Breaker:
    for _ in range(breaker.config.failures):
        breaker.failed(now)
    assert breaker.state is State.OPEN
    return breaker


def test_opens_after_consecutive_failures_only() -> None:
    breaker = Breaker(CONFIG)
    assert not breaker.failed(0.0)
    assert not breaker.failed(1.0)
    breaker.succeeded(2.0)  # a success in between starts the count again
    assert not breaker.failed(3.0)
    assert not breaker.failed(4.0)
    assert breaker.failed(5.0), "the third in a row opens it"
    assert breaker.blocked(5.0) == "circuit_open"
    assert breaker.ready_in(5.0) == 10.0


def test_after_the_cooldown_exactly_one_probe_at_a_time() -> None:
    breaker = opened(Breaker(CONFIG))
    assert breaker.blocked(9.9) == "circuit_open"
    assert breaker.blocked(10.0) is None
    assert breaker.state is State.HALF_OPEN
    breaker.begin(10.0)
    assert breaker.blocked(10.5) == "circuit_open", "one probe in flight: no second one"
    breaker.succeeded(11.0)
    assert breaker.state is State.CLOSED
    assert breaker.blocked(11.0) is None


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_maximum() -> None:
    breaker = opened(Breaker(CONFIG))
    now = 10.0
    for expected in (20.0, 35.0, 35.0):
        assert breaker.blocked(now) is None
        breaker.begin(now)
        assert breaker.failed(now + 1)
        assert breaker.ready_in(now + 1) == expected
        now += 1 + expected


def test_a_lost_probe_frees_its_slot_after_a_cooldown() -> None:
    breaker = opened(Breaker(CONFIG))
    assert breaker.blocked(10.0) is None
    breaker.begin(10.0)
    assert breaker.blocked(19.0) == "circuit_open"
    assert breaker.blocked(20.0) is None, "the probe never reported: another may go"
    breaker.begin(20.0)
    breaker.abandoned(21.0)
    assert breaker.blocked(21.0) is None


def test_retry_after_keeps_the_target_out_until_then() -> None:
    breaker = Breaker(CONFIG)
    breaker.failed(0.0, retry_after=4.0)
    assert breaker.state is State.CLOSED
    assert breaker.blocked(3.9) == "retry_after"
    assert breaker.ready_in(1.0) == 3.0
    assert breaker.blocked(4.0) is None
    breaker.failed(5.0, retry_after=86_400.0)
    assert breaker.ready_in(5.0) == CONFIG.max_cooldown_s, "not a day: capped"


def test_breaker_settings_come_from_provider_options() -> None:
    config = BreakerConfig.from_options(
        {"breaker_failures": "2", "breaker_cooldown_s": "0.5", "breaker_max_cooldown_s": "bad"}
    )
    assert config == BreakerConfig(failures=2, cooldown_s=0.5, max_cooldown_s=300.0)
    assert BreakerConfig.from_options({"breaker_failures": "-1"}).failures == 5


def test_the_book_keeps_one_breaker_per_target_and_reports_transitions() -> None:
    heard: list[tuple[str, State]] = []
    book = HealthBook(listener=lambda t, s: heard.append((t.model_id, s)))
    a, b = target("a", {"breaker_failures": "1", "breaker_cooldown_s": "5"}), target("b")
    assert book.failed(a, 0.0)
    assert not book.failed(b, 0.0)
    assert book.blocked(a, 1.0) == "circuit_open"
    assert book.blocked(b, 1.0) is None
    assert book.blocked(a, 5.0) is None
    book.begin(a, 5.0)
    book.succeeded(a, 5.5, latency_s=0.5)
    assert heard == [("a", State.OPEN), ("a", State.HALF_OPEN), ("a", State.CLOSED)]
    assert [t.state for t in book.transitions] == [State.OPEN, State.HALF_OPEN, State.CLOSED]
    assert book.latency(a) == 0.5
    book.succeeded(a, 6.0, latency_s=1.5)
    assert book.latency(a) == 0.5 + 0.2 * (1.5 - 0.5), "an exponentially weighted average"
    assert book.latency(b) is None


class Fixed:
    def __init__(self, *values: float) -> None:
        self._values = cycle(values)

    def random(self) -> float:
        return next(self._values)


def test_latency_aware_order_puts_the_fastest_first_and_unmeasured_before_all() -> None:
    slow, fast, new = target("slow"), target("fast"), target("new")
    latency = {"slow": 0.9, "fast": 0.1}

    def of(t: Target) -> float | None:
        return latency.get(t.model_id)

    order = order_targets([slow, fast, new], Fixed(0.5), latency=of)
    assert [t.model_id for t in order] == ["new", "fast", "slow"]
    explored = order_targets([slow, fast], Fixed(0.01, 0.0), latency=of)
    assert [t.model_id for t in explored] == ["slow", "fast"], "sometimes the weighted order"
