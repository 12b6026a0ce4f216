"""Residency: a tenant limited to EU regions never reaches a US target, whatever the weights,
even when its EU target fails (the client gets a clear error saying why nothing else was
tried), on every endpoint; a tenant without the limit falls back to the US target."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import openai
import pytest

from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.gateway import Gateway, running_gateway

EU_KEY, GLOBAL_KEY = "sk-asc-acme-eu-only", "sk-asc-beta-anywhere"
KIND = snapshot_pb2.PROVIDER_KIND_OPENAI
US_REPLY = "Served from the US."
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def residency_snapshot(eu: str, us: str) -> snapshot_pb2.Snapshot:
    """Tenants acme (EU only) and beta (anywhere), each with route "chat": an EU target and a
    US one of the same priority, the US one weighted 100 to 1; acme also has "us-only"."""
    builder = (
        snapshots.PolicyBuilder()
        .tenant("t-acme", regions=["eu"])
        .tenant("t-beta")
        .provider("p-eu", kind=KIND, base_url=eu, options={"breaker_failures": "3"})
        .provider("p-us", kind=KIND, base_url=us)
        .model("m-eu", "p-eu", "eu-model", region="eu")
        .model("m-us", "p-us", "us-model", region="us")
    )
    for tenant, key, name in (("t-acme", EU_KEY, "acme"), ("t-beta", GLOBAL_KEY, "beta")):
        builder.credential(f"c-eu-{name}", tenant, "p-eu", "sk-upstream-eu")
        builder.credential(f"c-us-{name}", tenant, "p-us", "sk-upstream-us")
        targets = [("m-eu", f"c-eu-{name}", 0, 1), ("m-us", f"c-us-{name}", 0, 100)]
        builder.route(f"r-chat-{name}", tenant, "chat", targets)
        builder.route(f"r-us-{name}", tenant, "us-only", [("m-us", f"c-us-{name}")])
        builder.key(f"k-{name}", tenant, key, [f"r-chat-{name}", f"r-us-{name}"])
    return builder.snapshot(version=7)


@pytest.fixture
async def eu() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="sk-upstream-eu", model="eu-model") as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
async def us() -> AsyncIterator[FakeOpenAI]:
    default = Behaviour(reply=US_REPLY)
    async with FakeOpenAI(api_key="sk-upstream-us", model="us-model", default=default) as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
async def gateway(tmp_path: Path, eu: FakeOpenAI, us: FakeOpenAI) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path / "dp", residency_snapshot(eu.base_url, us.base_url)) as gw:
        yield gw


async def test_an_eu_tenant_is_served_in_the_eu_whatever_the_weights(
    gateway: Gateway, eu: FakeOpenAI, us: FakeOpenAI
) -> None:
    client = gateway.openai(EU_KEY)
    for _ in range(20):
        completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
        assert completion.choices[0].message.content == Behaviour().reply
    await client.close()
    assert (len(eu.received), len(us.received)) == (20, 0)
    events = await gateway.events(20)
    assert {(e.model_id, e.region) for e in events} == {("m-eu", "eu")}


async def test_when_the_eu_target_fails_the_eu_tenant_gets_a_clear_error_not_the_us(
    gateway: Gateway, eu: FakeOpenAI, us: FakeOpenAI
) -> None:
    eu.default = Behaviour(status=500)
    client = gateway.openai(EU_KEY)
    statuses = []
    for stream in (False, True) * 5:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="chat", messages=MESSAGES, stream=stream)
        statuses.append((info.value.status_code, info.value.code))
        assert "outside this tenant's allowed regions (eu) were not tried" in info.value.message
    with pytest.raises(openai.APIStatusError) as embedding:
        await client.embeddings.create(model="chat", input="hi")
    assert embedding.value.status_code == 503
    await client.close()
    # 502 while the EU target is tried, 503 once its breaker keeps it out.
    assert statuses[:3] == [(502, "upstream_error")] * 3
    assert set(statuses[3:]) == {(503, "no_healthy_target")}
    assert us.received == [], "never the US target"

    sdk = gateway.anthropic(EU_KEY)
    with pytest.raises(anthropic.APIStatusError) as failed:
        await sdk.messages.create(
            model="chat", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    await sdk.close()
    assert failed.value.status_code == 503
    assert us.received == [], "not through the Anthropic endpoint either"

    events = await gateway.events(12)
    assert all(e.region in ("", "eu") for e in events)
    assert all(a.model_id == "m-eu" for e in events for a in e.fallbacks)


async def test_a_tenant_without_residency_falls_back_to_the_us(
    gateway: Gateway, eu: FakeOpenAI, us: FakeOpenAI
) -> None:
    eu.default = Behaviour(status=500)
    client = gateway.openai(GLOBAL_KEY)
    completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
    await client.close()
    assert completion.choices[0].message.content == US_REPLY


async def test_a_route_with_only_foreign_targets_is_refused_up_front(
    gateway: Gateway, us: FakeOpenAI
) -> None:
    client = gateway.openai(EU_KEY)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="us-only", messages=MESSAGES)
    await client.close()
    assert (info.value.status_code, info.value.code) == (503, "no_target_available")
    assert "1 provider(s) outside this tenant's allowed regions (eu)" in info.value.message
    assert us.received == []
