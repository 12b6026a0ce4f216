"""Jittered exponential backoff for reconnects and retries (pure)."""

from __future__ import annotations

from data_plane.types import RandomSource

# The snapshot stream's reconnects: from 0.5 s, doubling, to 10 s. A thousand nodes retrying
# at most every 10 s are a hundred connects a second at worst, and after a control-plane
# restart they are all current within seconds of it, not half a minute (``make bench
# BENCH=fleet``, the reconnect storm).
RECONNECT_S = (0.5, 10.0)


def backoff_delay(attempt: int, rand: RandomSource, low: float = 0.5, high: float = 30.0) -> float:
    """Delay before retry number ``attempt`` (0-based): ``low * 2**attempt`` capped at ``high``,
    then jittered to between half and all of it so a fleet does not reconnect in lockstep."""
    ceiling = min(high, low * 2.0 ** min(attempt, 32))
    return ceiling * (0.5 + rand.random() / 2)
