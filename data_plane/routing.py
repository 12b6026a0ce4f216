"""The order in which a route's targets are tried: a pure function of the route, the
tenant's residency rule and an injected random source.

Lowest priority value first; within one priority, a weighted random permutation (each
remaining target is picked with probability weight / remaining weight), so the first choice
splits traffic by weight and the rest are the fallbacks. Targets of disabled providers and
targets outside the tenant's allowed regions are left out. Weight 0 targets come last within
their priority: they only serve as fallbacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import Protocol

from data_plane.providers.base import Target


class RandomSource(Protocol):
    def random(self) -> float:
        """A float in [0, 1)."""
        ...


def order_targets(
    targets: Sequence[Target],
    rand: RandomSource,
    allowed_regions: Iterable[str] = (),
) -> list[Target]:
    regions = frozenset(allowed_regions)
    usable = [t for t in targets if t.enabled and (not regions or t.region in regions)]
    usable.sort(key=lambda t: t.priority)  # stable: snapshot order breaks ties
    ordered: list[Target] = []
    for _, group in groupby(usable, key=lambda t: t.priority):
        ordered.extend(_weighted_permutation(list(group), rand))
    return ordered


def _weighted_permutation(group: list[Target], rand: RandomSource) -> list[Target]:
    if len(group) == 1:
        return group
    weighted = [t for t in group if t.weight > 0]
    out: list[Target] = []
    total = sum(t.weight for t in weighted)
    while weighted:
        point = rand.random() * total
        for i, target in enumerate(weighted):
            point -= target.weight
            if point < 0 or i == len(weighted) - 1:
                out.append(weighted.pop(i))
                total -= target.weight
                break
    out.extend(t for t in group if t.weight <= 0)
    return out
