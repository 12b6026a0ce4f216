"""A key's own caps, through a real data plane in front of a fake OpenAI upstream: at most
``max_parallel`` requests in flight, bodies of at most ``max_body_bytes``, completions of at
most ``max_tokens``. A refusal is an error in the client's format (OpenAI's, Anthropic's on
/v1/messages), nothing reaches the upstream, and another key of the same tenant is not held
to the caps."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from data_plane.http.appkeys import ADMITTER
from data_plane.limits.leases import Lease
from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.data_plane.budgets import QUESTION, UPSTREAM_KEY, UPSTREAM_MODEL, GrantAll, chat, post
from tests.data_plane.waiting import eventually
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.providers.gateway import Gateway, running_gateway

CAPPED_KEY = "sk-asc-acme-capped"
FREE_KEY = "sk-asc-acme-free"
MAX_PARALLEL = 2
MAX_BODY_BYTES = 1_000
MAX_TOKENS = 100
TOKENS_LIMIT = "l-capped-tokens"
# The scripted behaviour of a request the upstream holds until the test releases it.
HELD = Behaviour(latency_s=1.0)


class HeldOpenAI(FakeOpenAI):
    """A fake OpenAI whose requests scripted with a latency wait for ``release`` instead."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.release = asyncio.Event()

    async def pause(self, seconds: float) -> None:
        await self.release.wait()


def capped_snapshot(base_url: str) -> snapshot_pb2.Snapshot:
    """Tenant acme with a "chat" route on the upstream and two keys: one with every cap (and
    a tokens-per-minute limit, so its reservations can be seen), one with none."""
    builder = (
        snapshots.PolicyBuilder()
        .tenant("t-acme")
        .provider("p-main", kind=snapshots.OPENAI_COMPATIBLE, base_url=base_url)
        .credential("c-acme", "t-acme", "p-main", UPSTREAM_KEY)
        .model("m-main", "p-main", UPSTREAM_MODEL)
        .route("r-chat", "t-acme", "chat", [("m-main", "c-acme")])
        .key("k-capped", "t-acme", CAPPED_KEY, ["r-chat"])
        .key("k-free", "t-acme", FREE_KEY, ["r-chat"])
    )
    capped = builder.policy.keys[0]
    capped.max_parallel, capped.max_body_bytes, capped.max_tokens = (
        MAX_PARALLEL,
        MAX_BODY_BYTES,
        MAX_TOKENS,
    )
    builder.policy.limits.add(
        id=TOKENS_LIMIT,
        tenant_id="t-acme",
        scope=snapshot_pb2.LIMIT_SCOPE_KEY,
        subject_id="k-capped",
        kind=snapshot_pb2.LIMIT_KIND_TOKENS,
        period=snapshot_pb2.LIMIT_PERIOD_MINUTE,
        amount=10**9,
        hard=True,
    )
    return builder.snapshot()


@pytest.fixture
async def upstream() -> AsyncIterator[HeldOpenAI]:
    async with HeldOpenAI(api_key=UPSTREAM_KEY, model=UPSTREAM_MODEL) as fake:
        yield fake
        fake.release.set()
    assert fake.problems == [], "the gateway sent the upstream only well-formed requests"


@pytest.fixture
async def gateway(tmp_path: Path, upstream: HeldOpenAI) -> AsyncIterator[Gateway]:
    snapshot = capped_snapshot(upstream.base_url)
    async with running_gateway(tmp_path, snapshot, lease_source=GrantAll()) as gw:
        yield gw


def messages(max_tokens: int = 50) -> dict[str, Any]:
    """An Anthropic Messages request (which must name its max_tokens)."""
    return {"model": "chat", "max_tokens": max_tokens, "messages": QUESTION}


def of_size(size: int, body: dict[str, Any]) -> bytes:
    """The JSON of ``body`` with its first message's text padded to make it ``size`` bytes."""
    padded = copy.deepcopy(body)
    padded["messages"][0]["content"] += "x" * (size - len(orjson.dumps(body)))
    encoded = orjson.dumps(padded)
    assert len(encoded) == size
    return encoded


def tokens_lease(gateway: Gateway) -> Lease:
    return gateway.app[ADMITTER].leases.book.leases[TOKENS_LIMIT]


# max_parallel


async def test_a_keys_request_past_max_parallel_is_refused_and_other_keys_are_not(
    gateway: Gateway, upstream: HeldOpenAI
) -> None:
    upstream.script.extend([HELD] * MAX_PARALLEL)
    held = [asyncio.create_task(post(gateway, CAPPED_KEY, chat())) for _ in range(MAX_PARALLEL)]
    await eventually(lambda: len(upstream.received) == MAX_PARALLEL, "two requests upstream")

    async with gateway.openai(CAPPED_KEY) as client:
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "Hello?"}]
            )
    assert refused.value.code == "too_many_parallel_requests"
    assert refused.value.type == "rate_limit_error"
    assert str(MAX_PARALLEL) in refused.value.message
    assert refused.value.response.headers["Retry-After"] == "1"
    assert len(upstream.received) == MAX_PARALLEL, "the refused request never went upstream"

    status, body = await post(gateway, FREE_KEY, chat())  # the same tenant, another key
    assert status == 200, body
    assert len(upstream.received) == MAX_PARALLEL + 1

    upstream.release.set()
    assert [status for status, _ in await asyncio.gather(*held)] == [200] * MAX_PARALLEL
    status, _ = await post(gateway, CAPPED_KEY, chat())
    assert status == 200, "the slots are given back when the requests end"
    events = await gateway.events(5)
    assert [e.error_code for e in events if e.status_code == 429] == ["too_many_parallel_requests"]


