"""Jittered exponential backoff for reconnects and retries (pure)."""

from __future__ import annotations

from data_plane.types import RandomSource


def backoff_delay(attempt: int, rand: RandomSource, low: float = 0.5, high: float = 30.0) -> float:
    """Delay before retry number ``attempt`` (0-based): ``low * 2**attempt`` capped at ``high``,
    then jittered to between half and all of it so a fleet does not reconnect in lockstep."""
    ceiling = min(high, low * 2.0 ** min(attempt, 32))
    return ceiling * (0.5 + rand.random() / 2)
