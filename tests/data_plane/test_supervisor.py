"""Stopping a supervised task: whoever cancels it and awaits it goes on only once the task's
own clean-up has run (the usage batcher finishes the spool write it started, so the reporter's
``close`` sees that batch on disk, as it promises)."""

from __future__ import annotations

import asyncio

import pytest

from data_plane.supervisor import Supervisor


async def test_cancelling_a_supervised_task_waits_for_its_clean_up() -> None:
    started, cleaned = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            for _ in range(3):  # a clean-up that awaits, as a write in flight finishing does
                await asyncio.sleep(0)
            cleaned.set()

    task = Supervisor().spawn("cleaner", run)
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set(), "the task's clean-up ran before its canceller went on"
