"""The order in which a route's targets are tried: a pure function of the route, the
tenant's residency rule and an injected random source.

Lowest priority value first; within one priority, a weighted random permutation (each
remaining target is picked with probability weight / remaining weight), so the first choice
splits traffic by weight and the rest are the fallbacks. Targets of disabled providers and
targets outside the tenant's allowed regions are left out. Weight 0 targets come last within
their priority: they only serve as fallbacks.

Latency-aware routes pass ``latency`` (a target's recent average time to answer, None when
unmeasured): within a priority the fastest comes first, unmeasured ones before all (so they
get measured), except for ``EXPLORE`` of the requests, which take the weighted order so that a
target that was slow once gets the chance to show it recovered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import groupby

from data_plane.types import RandomSource, Target

EXPLORE = 0.05


def order_targets(
    targets: Sequence[Target],
    rand: RandomSource,
    allowed_regions: Iterable[str] = (),
    latency: Callable[[Target], float | None] | None = None,
) -> list[Target]:
    regions = frozenset(allowed_regions)
    usable = [t for t in targets if t.enabled and (not regions or t.region in regions)]
    usable.sort(key=lambda t: t.priority)  # stable: snapshot order breaks ties
    ordered: list[Target] = []
    for _, grouped in groupby(usable, key=lambda t: t.priority):
        group = list(grouped)
        if latency is not None and len(group) > 1 and rand.random() >= EXPLORE:
            ordered.extend(sorted(group, key=lambda t: latency(t) or 0.0))
        else:
            ordered.extend(_weighted_permutation(group, rand))
    return ordered


def outside_regions(targets: Sequence[Target], allowed_regions: Iterable[str]) -> int:
    """How many of ``targets`` the tenant's residency rule leaves out."""
    regions = frozenset(allowed_regions)
    return sum(1 for t in targets if regions and t.region not in regions)


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
