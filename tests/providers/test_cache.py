"""The response cache end to end, with the official SDKs as clients (docs/cache.md): a repeat
of a request on a caching route is answered without calling the provider, for the same tenant
and route only; a hit is recorded with cost 0 and the cost it saved; streams are replayed as
streams the SDKs parse; clients opt out with Cache-Control; only whole, successful answers
are stored; with Redis configured, two data planes share the entries; a Redis that fails
never fails a request."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis.asyncio as aioredis

from data_plane.cache.key import VERSION
from data_plane.http.appkeys import ADMITTER, STORE
from data_plane.usage.audit import CACHE_HIT
from shared.pb import control_pb2, snapshot_pb2
from tests.data_plane import snapshots
from tests.data_plane.budgets import GrantAll
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.gateway import Gateway, collect, running_gateway

ACME_KEY, BETA_KEY, NARROW_KEY = "sk-asc-acme-cache", "sk-asc-beta-cache", "sk-asc-acme-narrow"
UPSTREAM_KEY = "sk-upstream-cache"
KIND = snapshot_pb2.PROVIDER_KIND_OPENAI
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]
REDIS_URL = "redis://127.0.0.1:6379/0"
REPLY = Behaviour().reply


def cache_snapshot(base_url: str, ttl_s: int = 300) -> snapshot_pb2.Snapshot:
    """Tenants acme and beta, each with a caching route "chat" to the same upstream model;
    acme also has "other" (no cache), the only route its narrow key is granted."""
    builder = (
        snapshots.PolicyBuilder()
        .tenant("t-acme")
        .tenant("t-beta")
        .provider("p-main", kind=KIND, base_url=base_url)
        .model("m-main", "p-main", "cache-model", region="eu")
        .credential("c-acme", "t-acme", "p-main", UPSTREAM_KEY)
        .credential("c-beta", "t-beta", "p-main", UPSTREAM_KEY)
        .route("r-acme-chat", "t-acme", "chat", [("m-main", "c-acme")])
        .route("r-acme-other", "t-acme", "other", [("m-main", "c-acme")])
        .route("r-beta-chat", "t-beta", "chat", [("m-main", "c-beta")])
        .key("k-acme", "t-acme", ACME_KEY, ["r-acme-chat", "r-acme-other"])
        .key("k-acme-narrow", "t-acme", NARROW_KEY, ["r-acme-other"])
        .key("k-beta", "t-beta", BETA_KEY, ["r-beta-chat"])
    )
    for route in builder.policy.routes:
        if route.name == "chat":
            route.cache_ttl_s = ttl_s
    return builder.snapshot(version=3)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=UPSTREAM_KEY, model="cache-model") as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
async def gateway(tmp_path: Path, upstream: FakeOpenAI) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path / "dp", cache_snapshot(upstream.base_url)) as gw:
        yield gw


async def ask(client: openai.AsyncOpenAI, **options: object) -> tuple[str, str | None]:
    """One chat completion: its text and the x-asc-cache header."""
    raw = await client.chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES, **options
    )  # type: ignore[call-overload]
    completion = raw.parse()
    return completion.choices[0].message.content or "", raw.headers.get("x-asc-cache")


def audits(gateway: Gateway) -> list[control_pb2.AuditRecord]:
    return [a for batch in gateway.usage.batches.values() for a in batch.audit]


async def test_a_repeat_is_served_from_the_cache_and_recorded_as_a_hit(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    client = gateway.openai(ACME_KEY)
    first = await ask(client)
    second = await ask(client)
    await client.close()
    assert first == (REPLY, "miss")
    assert second == (REPLY, "hit")
    assert len(upstream.received) == 1
    paid, hit = await gateway.events(2)
    assert (paid.cache_hit, hit.cache_hit) == (False, True)
    assert paid.cost_nano_usd > 0
    assert paid.cost_saved_nano_usd == 0
    assert hit.cost_nano_usd == 0
    assert hit.cost_saved_nano_usd == paid.cost_nano_usd
    assert (hit.prompt_tokens, hit.completion_tokens) == (
        paid.prompt_tokens,
        paid.completion_tokens,
    )
    assert (hit.route_id, hit.key_id, hit.status_code) == ("r-acme-chat", "k-acme", 200)
    assert hit.provider_id == ""
    assert hit.model_id == ""
    assert [(a.decision, a.reason, a.event.cache_hit) for a in audits(gateway)] == [
        ("allowed", "", False),
        ("allowed", CACHE_HIT, True),
    ]
    metrics = await gateway.metrics()
    assert 'asc_dp_cache_lookups_total{result="hit",route="chat"} 1.0' in metrics
    assert 'asc_dp_cache_lookups_total{result="miss",route="chat"} 1.0' in metrics
    assert 'asc_dp_cache_stores_total{route="chat"} 1.0' in metrics


async def test_another_tenant_never_gets_the_entry(gateway: Gateway, upstream: FakeOpenAI) -> None:
    acme, beta = gateway.openai(ACME_KEY), gateway.openai(BETA_KEY)
    assert await ask(acme) == (REPLY, "miss")
    assert await ask(beta) == (REPLY, "miss")  # same route name, same body: another tenant
    assert await ask(beta) == (REPLY, "hit")
    await acme.close()
    await beta.close()
    assert len(upstream.received) == 2


async def test_a_key_without_the_route_gets_its_refusal_not_the_answer(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    acme, narrow = gateway.openai(ACME_KEY), gateway.openai(NARROW_KEY)
    await ask(acme)
    with pytest.raises(openai.APIStatusError) as refused:
        await ask(narrow)
    await acme.close()
    await narrow.close()
    assert 400 <= refused.value.status_code < 500
    assert REPLY not in refused.value.response.text
    assert refused.value.response.headers.get("x-asc-cache") is None
    assert len(upstream.received) == 1
    _, denied = await gateway.events(2)
    assert (denied.cache_hit, denied.status_code) == (False, refused.value.status_code)


async def test_a_route_without_a_ttl_does_not_cache(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = gateway.openai(ACME_KEY)
    for _ in range(2):
        raw = await client.chat.completions.with_raw_response.create(
            model="other", messages=MESSAGES
        )
        assert raw.headers.get("x-asc-cache") is None
    await client.close()
    assert len(upstream.received) == 2


async def test_a_stream_is_replayed_as_a_stream(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = gateway.openai(ACME_KEY)
    texts: list[list[str]] = [[], []]
    headers = []
    for into in texts:
        async with client.chat.completions.with_streaming_response.create(
            model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ) as raw:
            headers.append(raw.headers.get("x-asc-cache"))
            await collect(await raw.parse(), into)
    await client.close()
    assert headers == ["miss", "hit"]
    assert "".join(texts[0]) == "".join(texts[1]) == REPLY
    assert len(upstream.received) == 1
    paid, hit = await gateway.events(2)
    assert hit.cache_hit
    assert hit.stream
    assert hit.cost_nano_usd == 0
    assert hit.cost_saved_nano_usd == paid.cost_nano_usd > 0
    assert hit.completion_tokens == paid.completion_tokens > 0


async def test_an_anthropic_stream_is_replayed_in_its_own_dialect(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    client = gateway.anthropic(ACME_KEY)
    texts = []
    for _ in range(2):
        async with client.messages.stream(
            model="chat", max_tokens=100, messages=[{"role": "user", "content": "Hi there"}]
        ) as stream:
            message = await stream.get_final_message()
        texts.append((message.content[0].text, message.usage.output_tokens))  # type: ignore[union-attr]
    await client.close()
    assert texts[0] == texts[1]
    assert texts[0][0] == REPLY
    assert len(upstream.received) == 1
    _, hit = await gateway.events(2)
    assert hit.cache_hit
    assert hit.stream


async def test_a_stream_has_its_own_entry(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = gateway.openai(ACME_KEY)
    await ask(client)
    chunks: list[str] = []
    await collect(
        await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True),
        chunks,
    )
    await client.close()
    assert "".join(chunks) == REPLY
    assert len(upstream.received) == 2


async def test_cache_control_no_cache_and_no_store(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = gateway.openai(ACME_KEY)
    no_store = {"extra_headers": {"Cache-Control": "no-store"}}
    no_cache = {"extra_headers": {"Cache-Control": "no-cache"}}
    assert await ask(client, **no_store) == (REPLY, "miss")
    assert await ask(client) == (REPLY, "miss")  # nothing was stored: asked again, stored
    assert await ask(client, **no_cache) == (REPLY, "miss")  # not served from the cache
    assert await ask(client, **no_store) == (REPLY, "hit")  # no-store may still be served
    assert await ask(client) == (REPLY, "hit")
    await client.close()
    assert len(upstream.received) == 3


async def test_a_body_that_differs_is_a_miss(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = gateway.openai(ACME_KEY)
    await ask(client)
    assert (await ask(client, temperature=0.5))[1] == "miss"
    assert (await ask(client, temperature=0.5))[1] == "hit"
    await client.close()
    assert len(upstream.received) == 2


async def test_errors_and_broken_streams_are_not_stored(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    client = gateway.openai(ACME_KEY)
    upstream.script.append(Behaviour(status=500))
    with pytest.raises(openai.InternalServerError):
        await ask(client)
    assert await ask(client) == (REPLY, "miss")  # the error was not kept
    upstream.script.append(Behaviour(drop_after_chunks=2))
    broken: list[str] = []
    with pytest.raises(openai.APIError):
        await collect(
            await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True),
            broken,
        )
    whole: list[str] = []
    await collect(
        await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True),
        whole,
    )
    await client.close()
    assert "".join(whole) == REPLY
    assert len(upstream.received) == 4  # the broken stream was not kept either


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own, its keys deleted afterwards."""
    prefix = f"asc-test:{VERSION}:{uuid.uuid4().hex}:"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_two_data_planes_share_the_redis_cache(
    tmp_path: Path, upstream: FakeOpenAI, redis_prefix: str
) -> None:
    snapshot = cache_snapshot(upstream.base_url)
    shared: dict[str, Any] = {"cache_redis_url": REDIS_URL, "cache_redis_prefix": redis_prefix}
    async with (
        running_gateway(tmp_path / "dp1", snapshot, node_id="dp-1", **shared) as first,
        running_gateway(tmp_path / "dp2", snapshot, node_id="dp-2", **shared) as second,
    ):
        one, two = first.openai(ACME_KEY), second.openai(ACME_KEY)
        assert await ask(one) == (REPLY, "miss")
        assert await ask(two) == (REPLY, "hit")
        chunks: list[str] = []
        await collect(
            await one.chat.completions.create(model="chat", messages=MESSAGES, stream=True),
            chunks,
        )
        replayed: list[str] = []
        await collect(
            await two.chat.completions.create(model="chat", messages=MESSAGES, stream=True),
            replayed,
        )
        await one.close()
        await two.close()
        assert "".join(chunks) == "".join(replayed) == REPLY
        assert len(upstream.received) == 2  # each answer was paid for once, by dp-1
        [paid, paid_stream] = await first.events(2)
        [hit, hit_stream] = await second.events(2)
        assert hit.cache_hit
        assert hit_stream.cache_hit
        assert hit.cost_saved_nano_usd == paid.cost_nano_usd > 0
        assert hit_stream.cost_saved_nano_usd == paid_stream.cost_nano_usd > 0
    redis = aioredis.Redis.from_url(REDIS_URL)
    stored = [key async for key in redis.scan_iter(match=f"{redis_prefix}*")]
    ttl = await redis.ttl(stored[0])
    await redis.aclose()
    assert len(stored) == 2
    assert 0 < ttl <= 300


