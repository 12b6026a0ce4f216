"""Routing resilience through the running gateway: retries with backoff that respect
Retry-After, a 429 from every target answered as a 429 (not a 502), a Retry-After honoured
across requests, the route's first-token and total timeouts, latency-aware choice, and time
to first token and fallbacks in the usage records and in /metrics."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.conftest import BACKUP_REPLY
from tests.providers.gateway import Gateway, collect, running_gateway

KEY = "sk-asc-acme-resilience"
KIND = snapshot_pb2.PROVIDER_KIND_OPENAI
REPLY = Behaviour().reply
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
RouteTweak = Callable[[snapshot_pb2.Route], None]


def resilience_snapshot(primary: str, backup: str, tweak: RouteTweak) -> snapshot_pb2.Snapshot:
    builder = (
        snapshots.PolicyBuilder()
        .tenant("t-acme")
        .provider("p-primary", kind=KIND, base_url=primary)
        .provider("p-backup", kind=KIND, base_url=backup)
        .credential("c-primary", "t-acme", "p-primary", "sk-upstream-primary")
        .credential("c-backup", "t-acme", "p-backup", "sk-upstream-backup")
        .model("m-primary", "p-primary", "primary-model")
        .model("m-backup", "p-backup", "backup-model")
        .route(
            "r",
            "t-acme",
            "chat",
            [("m-primary", "c-primary", 0, 1), ("m-backup", "c-backup", 1, 1)],
        )
        .key("k-acme", "t-acme", KEY, ["r"])
    )
    tweak(builder.policy.routes[0])
    return builder.snapshot(version=9)


@pytest.fixture
def tweak() -> RouteTweak:
    return lambda route: None


@pytest.fixture
async def gateway(
    tmp_path: Path, primary: FakeOpenAI, backup: FakeOpenAI, tweak: RouteTweak
) -> AsyncIterator[Gateway]:
    snapshot = resilience_snapshot(primary.base_url, backup.base_url, tweak)
    async with running_gateway(tmp_path / "dp", snapshot) as gw:
        yield gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = gateway.openai(KEY)
    yield sdk
    await sdk.close()


def retries(count: int) -> RouteTweak:
    def tweak(route: snapshot_pb2.Route) -> None:
        route.max_retries = count

    return tweak


@pytest.mark.parametrize("tweak", [retries(2)])
async def test_retries_the_same_target_with_backoff_before_falling_back(
    client: openai.AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script.extend([Behaviour(status=503), Behaviour(status=502)])
    completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].message.content == REPLY, "the third try of the primary"
    assert backup.received == []
    first, second, third = (r.at for r in primary.received)
    assert second - first >= 0.05, "jittered exponential backoff"
    assert third - second >= 0.1
    (event,) = await gateway.events(1)
    assert event.model_id == "m-primary"
    assert [a.outcome for a in event.fallbacks] == ["status_503", "status_502"]


@pytest.mark.parametrize("tweak", [retries(1)])
async def test_a_retry_waits_for_retry_after(
    client: openai.AsyncOpenAI, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(status=429, retry_after="0.4"))
    completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].message.content == REPLY
    first, second = (r.at for r in primary.received)
    assert second - first >= 0.4


async def test_when_every_target_answers_429_the_client_gets_429_with_retry_after(
    client: openai.AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(status=429, retry_after="4"))
    backup.script.append(Behaviour(status=429, retry_after="2"))
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert info.value.code == "upstream_rate_limited"
    assert info.value.response.headers["retry-after"] == "2", "the soonest any target frees up"
    (event,) = await gateway.events(1)
    assert [a.outcome for a in event.fallbacks] == ["status_429", "status_429"]


async def test_retry_after_keeps_a_target_out_across_requests(
    client: openai.AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(status=429, retry_after="30"))
    for _ in range(3):
        completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
        assert completion.choices[0].message.content == BACKUP_REPLY
    assert len(primary.received) == 1, "not asked again while it said to wait"
    events = await gateway.events(3)
    assert [[a.outcome for a in e.fallbacks] for e in events] == [
        ["status_429"],
        ["retry_after"],
        ["retry_after"],
    ]


def first_token_timeout(route: snapshot_pb2.Route) -> None:
    route.first_token_timeout_ms = 300


@pytest.mark.parametrize("tweak", [first_token_timeout])
async def test_a_stream_without_a_first_token_in_time_falls_back(
    client: openai.AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    # The role chunk comes at once, the first token 30 s later: that is no first token.
    primary.script.append(Behaviour(chunk_latency_s=30))
    stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == BACKUP_REPLY, "the primary's role chunk was held back, not sent"
    (event,) = await gateway.events(1)
    assert [(a.model_id, a.outcome) for a in event.fallbacks] == [("m-primary", "timeout")]
    assert event.ttft_ms >= 300


def total_timeout(route: snapshot_pb2.Route) -> None:
    route.total_timeout_ms = 500


@pytest.mark.parametrize("tweak", [total_timeout])
async def test_a_stream_past_the_total_timeout_ends_with_an_error(
    client: openai.AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(chunk_latency_s=0.2))  # 7 events: about 1.2 s
    stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    text: list[str] = []
    with pytest.raises(openai.APIError):
        await collect(stream, text)
    assert 0 < len(text) < len(REPLY.split()), "cut off part-way, never replayed elsewhere"
    (event,) = await gateway.events(1)
    assert (event.model_id, event.error_code) == ("m-primary", "stream_interrupted")


def latency_aware(route: snapshot_pb2.Route) -> None:
    route.latency_aware = True
    for target in route.targets:
        target.priority, target.weight = 0, 1


@pytest.mark.parametrize("tweak", [latency_aware])
async def test_latency_aware_routes_prefer_the_faster_target(
    client: openai.AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    # The backup's first answer comes over a new connection, which a loaded machine can make
    # slow; the primary is slower by a margin that such a cold start does not reach.
    primary.default = Behaviour(latency_s=0.5)
    for _ in range(20):
        await client.chat.completions.create(model="chat", messages=MESSAGES)
    served = Counter(e.model_id for e in await gateway.events(20))
    assert served["m-backup"] >= 16, served
    assert served["m-primary"] >= 1, "the slower one was measured too"


async def test_time_to_first_token_and_fallbacks_in_usage_records_and_metrics(
    client: openai.AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.default = Behaviour(status=500)
    backup.default = Behaviour(reply=BACKUP_REPLY, chunk_latency_s=0.1, latency_s=0.1)
    stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    assert (
        "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        == BACKUP_REPLY
    )
    completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].message.content == BACKUP_REPLY

    streamed, answered = await gateway.events(2)
    for event in (streamed, answered):
        assert [(a.model_id, a.provider_id, a.outcome) for a in event.fallbacks] == [
            ("m-primary", "p-primary", "status_500")
        ]
        assert event.model_id == "m-backup"
    # First token: after the 0.1 s wait and, when streaming, the role chunk and 0.1 s more.
    assert streamed.ttft_ms >= 200
    assert answered.ttft_ms >= 100
    assert streamed.latency_ms >= streamed.ttft_ms

    metrics = await gateway.metrics()
    assert 'asc_dp_fallbacks_total{outcome="status_500",provider="p-primary"} 2.0' in metrics
    assert 'asc_dp_time_to_first_token_seconds_count{route="chat"} 2.0' in metrics
    under_100ms = re.search(
        r'asc_dp_time_to_first_token_seconds_bucket\{le="0\.05",route="chat"\} (\S+)', metrics
    )
    assert under_100ms is not None
    assert float(under_100ms.group(1)) == 0.0