async def test_the_parallel_cap_holds_on_the_anthropic_endpoint_in_its_format(
    gateway: Gateway, upstream: HeldOpenAI
) -> None:
    upstream.script.extend([HELD] * MAX_PARALLEL)
    held = [
        asyncio.create_task(post(gateway, CAPPED_KEY, messages(), "/v1/messages"))
        for _ in range(MAX_PARALLEL)
    ]
    await eventually(lambda: len(upstream.received) == MAX_PARALLEL, "two requests upstream")
    status, body = await post(gateway, CAPPED_KEY, messages(), "/v1/messages")
    assert status == 429, body
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "too_many_parallel_requests"
    assert len(upstream.received) == MAX_PARALLEL
    upstream.release.set()
    assert [status for status, _ in await asyncio.gather(*held)] == [200] * MAX_PARALLEL


# max_body_bytes


async def test_a_body_past_max_body_bytes_is_refused_with_413(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    status, body = await post(gateway, CAPPED_KEY, of_size(MAX_BODY_BYTES + 1, chat()))
    assert status == 413, body
    assert body["error"]["code"] == "request_too_large"
    assert body["error"]["type"] == "invalid_request_error"
    assert str(MAX_BODY_BYTES) in body["error"]["message"]
    assert upstream.received == [], "nothing past the cap reaches the upstream"

    status, body = await post(gateway, CAPPED_KEY, of_size(MAX_BODY_BYTES, chat()))
    assert status == 200, body
    status, body = await post(gateway, FREE_KEY, of_size(MAX_BODY_BYTES + 1, chat()))
    assert status == 200, "a key without the cap is not refused"
    assert len(upstream.received) == 2


async def test_a_body_past_max_body_bytes_on_messages_is_refused_in_anthropics_format(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    status, body = await post(
        gateway, CAPPED_KEY, of_size(MAX_BODY_BYTES + 1, messages()), "/v1/messages"
    )
    assert status == 413, body
    assert body["type"] == "error"
    assert body["error"]["type"] == "request_too_large"
    assert body["error"]["code"] == "request_too_large"
    assert upstream.received == []

    at_cap = of_size(MAX_BODY_BYTES, messages())
    status, body = await post(gateway, CAPPED_KEY, at_cap, "/v1/messages")
    assert status == 200, body
    assert body["type"] == "message"
    assert len(upstream.received) == 1


# max_tokens


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_past_the_cap_is_refused(
    gateway: Gateway, upstream: FakeOpenAI, name: str
) -> None:
    status, body = await post(gateway, CAPPED_KEY, chat(**{name: MAX_TOKENS + 1}))
    assert status == 400, body
    assert body["error"]["code"] == "max_tokens_too_large"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "max_tokens"
    assert upstream.received == [], "nothing past the cap reaches the upstream"


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("asked", [MAX_TOKENS, MAX_TOKENS - 1])
async def test_max_tokens_at_or_under_the_cap_is_served(
    gateway: Gateway, upstream: FakeOpenAI, name: str, asked: int
) -> None:
    status, body = await post(gateway, CAPPED_KEY, chat(**{name: asked}))
    assert status == 200, body
    assert [r.body[name] for r in upstream.received] == [asked]


async def test_a_key_without_the_cap_may_ask_for_more(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    status, body = await post(gateway, FREE_KEY, chat(max_tokens=MAX_TOKENS * 10))
    assert status == 200, body
    assert len(upstream.received) == 1


async def test_max_tokens_on_messages_is_capped_in_anthropics_format(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    over = messages(max_tokens=MAX_TOKENS + 1)
    status, body = await post(gateway, CAPPED_KEY, over, "/v1/messages")
    assert status == 400, body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "max_tokens_too_large"
    assert upstream.received == []

    at_cap = messages(max_tokens=MAX_TOKENS)
    status, body = await post(gateway, CAPPED_KEY, at_cap, "/v1/messages")
    assert status == 200, body
    assert len(upstream.received) == 1


@pytest.mark.parametrize(("extra", "completion"), [({}, MAX_TOKENS), ({"max_tokens": 7}, 7)])
async def test_a_request_is_reserved_at_its_max_tokens_or_else_at_the_keys_cap(
    gateway: Gateway, upstream: HeldOpenAI, extra: dict[str, int], completion: int
) -> None:
    """The worst case held while the request runs: its body's bytes (a token is at least a
    byte) plus the completion it may get; the actual usage replaces it at the end."""
    raw = orjson.dumps(chat(**extra))
    upstream.script.append(HELD)
    request = asyncio.create_task(post(gateway, CAPPED_KEY, raw))
    await eventually(lambda: upstream.received, "the request is upstream")
    assert tokens_lease(gateway).committed == len(raw) + completion

    upstream.release.set()
    status, body = await request
    assert status == 200, body
    event = (await gateway.events(1))[0]
    used = event.prompt_tokens + event.completion_tokens
    assert used > 0
    assert tokens_lease(gateway).committed == used, "settled to what was used"
