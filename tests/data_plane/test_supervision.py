"""Supervised background tasks: a failure injected into the lease client, the usage batcher
(the spool writer), the usage sender and the snapshot stream is logged, counted in
``asc_dp_background_task_restarts`` and followed by a restart with backoff, and the node keeps
serving every tenant meanwhile, losing no usage. A task that keeps failing makes ``/readyz``
say so, until it recovers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from data_plane.http.appkeys import CONFIG_CLIENT, USAGE
from data_plane.usage.spool import Spool
from shared.pb import control_pb2, control_pb2_grpc, snapshot_pb2
from tests.data_plane import snapshots
from tests.data_plane.budgets import (
    GrantAll,
    chat,
    exchange,
    hard_budgets,
    post,
)
from tests.data_plane.test_config_client import END, ScriptedConfigService
from tests.data_plane.waiting import GUARD_S, eventually
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.gateway import Gateway, running_gateway

KEYS = (snapshots.ACME_KEY, snapshots.BETA_KEY)
FAST = {"backoff_min_s": 0.01, "backoff_max_s": 0.05}


class Injected(RuntimeError):
    """The failure a test injects (no code path expects it)."""


def failing_once(call: Callable[..., Any]) -> Callable[..., Any]:
    """``call``, raising ``Injected`` the first time."""
    failed: list[bool] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not failed:
            failed.append(True)
            raise Injected("injected failure")
        return call(*args, **kwargs)

    return wrapper


class FailingOnce:
    """A random source whose first draw raises ``Injected``."""

    def __init__(self, rand: Any) -> None:
        self._rand, self._failed = rand, False

    def random(self) -> float:
        if not self._failed:
            self._failed = True
            raise Injected("injected failure")
        return float(self._rand.random())


async def until(done: Callable[[], Awaitable[bool]], step: Callable[[], Awaitable[object]]) -> None:
    """Run ``step`` until ``done()``; fail after the guard time."""
    try:
        async with asyncio.timeout(GUARD_S):
            while not await done():
                await step()
    except TimeoutError:
        raise AssertionError(f"still waiting after {GUARD_S} s") from None


class FlakyLeases(GrantAll):
    """Grants leases of ``ttl_ms``; the ``fail_on``-th call raises, and every call from
    ``broken_from`` on (0: never)."""

    def __init__(self, ttl_ms: int, fail_on: int = 0, broken_from: int = 0) -> None:
        super().__init__(ttl_ms)
        self.fail_on, self.broken_from = fail_on, broken_from

    async def acquire(self, request: control_pb2.LeaseRequest) -> control_pb2.LeaseResponse:
        if self.calls + 1 == self.fail_on or (
            self.broken_from and self.calls + 1 >= self.broken_from
        ):
            self.calls += 1
            raise Injected("the lease service answered something no code path expects")
        return await super().acquire(request)


async def restarts(gateway: Gateway, task: str) -> float:
    found = re.search(
        rf'asc_dp_background_task_restarts_total{{task="{task}"}} (\S+)', await gateway.metrics()
    )
    return float(found.group(1)) if found else 0.0


async def serve_everyone(gateway: Gateway, rounds: int) -> list[str]:
    """``rounds`` requests of each tenant; their request ids (every one must succeed)."""
    ids = []
    for _ in range(rounds):
        for key in KEYS:
            status, body, request_id = await exchange(gateway, key, chat(max_tokens=10))
            assert status == 200, body
            ids.append(request_id)
    return ids


async def readiness(gateway: Gateway) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{gateway.url}/readyz") as r:
        return r.status, await r.json()


async def test_a_lease_client_failure_is_restarted_and_every_budget_keeps_working(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    """Leases last a second, so a dead lease client would turn every hard-budgeted request
    into a 503 within a second or two; a restarted one renews them in time."""
    leases = FlakyLeases(ttl_ms=1000, fail_on=3)
    async with running_gateway(
        tmp_path, hard_budgets(upstream.base_url), lease_source=leases, **FAST
    ) as gateway:

        async def calls_past(n: int) -> bool:
            return leases.calls > n

        await until(lambda: calls_past(3), lambda: serve_everyone(gateway, 1))
        await until(lambda: calls_past(8), lambda: serve_everyone(gateway, 1))  # renewed since
        assert await restarts(gateway, "lease-client") == 1


async def test_a_spool_writer_failure_loses_no_usage(tmp_path: Path, upstream: FakeOpenAI) -> None:
    async with running_gateway(
        tmp_path, hard_budgets(upstream.base_url), lease_source=GrantAll(), **FAST
    ) as gateway:
        spool: Spool = gateway.app[USAGE]._spool  # the fault goes where the disk is written
        spool.write = failing_once(spool.write)  # type: ignore[method-assign]  # the injection
        ids = await serve_everyone(gateway, 10)
        await eventually(lambda: len(gateway.usage.events) == len(ids), "every usage event")
        assert sorted(e.request_id for e in gateway.usage.events) == sorted(ids)
        assert await restarts(gateway, "usage-batcher") == 1
        assert await serve_everyone(gateway, 2)


async def test_a_usage_sender_failure_loses_no_usage(tmp_path: Path, upstream: FakeOpenAI) -> None:
    async with running_gateway(
        tmp_path, hard_budgets(upstream.base_url), lease_source=GrantAll(), **FAST
    ) as gateway:
        spool: Spool = gateway.app[USAGE]._spool
        spool.read = failing_once(spool.read)  # type: ignore[method-assign]  # the injection
        ids = await serve_everyone(gateway, 10)
        await eventually(lambda: len(gateway.usage.events) == len(ids), "every usage event")
        assert sorted(e.request_id for e in gateway.usage.events) == sorted(ids)
        assert await restarts(gateway, "usage-sender") == 1


async def test_a_snapshot_stream_failure_is_restarted_and_the_node_keeps_serving(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    service = ScriptedConfigService()
    server = grpc.aio.server()
    control_pb2_grpc.add_ConfigServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    first = hard_budgets(upstream.base_url)
    try:
        async with running_gateway(
            tmp_path,
            first,
            lease_source=GrantAll(),
            control_plane=f"127.0.0.1:{port}",
            **FAST,
        ) as gateway:
            client = gateway.app[CONFIG_CLIENT]
            rand = client._rand  # the reconnect backoff's jitter: where the fault goes in
            client._rand = FailingOnce(rand)  # type: ignore[assignment]  # the injection
            changed = snapshot_pb2.Policy()
            changed.CopyFrom(first.policy)
            changed.tenants.add(id="t-new", slug="new", active=True)  # a new hash
            second = snapshots.snapshot_of(changed, version=2)
            received = service.inbox.get
            hello = await asyncio.wait_for(received(), GUARD_S)
            assert hello.version == 1
            await service.outbox.put(END)  # the stream ends; reconnecting fails unexpectedly
            again = await asyncio.wait_for(received(), GUARD_S)  # restarted: a new hello
            assert (again.version, again.response_nonce) == (1, "")
            await serve_everyone(gateway, 3)  # on the snapshot it had
            await service.outbox.put(control_pb2.SnapshotResponse(nonce="n-2b", snapshot=second))
            ack = await asyncio.wait_for(received(), GUARD_S)
            assert (ack.version, ack.response_nonce, ack.error_detail) == (2, "n-2b", "")
            assert await restarts(gateway, "config-client") == 1
            await serve_everyone(gateway, 3)
    finally:
        await server.stop(None)


async def test_a_task_that_keeps_failing_makes_the_node_not_ready_until_it_recovers(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    """The lease service fails every call: acme's hard budget fails closed, beta (no budget)
    is served all along, and /readyz names the failing task until the calls succeed again."""
    leases = FlakyLeases(ttl_ms=60_000, broken_from=1)
    async with running_gateway(
        tmp_path,
        hard_budgets(upstream.base_url, budgeted=["t-acme"]),
        lease_source=leases,
        task_give_up_after=3,
        task_stable_s=2.0,  # longer than the loop's round: failing every round is not stable
        **FAST,
    ) as gateway:
        status, body = await post(gateway, snapshots.ACME_KEY, chat())
        assert (status, body["error"]["code"]) == (503, "limits_unavailable")

        async def not_ready() -> bool:
            return (await readiness(gateway))[0] == 503

        async def ready() -> bool:
            return not await not_ready()

        async def both() -> None:
            await post(gateway, snapshots.ACME_KEY, chat())  # keeps asking for a lease
            assert (await post(gateway, snapshots.BETA_KEY, chat()))[0] == 200

        await until(not_ready, both)
        status, ready_body = await readiness(gateway)
        assert ready_body["reason"] == "background task(s) failing: lease-client"
        assert 'asc_dp_background_task_down{task="lease-client"} 1.0' in await gateway.metrics()

        leases.broken_from = 0  # the control plane answers again
        await until(ready, both)
        assert (await post(gateway, snapshots.ACME_KEY, chat()))[0] == 200
        assert 'asc_dp_background_task_down{task="lease-client"} 0.0' in await gateway.metrics()
