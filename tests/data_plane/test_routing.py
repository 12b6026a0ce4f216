"""order_targets: lowest priority first, a weighted random permutation within a priority,
zero weights last, disabled providers and regions outside the tenant's residency left out."""

from __future__ import annotations

import random
from collections import Counter
from itertools import cycle

from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.policy.routing import order_targets
from data_plane.types import Prices, Target
from shared.pb import snapshot_pb2


def target(
    model_id: str, *, priority: int = 0, weight: int = 1, region: str = "eu", enabled: bool = True
) -> Target:
    return Target(
        kind=snapshot_pb2.PROVIDER_KIND_MOCK,
        base_url="",
        options={},
        api_key="",
        provider_model=model_id,
        model_id=model_id,
        provider_id="p",
        credential_id="c",
        region=region,
        prices=Prices(),
        priority=priority,
        weight=weight,
        enabled=enabled,
    )


class Fixed:
    """A RandomSource replaying the given values."""

    def __init__(self, *values: float) -> None:
        self._values = cycle(values)

    def random(self) -> float:
        return next(self._values)


def ids(targets: list[Target]) -> list[str]:
    return [t.model_id for t in targets]


def test_lower_priority_values_come_first_whatever_the_weights() -> None:
    targets = [
        target("c", priority=2, weight=100),
        target("a", priority=0, weight=1),
        target("b", priority=1, weight=50),
    ]
    for r in (0.0, 0.5, 0.999):
        assert ids(order_targets(targets, Fixed(r))) == ["a", "b", "c"]


def test_within_a_priority_the_first_pick_splits_by_weight() -> None:
    targets = [target("a", weight=1), target("b", weight=3)]
    # "a" owns [0, 0.25) of the unit interval, "b" owns [0.25, 1).
    assert ids(order_targets(targets, Fixed(0.0))) == ["a", "b"]
    assert ids(order_targets(targets, Fixed(0.2499))) == ["a", "b"]
    assert ids(order_targets(targets, Fixed(0.25))) == ["b", "a"]
    assert ids(order_targets(targets, Fixed(0.9999))) == ["b", "a"]


def test_weighted_traffic_split_over_many_requests() -> None:
    targets = [target("a", weight=10), target("b", weight=30), target("c", weight=60)]
    rand = random.Random(1234)
    firsts = Counter(order_targets(targets, rand)[0].model_id for _ in range(20_000))
    assert abs(firsts["a"] / 20_000 - 0.10) < 0.015
    assert abs(firsts["b"] / 20_000 - 0.30) < 0.015
    assert abs(firsts["c"] / 20_000 - 0.60) < 0.015


def test_every_target_of_a_priority_stays_as_a_fallback() -> None:
    targets = [target(name, weight=w) for name, w in [("a", 5), ("b", 1), ("c", 2), ("d", 9)]]
    rand = random.Random(7)
    for _ in range(200):
        assert sorted(ids(order_targets(targets, rand))) == ["a", "b", "c", "d"]


def test_zero_weight_targets_are_only_fallbacks() -> None:
    targets = [
        target("spare", weight=0),
        target("main", weight=1),
        target("spare2", weight=0),
        target("later", priority=1, weight=0),
    ]
    for r in (0.0, 0.5, 0.999):
        assert ids(order_targets(targets, Fixed(r))) == ["main", "spare", "spare2", "later"]


def test_a_priority_with_only_zero_weights_keeps_snapshot_order() -> None:
    targets = [target("x", weight=0), target("y", weight=0)]
    assert ids(order_targets(targets, Fixed(0.9))) == ["x", "y"]


def test_targets_outside_the_allowed_regions_are_left_out() -> None:
    targets = [
        target("us", region="us"),
        target("eu", region="eu", priority=1),
        target("ch", region="ch", priority=2),
    ]
    assert ids(order_targets(targets, Fixed(0.5), ["eu", "ch"])) == ["eu", "ch"]
    assert ids(order_targets(targets, Fixed(0.5), frozenset({"eu"}))) == ["eu"]
    assert order_targets(targets, Fixed(0.5), ["ap"]) == []


def test_no_region_rule_means_any_region() -> None:
    targets = [target("us", region="us"), target("eu", region="eu", priority=1)]
    assert ids(order_targets(targets, Fixed(0.5))) == ["us", "eu"]
    assert ids(order_targets(targets, Fixed(0.5), [])) == ["us", "eu"]


def test_targets_of_disabled_providers_are_left_out() -> None:
    targets = [target("off", enabled=False), target("on", priority=5)]
    assert ids(order_targets(targets, Fixed(0.0))) == ["on"]
    assert order_targets([target("off", enabled=False)], Fixed(0.0)) == []


specs = st.lists(
    st.tuples(
        st.integers(0, 3),  # priority
        st.integers(0, 5),  # weight
        st.sampled_from(["eu", "us", "ch"]),
        st.booleans(),  # enabled
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    specs=specs,
    regions=st.sets(st.sampled_from(["eu", "us", "ch"])),
    seed=st.integers(0, 2**32),
)
def test_the_order_is_a_permutation_of_the_usable_targets(
    specs: list[tuple[int, int, str, bool]], regions: set[str], seed: int
) -> None:
    targets = [
        target(f"t{i}", priority=p, weight=w, region=r, enabled=e)
        for i, (p, w, r, e) in enumerate(specs)
    ]
    ordered = order_targets(targets, random.Random(seed), regions)
    usable = [t for t in targets if t.enabled and (not regions or t.region in regions)]
    assert sorted(ids(ordered)) == sorted(ids(usable))
    keys = [(t.priority, t.weight == 0) for t in ordered]
    assert keys == sorted(keys), "by priority, and within one the zero weights last"
