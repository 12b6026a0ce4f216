"""Waiting for a condition that background tasks bring about, instead of sleeping a guess."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# A guard against hanging, not a measure: every caller expects its condition in milliseconds.
GUARD_S = 10.0


async def eventually(check: Callable[[], object], what: str) -> None:
    """Return as soon as ``check()`` is truthy; fail after ``GUARD_S`` seconds."""
    try:
        async with asyncio.timeout(GUARD_S):
            while not check():  # noqa: ASYNC110  # polling state set by other tasks is the point
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"still waiting after {GUARD_S} s for: {what}") from None
