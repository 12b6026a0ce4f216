"""The data plane in process on a real port (as ``create_app`` builds it, without a control
plane, its snapshot on disk before it starts), with the official SDKs as clients. Unlike
``tests.data_plane.test_proxy_openai`` it hands out the app too, so tests can look at the
circuit breakers' state."""

from __future__ import annotations

import random
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from data_plane.app import create_app
from data_plane.http.pipeline import HEALTH
from data_plane.limits.client import LeaseSource
from data_plane.policy.health import HealthBook
from data_plane.settings import Settings
from data_plane.snapshots.store import SnapshotStore
from data_plane.usage.reporter import MemoryUsageClient
from shared.pb import control_pb2, snapshot_pb2
from tests.data_plane import snapshots
from tests.data_plane.waiting import eventually


@dataclass
class Gateway:
    url: str
    usage: MemoryUsageClient
    app: web.Application

    @property
    def health(self) -> HealthBook:
        return self.app[HEALTH]

    def openai(self, api_key: str, **options: object) -> AsyncOpenAI:
        # No SDK retries: each call is exactly one gateway request.
        return AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=30, **options
        )  # type: ignore[arg-type]

    def anthropic(self, api_key: str) -> AsyncAnthropic:
        return AsyncAnthropic(base_url=self.url, api_key=api_key, max_retries=0, timeout=30)

    async def events(self, count: int) -> list[control_pb2.UsageEvent]:
        await eventually(lambda: len(self.usage.events) >= count, f"{count} usage event(s)")
        assert len(self.usage.events) == count
        return self.usage.events

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/metrics") as r:
            return await r.text()


@asynccontextmanager
async def running_gateway(
    state_dir: Path,
    snapshot: snapshot_pb2.Snapshot,
    *,
    seed: int = 0,
    lease_source: LeaseSource | None = None,
    **overrides: Any,
) -> AsyncIterator[Gateway]:
    """``overrides``: other ``Settings`` than these."""
    settings = Settings(
        host="127.0.0.1",
        port=0,
        control_plane="",
        node_id="dp-test",
        region="eu",
        state_dir=state_dir,
        seal_key=snapshots.SEAL_KEY,
        usage_flush_interval_s=0.02,
    )
    settings = replace(settings, **overrides)
    SnapshotStore(settings.snapshot_path, snapshots.keyring()).persist(snapshot)
    usage = MemoryUsageClient()
    app = create_app(
        settings, usage_client=usage, lease_source=lease_source, rand=random.Random(seed)
    )
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield Gateway(f"http://{host}:{port}", usage, app)
    finally:
        await runner.cleanup()


async def collect(stream: AsyncIterable[ChatCompletionChunk], into: list[str]) -> None:
    """Append each chunk's text to ``into`` (which keeps what came before an error)."""
    async for chunk in stream:
        into.extend(choice.delta.content or "" for choice in chunk.choices)
