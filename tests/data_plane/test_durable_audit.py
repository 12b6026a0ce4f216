"""Durable audit: a durable record is acknowledged only once it is in the spool on disk,
records arriving within the commit window share one write (group commit), and a record that
cannot be kept (write error, full spool) is reported so; through the gateway, a durable
tenant's answer is released only after its record is on disk, and is a 503 audit_unavailable
when the disk refuses it, while other tenants keep being served."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from data_plane.http.appkeys import USAGE
from data_plane.usage.spool import SUFFIX, Spool
from tests.data_plane import snapshots
from tests.data_plane.budgets import (
    GrantAll,
    chat,
    exchange,
    hard_budgets,
)
from tests.data_plane.test_usage_reporter import event, make_reporter, running
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.gateway import Gateway, running_gateway


def on_disk(spool: Path) -> list[str]:
    """Request ids in the spool (a file the sender delivered and deleted meanwhile skipped)."""
    found = []
    for path in sorted(spool.glob(f"*{SUFFIX}")):
        try:
            found += [e.request_id for e in Spool.read(path).events]
        except FileNotFoundError:
            continue
    return found


def disk_full(*args: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


async def test_a_durable_record_is_acknowledged_once_on_disk(tmp_path: Path) -> None:
    async with running(make_reporter(tmp_path, None, batch_max=500)) as reporter:
        reporter.record(event(0))  # not durable: waits for a full batch or the interval
        waiters = [reporter.record(event(i), durable=True) for i in (1, 2, 3)]
        assert all(w is not None and not w.done() for w in waiters)
        results = await asyncio.gather(*(w for w in waiters if w is not None))
        assert results == [True, True, True]
        written = await asyncio.to_thread(on_disk, tmp_path)
        assert written == ["req-0", "req-1", "req-2", "req-3"], "one group commit"


async def test_a_durable_record_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    async with running(make_reporter(tmp_path, None, batch_max=500)) as reporter:
        spool: Spool = reporter._spool
        spool.write = disk_full  # type: ignore[method-assign]  # the disk is full
        waiter = reporter.record(event(0), durable=True)
        assert waiter is not None
        assert await waiter is False


async def test_a_durable_record_finding_the_spool_full_is_reported(tmp_path: Path) -> None:
    async with running(make_reporter(tmp_path, None, spool_max_bytes=1)) as reporter:
        first = reporter.record(event(0), durable=True)
        assert first is not None
        assert await first is True  # fills the (one byte) spool
        second = reporter.record(event(1), durable=True)
        assert second is not None
        assert await second is False


@pytest.fixture
async def gateway(tmp_path: Path, upstream: FakeOpenAI) -> AsyncIterator[Gateway]:
    async with running_gateway(
        tmp_path,
        hard_budgets(upstream.base_url, budgeted=()),
        lease_source=GrantAll(),
        durable_audit_tenants=frozenset({"t-acme"}),
        usage_flush_interval_s=3600.0,  # only durable records are written before a batch fills
    ) as gw:
        yield gw


async def test_a_durable_tenants_answer_comes_after_its_record_is_on_disk(
    gateway: Gateway, tmp_path: Path
) -> None:
    spool = tmp_path / "usage-spool"
    for _ in range(5):
        status, body, request_id = await exchange(gateway, snapshots.ACME_KEY, chat())
        assert status == 200, body
        stored = await asyncio.to_thread(on_disk, spool)
        stored += [e.request_id for e in gateway.usage.events]
        assert request_id in stored, "answered before its record was on disk"


async def test_a_full_disk_refuses_durable_answers_and_serves_the_others(
    gateway: Gateway,
) -> None:
    spool: Spool = gateway.app[USAGE]._spool
    spool.write = disk_full  # type: ignore[method-assign]  # the disk is full
    status, body, _ = await exchange(gateway, snapshots.ACME_KEY, chat())
    assert (status, body["error"]["code"]) == (503, "audit_unavailable")
    status, body, _ = await exchange(gateway, snapshots.BETA_KEY, chat())
    assert status == 200, body
    dropped = 'asc_dp_usage_events_total{fate="dropped"}'
    assert dropped in await gateway.metrics()