async def test_a_failing_redis_never_fails_a_request(
    tmp_path: Path, upstream: FakeOpenAI, unused_tcp_port: int
) -> None:
    snapshot = cache_snapshot(upstream.base_url)
    dead = f"redis://127.0.0.1:{unused_tcp_port}/0"  # nothing listens there
    async with running_gateway(tmp_path / "dp", snapshot, cache_redis_url=dead) as gw:
        client = gw.openai(ACME_KEY)
        assert await ask(client) == (REPLY, "miss")
        assert await ask(client) == (REPLY, "miss")
        await client.close()
        metrics = await gw.metrics()
        events = await gw.events(2)
    assert len(upstream.received) == 2
    assert [e.status_code for e in events] == [200, 200]
    assert 'asc_dp_cache_backend_errors_total{backend="redis",operation="get"}' in metrics


async def test_a_hit_is_admitted_and_settled_at_no_tokens_and_no_cost(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    """Under a request rate limit, a token rate limit and a budget: the hit counts as a
    request and spends neither tokens nor money."""
    snapshot = cache_snapshot(upstream.base_url)
    kinds = {
        "l-requests": (snapshot_pb2.LIMIT_KIND_REQUESTS, snapshot_pb2.LIMIT_PERIOD_MINUTE),
        "l-tokens": (snapshot_pb2.LIMIT_KIND_TOKENS, snapshot_pb2.LIMIT_PERIOD_MINUTE),
        "l-budget": (snapshot_pb2.LIMIT_KIND_BUDGET, snapshot_pb2.LIMIT_PERIOD_NONE),
    }
    for limit_id, (kind, period) in kinds.items():
        snapshot.policy.limits.add(
            id=limit_id,
            tenant_id="t-acme",
            scope=snapshot_pb2.LIMIT_SCOPE_TENANT,
            subject_id="t-acme",
            kind=kind,
            period=period,
            time_zone="UTC",
            amount=10**12,
            hard=True,
        )
    snapshot = snapshots.snapshot_of(snapshot.policy, 3)
    async with running_gateway(tmp_path / "dp", snapshot, lease_source=GrantAll()) as gw:
        client = gw.openai(ACME_KEY)
        assert await ask(client) == (REPLY, "miss")
        leases = gw.app[ADMITTER].leases.book.leases
        after_miss = {limit_id: leases[limit_id].committed for limit_id in kinds}
        assert await ask(client) == (REPLY, "hit")
        await client.close()
        after_hit = {limit_id: leases[limit_id].committed for limit_id in kinds}
        paid, _ = await gw.events(2)
    assert after_miss["l-requests"] == 1
    assert after_miss["l-tokens"] == paid.prompt_tokens + paid.completion_tokens
    assert after_miss["l-budget"] == paid.cost_nano_usd > 0
    assert after_hit == {**after_miss, "l-requests": 2}


async def test_the_key_is_the_body_as_guarded_and_a_blocked_request_stays_blocked(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    """Input guardrails run before the lookup: two prompts that differ only in a redacted
    e-mail address are one request upstream (one entry); a payment card is refused every
    time, cached answer or not, and never stored."""
    snapshot = cache_snapshot(upstream.base_url)
    snapshot.policy.guardrails.add(
        id="g-pii",
        tenant_id="t-acme",
        route_id="r-acme-chat",
        on_input=True,
        categories=["email", "payment_card"],
        actions={"email": "redact", "payment_card": "block"},
        default_action="allow",
    )
    snapshot = snapshots.snapshot_of(snapshot.policy, 3)

    def asking(text: str) -> list[openai.types.chat.ChatCompletionMessageParam]:
        return [{"role": "user", "content": text}]

    async with running_gateway(tmp_path / "dp", snapshot) as gw:
        client = gw.openai(ACME_KEY)
        for mail, expected in (("ann@example.com", "miss"), ("bob@example.org", "hit")):
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=asking(f"Write to {mail} about lunch")
            )
            assert raw.headers.get("x-asc-cache") == expected
        card = asking("Charge 4111 1111 1111 1111 for lunch")
        for _ in range(2):
            with pytest.raises(openai.BadRequestError):
                await client.chat.completions.create(model="chat", messages=card)
        await client.close()
        events = await gw.events(4)
    assert len(upstream.received) == 1
    assert "example" not in upstream.received[0].raw.decode()
    assert [e.cache_hit for e in events] == [False, True, False, False]
    assert [e.status_code for e in events] == [200, 200, 400, 400]


async def test_anthropic_and_responses_answers_are_cached_in_their_own_dialects(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    claude, client = gateway.anthropic(ACME_KEY), gateway.openai(ACME_KEY)
    messages, responses = [], []
    for _ in range(2):
        raw = await claude.messages.with_raw_response.create(
            model="chat", max_tokens=50, messages=[{"role": "user", "content": "Hi there"}]
        )
        message = await raw.parse()
        messages.append((raw.headers.get("x-asc-cache"), message.content[0].text))  # type: ignore[union-attr]
        answer = await client.responses.with_raw_response.create(model="chat", input="Hi there")
        responses.append((answer.headers.get("x-asc-cache"), answer.parse().output_text))
    await claude.close()
    await client.close()
    assert messages == [("miss", REPLY), ("hit", REPLY)]
    assert responses == [("miss", REPLY), ("hit", REPLY)]
    assert len(upstream.received) == 2


async def test_an_answer_over_the_entry_limit_is_served_but_not_stored(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    snapshot = cache_snapshot(upstream.base_url)
    async with running_gateway(tmp_path / "dp", snapshot, cache_max_entry_bytes=64) as gw:
        client = gw.openai(ACME_KEY)
        for _ in range(2):
            assert await ask(client) == (REPLY, "miss")
            chunks: list[str] = []
            await collect(
                await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True),
                chunks,
            )
            assert "".join(chunks) == REPLY
        await client.close()
    assert len(upstream.received) == 4


async def test_a_changed_output_policy_is_not_served_answers_stored_under_the_old_one(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    def with_output_policy(actions: dict[str, str], version: int) -> snapshot_pb2.Snapshot:
        snapshot = cache_snapshot(upstream.base_url)
        snapshot.policy.guardrails.add(
            id="g-out",
            tenant_id="t-acme",
            route_id="r-acme-chat",
            on_output=True,
            categories=["email"],
            actions=actions,
            default_action="allow",
        )
        return snapshots.snapshot_of(snapshot.policy, version)

    async with running_gateway(tmp_path / "dp", with_output_policy({"email": "tag"}, 3)) as gw:
        client = gw.openai(ACME_KEY)
        assert await ask(client) == (REPLY, "miss")
        assert await ask(client) == (REPLY, "hit")
        store = gw.app[STORE]
        store.swap(await store.compile_serving(with_output_policy({"email": "redact"}, 4)))
        assert await ask(client) == (REPLY, "miss")
        assert await ask(client) == (REPLY, "hit")
        await client.close()
    assert len(upstream.received) == 2
