"""The guard against blocking calls inside the event loop is on (``tests.data_plane.blocking``):
a blocking call in a data-plane request is reported even when the request's error handling
swallows it, a file write on the loop raises where a thread would not, and the data plane
computes a calendar limit's window without reading the time-zone database on the loop (it
resolves the zone when it compiles the snapshot, and refuses one it does not know)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from blockbuster import BlockingError

import tests.data_plane.conftest
import tests.providers.conftest
from data_plane.app import REQUEST_IDS, RequestIds, request_context
from data_plane.files import write_atomic
from data_plane.policy.compiled import PolicyError, compile_snapshot
from data_plane.snapshots.store import SnapshotStore
from shared.pb import snapshot_pb2
from tests.data_plane import blocking, snapshots
from tests.providers.gateway import running_gateway


@pytest.fixture
async def sleepy_app_url() -> AsyncIterator[str]:
    """A throwaway app behind the data plane's own middleware whose one handler sleeps."""

    async def sleepy(request: web.Request) -> web.Response:
        time.sleep(0.01)  # noqa: ASYNC251  # the blocking call the guard must report
        return web.json_response({"slept": True})

    app = web.Application(middlewares=[request_context])
    app[REQUEST_IDS] = RequestIds()
    app.router.add_get("/sleepy", sleepy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_blocking_call_in_a_request_is_reported_though_the_request_swallows_it(
    sleepy_app_url: str, blocking_calls: list[BaseException]
) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{sleepy_app_url}/sleepy") as r:
        status, body = r.status, await r.json()
    assert status == 500, "the middleware turned the BlockingError into an internal error"
    assert body["error"]["code"] == "internal_error"
    assert [str(exc) for exc in blocking_calls] == ["Blocking call to time.sleep"]
    blocking_calls.clear()  # provoked on purpose: the fixture must not fail this test


async def test_a_file_write_on_the_loop_raises_and_in_a_thread_does_not(tmp_path: Path) -> None:
    with pytest.raises(BlockingError):
        write_atomic(tmp_path / "on-the-loop", b"data")
    await asyncio.to_thread(write_atomic, tmp_path / "in-a-thread", b"data")
    assert (tmp_path / "in-a-thread").read_bytes() == b"data"


def test_every_folder_of_in_process_data_plane_tests_has_the_guard() -> None:
    for conftest in (tests.data_plane.conftest, tests.providers.conftest):
        assert conftest.blocking_calls is blocking.blocking_calls, conftest.__name__


def calendar_budget(zone: str) -> snapshot_pb2.Snapshot:
    """The two-tenant policy with a daily budget for acme in ``zone``."""
    builder = snapshots.two_tenants()
    builder.policy.limits.add(
        id="l-acme-daily",
        tenant_id="t-acme",
        scope=snapshot_pb2.LIMIT_SCOPE_TENANT,
        subject_id="t-acme",
        kind=snapshot_pb2.LIMIT_KIND_BUDGET,
        period=snapshot_pb2.LIMIT_PERIOD_DAY,
        time_zone=zone,
        amount=10**12,
        hard=False,
    )
    return builder.snapshot()


async def test_a_calendar_limit_is_served_without_reading_time_zones_on_the_loop(
    tmp_path: Path,
) -> None:
    """A soft budget admits without a lease: the request computes the limit's window."""
    ZoneInfo.clear_cache()  # as in a fresh process: the first use reads the database
    async with (
        running_gateway(tmp_path, calendar_budget("Pacific/Chatham")) as gateway,
        gateway.openai(snapshots.ACME_KEY) as client,
    ):
        reply = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}]
        )
        assert reply.choices[0].message.content


async def test_compiling_a_snapshot_on_the_loop_loads_its_time_zones_in_a_thread(
    tmp_path: Path,
) -> None:
    ZoneInfo.clear_cache()
    store = SnapshotStore(tmp_path / "snapshot.bin", snapshots.keyring())
    policy = await store.compile_serving(calendar_budget("America/St_Johns"))
    (limit,) = policy.limits_by_subject["t-acme"]
    assert limit.zone is ZoneInfo("America/St_Johns")


def test_a_time_zone_this_node_does_not_know_refuses_the_snapshot() -> None:
    """Rather than failing every request under the limit when its window is computed."""
    with pytest.raises(PolicyError, match="unknown time zone 'Mars/Olympus_Mons'"):
        compile_snapshot(calendar_budget("Mars/Olympus_Mons"), snapshots.keyring())
