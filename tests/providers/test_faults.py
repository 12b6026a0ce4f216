"""Fault injection: a route with two targets, the first one failing every way a provider
fails (500, 429, a timeout, a cut connection) for a whole run of 500 requests. Every request
succeeds through the second target; the first one's circuit breaker opens, and once open lets
fewer than 10 requests through (half-open probes); when the first target recovers, a probe
closes the breaker and traffic returns to it."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from data_plane.policy.health import State
from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.conftest import BACKUP_REPLY
from tests.providers.gateway import Gateway, running_gateway

KEY = "sk-asc-acme-faults"
RUN = 500
CONCURRENCY = 20
FAULTS = (
    Behaviour(status=500),
    Behaviour(status=429),
    Behaviour(latency_s=30),  # far beyond the route's first-token timeout
    Behaviour(cut=True),
)
KIND = snapshot_pb2.PROVIDER_KIND_OPENAI
BREAKER = {"breaker_failures": "5", "breaker_cooldown_s": "0.5", "breaker_max_cooldown_s": "2"}


def fault_snapshot(primary: str, backup: str) -> snapshot_pb2.Snapshot:
    builder = (
        snapshots.PolicyBuilder()
        .tenant("t-acme")
        .provider("p-primary", kind=KIND, base_url=primary, options=BREAKER)
        .provider("p-backup", kind=KIND, base_url=backup, options=BREAKER)
        .credential("c-primary", "t-acme", "p-primary", "sk-upstream-primary")
        .credential("c-backup", "t-acme", "p-backup", "sk-upstream-backup")
        .model("m-primary", "p-primary", "primary-model")
        .model("m-backup", "p-backup", "backup-model")
        .route(
            "r-ha",
            "t-acme",
            "chat",
            [("m-primary", "c-primary", 0, 1), ("m-backup", "c-backup", 1, 1)],
        )
        .key("k-acme", "t-acme", KEY, ["r-ha"])
    )
    route = builder.policy.routes[0]
    # Far below the faulty target's 30 s and far above what the healthy backup takes on a
    # loaded CI machine (at 300 ms the backup timed out too, now and then: a 502).
    route.first_token_timeout_ms = 1500
    route.connect_timeout_ms = 1500
    return builder.snapshot(version=2)


@pytest.fixture
async def gateway(
    tmp_path: Path, primary: FakeOpenAI, backup: FakeOpenAI
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        tmp_path / "dp", fault_snapshot(primary.base_url, backup.base_url)
    ) as gw:
        yield gw


async def test_a_failing_target_is_cut_off_and_taken_back_when_it_recovers(
    gateway: Gateway, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script.extend(itertools.islice(itertools.cycle(FAULTS), RUN))
    client = gateway.openai(KEY)
    replies: list[str | None] = []
    pending = iter(range(RUN))

    async def worker() -> None:
        for _ in pending:
            completion = await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "ping"}]
            )
            replies.append(completion.choices[0].message.content)

    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    run_s = asyncio.get_running_loop().time() - started

    assert replies == [BACKUP_REPLY] * RUN, "every request succeeded, through the backup"
    opened = [t for t in gateway.health.transitions if t.provider_id == "p-primary"]
    assert opened[0].state is State.OPEN
    first_open = opened[0].at
    before = [r for r in primary.received if r.at <= first_open]
    after = [r for r in primary.received if r.at > first_open]
    assert len(after) < 10, "once open, the breaker let only probes through"
    events = await gateway.events(RUN)
    assert {e.status_code for e in events} == {200}
    assert {e.model_id for e in events} == {"m-backup"}
    outcomes = Counter(a.outcome for e in events for a in e.fallbacks)
    assert {"status_500", "status_429", "timeout", "connect_error"} <= set(outcomes)
    assert outcomes["circuit_open"] > RUN - len(primary.received) - CONCURRENCY
    print(
        f"\nfault run: {RUN} requests in {run_s:.2f} s, {CONCURRENCY} at a time; the primary "
        f"got {len(before)} before its breaker opened and {len(after)} after "
        f"(probes); breaker transitions: {[t.state.value for t in opened]}; "
        f"fallback reasons: {dict(outcomes)}"
    )

    # The primary recovers: the next probe closes the breaker and traffic returns to it.
    primary.script.clear()
    reopened_at = len(primary.received)

    async def served_by_primary() -> bool:
        completion = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "ping"}]
        )
        return completion.choices[0].message.content == Behaviour().reply

    for _ in range(200):  # 10 s at most; the breaker's cool-down is at most 2 s
        if await served_by_primary():
            break
        await asyncio.sleep(0.05)
    last = [t for t in gateway.health.transitions if t.provider_id == "p-primary"][-1]
    assert last.state is State.CLOSED
    assert all([await served_by_primary() for _ in range(20)]), "and keeps it"
    metrics = await gateway.metrics()
    await client.close()
    assert 'asc_dp_circuit_state{model="m-primary",provider="p-primary"} 0.0' in metrics
    assert (
        'asc_dp_circuit_changes_total{model="m-primary",provider="p-primary",state="open"}'
        in metrics
    )
    assert len(primary.received) > reopened_at
