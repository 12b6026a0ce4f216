"""The watcher hears the publisher's notices (PostgreSQL LISTEN/NOTIFY): a new version is read
when it is committed, not at the next poll."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections

from control_plane.fleet.services import publish_snapshot
from control_plane.grpc_api.announcements import Announcements
from control_plane.grpc_api.watcher import SnapshotWatcher
from tests.control_plane import factories


def _publish(slug: str) -> int:
    factories.stack(slug)
    return publish_snapshot(slug).snapshot.version


async def _until_latest(watcher: SnapshotWatcher, version: int) -> None:
    async with asyncio.timeout(10):
        while watcher.latest is None or watcher.latest.version < version:
            await watcher.wait_changed()


@pytest.mark.django_db(transaction=True)
async def test_a_published_version_is_read_long_before_the_next_poll() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("notices are PostgreSQL's; on SQLite the watcher polls")
    v1 = await sync_to_async(_publish)("acme")
    watcher = SnapshotWatcher(poll_s=600)  # only a notice can bring the next version in time
    poller = asyncio.create_task(watcher.run())
    try:
        await _until_latest(watcher, v1)
        v2 = await sync_to_async(_publish)("beta")
        await _until_latest(watcher, v2)
        v3 = await sync_to_async(_publish)("gamma")
        await _until_latest(watcher, v3)
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await sync_to_async(connections.close_all)()


async def test_a_listener_that_cannot_connect_says_so_and_keeps_trying() -> None:
    announcements = Announcements({"host": "127.0.0.1", "port": 1, "dbname": "none"})
    listener = asyncio.create_task(announcements.run())
    try:
        await asyncio.wait_for(announcements.heard.wait(), 10)
        assert not announcements.listening, "the poll keeps its own pace"
        assert not listener.done(), "it tries again"
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
