"""Supervision of the node's background tasks (lease client, usage batcher and sender,
snapshot stream): a task that raises is logged, counted and restarted after a jittered
backoff, so one bug or one bad value never stops a loop every tenant depends on.

A task that keeps failing (``give_up_after`` failures in a row, none of its runs lasting
``stable_s``) is reported by ``down`` and makes the node not ready (``/readyz``) until a
restart of it stays up for ``stable_s``; it is retried all the while.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from data_plane.backoff import backoff_delay
from data_plane.types import RandomSource

log = logging.getLogger(__name__)


def _ignore(name: str) -> None:
    pass


class Supervisor:
    def __init__(
        self,
        *,
        backoff: tuple[float, float] = (0.5, 30.0),
        rand: RandomSource | None = None,
        give_up_after: int = 5,
        stable_s: float = 30.0,
        on_restart: Callable[[str], None] = _ignore,
        on_down: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._backoff = backoff
        self._rand = rand or random.Random()
        self._give_up_after = give_up_after
        self._stable_s = stable_s
        self._on_restart = on_restart
        self._on_down = on_down
        self._down: set[str] = set()
        self.restarts: dict[str, int] = {}

    @property
    def down(self) -> frozenset[str]:
        """Tasks that failed ``give_up_after`` times in a row and have not recovered."""
        return frozenset(self._down)

    def spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``run()`` under supervision until it returns or the task is cancelled."""
        return asyncio.create_task(self._supervise(name, run), name=f"asc-{name}")

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while True:
            task: asyncio.Task[None] = asyncio.ensure_future(run())
            try:
                done, _ = await asyncio.wait({task}, timeout=self._stable_s)
                if not done:  # up long enough: whatever failed before has recovered
                    failures = 0
                    self._mark(name, down=False)
                await task
                return
            except asyncio.CancelledError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)  # wound down, not abandoned
                raise
            except Exception:
                log.exception("background task %s failed; restarting it", name)
            failures += 1
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self._on_restart(name)
            if failures >= self._give_up_after:
                self._mark(name, down=True)
            await asyncio.sleep(backoff_delay(failures - 1, self._rand, *self._backoff))

    def _mark(self, name: str, *, down: bool) -> None:
        if down == (name in self._down):
            return
        if down:
            self._down.add(name)
            log.error("background task %s keeps failing: the node reports not ready", name)
        else:
            self._down.discard(name)
            log.info("background task %s recovered", name)
        if self._on_down is not None:
            self._on_down(name, down)
