"""OpenAI's chat API forwarded as it is to OpenAI-family upstreams, and the objects ASC
builds itself carrying OpenAI's required fields: ``GET /v1/models/{id}``, ``message.refusal``
in the mock's and the translations' answers."""

from __future__ import annotations

import aiohttp
import openai
import orjson
import pytest

from shared.pb import snapshot_pb2
from tests.fakes.openai_server import FakeOpenAI
from tests.providers import upstreams
from tests.providers.gateway import Gateway

# The shared fixtures this module uses (tests.providers.upstreams).
gpt, claude, gateway, openai_client = (
    upstreams.gpt,
    upstreams.claude,
    upstreams.gateway,
    upstreams.openai_client,
)

KEY = "sk-asc-acme-openai-native"
ASSERTING_KEY = "sk-asc-acme-openai-asserts"
OPENAI_UPSTREAM = "sk-upstream-openai-on"
ANTHROPIC_UPSTREAM = "sk-upstream-anthropic-on"


def make_snapshot(openai_url: str, anthropic_url: str) -> snapshot_pb2.Snapshot:
    builder = (
        upstreams.three_routes(openai_url, anthropic_url, OPENAI_UPSTREAM, ANTHROPIC_UPSTREAM)
        .route("r-hidden", "t-acme", "hidden", [("m-mock", "c-mock")])
        .key("k-acme", "t-acme", KEY, ["r-gpt", "r-claude", "r-mock"])
        .key("k-asserts", "t-acme", ASSERTING_KEY, ["r-gpt", "r-mock"])
    )
    builder.policy.keys[-1].asserts_end_user = True
    return builder.snapshot(version=2)


async def test_a_model_is_retrieved_by_name(openai_client: openai.AsyncOpenAI) -> None:
    model = await openai_client.models.retrieve("mock")
    assert (model.id, model.object, model.owned_by) == ("mock", "model", "acme")
    for name in ("nope", "hidden"):  # unknown, and not granted to this key: the same 404
        with pytest.raises(openai.NotFoundError) as caught:
            await openai_client.models.retrieve(name)
        assert caught.value.code == "model_not_found"


async def test_answers_built_by_asc_carry_refusal_null(openai_client: openai.AsyncOpenAI) -> None:
    for model in ("mock", "claude"):  # the mock's own, and one translated from Anthropic
        raw = await openai_client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
        body = orjson.loads(raw.content)
        message = body["choices"][0]["message"]
        assert "refusal" in message, model
        assert message["refusal"] is None
        assert body["choices"][0]["logprobs"] is None


async def test_a_chat_request_reaches_an_openai_upstream_byte_for_byte(
    gateway: Gateway, gpt: FakeOpenAI
) -> None:
    raw = (
        b'{"model": "gpt", "messages": [{"role": "user", "content": "hi"}], '
        b'"temperature": 0.25, "metadata": {"trace": "t-1"}, "store": false}'
    )
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/chat/completions", data=raw, headers=headers) as response,
    ):
        assert response.status == 200
        answer = await response.json()
    (sent,) = gpt.received
    assert sent.raw == raw.replace(b'"model": "gpt"', b'"model":"gpt-fake"')
    assert answer["model"] == "gpt", "the client sees the route's name"


async def test_a_stream_without_include_usage_gets_no_usage_chunk(
    openai_client: openai.AsyncOpenAI, gateway: Gateway, gpt: FakeOpenAI
) -> None:
    stream = await openai_client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.model == "gpt" for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    sent = gpt.received[0].body
    assert sent["stream_options"] == {"include_usage": True}, "the gateway meters usage"
    (event,) = await gateway.events(1)
    assert event.completion_tokens > 0


async def test_the_end_user_a_body_names_is_recorded_when_the_key_may_assert_it(
    gateway: Gateway,
) -> None:
    requests = [
        (
            "/v1/chat/completions",
            {
                "model": "gpt",
                "messages": [{"role": "user", "content": "hi"}],
                "safety_identifier": "user-7",
            },
        ),
        ("/v1/responses", {"model": "mock", "input": "hi", "user": "user-8"}),
    ]
    async with aiohttp.ClientSession() as session:
        for key in (ASSERTING_KEY, KEY):
            for path, body in requests:
                headers = {"Authorization": f"Bearer {key}"}
                async with session.post(f"{gateway.url}{path}", json=body, headers=headers) as r:
                    assert r.status == 200
    events = await gateway.events(4)
    assert [e.subject for e in events] == ["user-7", "user-8", "", ""]
