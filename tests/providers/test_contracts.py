"""Contract tests, one run per adapter against its fake provider (a real HTTP server that
refuses anything its real counterpart would), with the official openai SDK as the client of
the gateway: completions, streams, tools and tool results, usage with cached tokens and the
cost derived from it, JSON mode, images, embeddings, upstream errors, mid-stream faults, and a
clear 400 for what a provider cannot do. Every test ends by checking the fake saw no
malformed request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from shared.pricing import cost_nano_usd
from tests.fakes.base import Behaviour, ToolCall
from tests.providers.gateway import Gateway, collect, running_gateway
from tests.providers.wires import (
    ADAPTERS,
    KEY,
    PRICES,
    WITH_EMBEDDINGS,
    Wire,
    single_route,
    start_wire,
)

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello to the gateway"},
]
PROMPT_TOKENS = 7  # words in MESSAGES, as every fake counts them
REPLY = Behaviour().reply
REPLY_TOKENS = 5
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
PARIS = ToolCall("get_weather", {"city": "Paris"})
IMAGE = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture(params=ADAPTERS)
async def wire(request: pytest.FixtureRequest) -> AsyncIterator[Wire]:
    async with start_wire(request.param) as started:
        yield started
    assert started.fake.problems == [], "the adapter only sent well-formed requests"


@pytest.fixture
async def gateway(tmp_path: Path, wire: Wire) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path / "dp", single_route(wire)) as gw:
        yield gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[AsyncOpenAI]:
    sdk = gateway.openai(KEY)
    yield sdk
    await sdk.close()


def sent(wire: Wire) -> dict[str, Any]:
    (received,) = wire.fake.received
    assert isinstance(received.body, dict)
    return received.body


def assert_translated(wire: Wire, body: dict[str, Any]) -> None:
    """The request as this provider's wire format says it (system, limits, stop, sampling)."""
    if wire.name == "anthropic":
        assert body["system"] == [{"type": "text", "text": "Be brief."}]
        assert body["messages"] == [
            {"role": "user", "content": [{"type": "text", "text": "Say hello to the gateway"}]}
        ]
        assert (body["max_tokens"], body["stop_sequences"], body["temperature"]) == (
            50,
            ["END"],
            0.5,
        )
    elif wire.name == "gemini":
        assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert body["contents"] == [
            {"role": "user", "parts": [{"text": "Say hello to the gateway"}]}
        ]
        assert body["generationConfig"] == {
            "temperature": 0.5,
            "maxOutputTokens": 50,
            "stopSequences": ["END"],
        }
    else:
        assert body["messages"] == MESSAGES
        assert (body["max_tokens"], body["stop"], body["temperature"]) == (50, ["END"], 0.5)
        if wire.name == "azure_openai":
            assert "model" not in body, "the deployment is in the URL"
        else:
            assert body["model"] == wire.model


async def test_a_completion(client: AsyncOpenAI, gateway: Gateway, wire: Wire) -> None:
    completion = await client.chat.completions.create(
        model="chat", messages=MESSAGES, temperature=0.5, max_tokens=50, stop=["END"]
    )
    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason) == (REPLY, "stop")
    assert completion.model == "chat"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        PROMPT_TOKENS,
        REPLY_TOKENS,
    )
    assert_translated(wire, sent(wire))
    (event,) = await gateway.events(1)
    assert (event.model_id, event.status_code, event.stream) == (f"m-{wire.name}", 200, False)
    assert (event.prompt_tokens, event.completion_tokens) == (PROMPT_TOKENS, REPLY_TOKENS)


async def test_a_stream(client: AsyncOpenAI, gateway: Gateway, wire: Wire) -> None:
    stream = await client.chat.completions.create(
        model="chat",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.5,
        max_tokens=50,
        stop=["END"],
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.model for c in chunks} == {"chat"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (
        PROMPT_TOKENS,
        REPLY_TOKENS,
    )
    assert all(c.usage is None for c in chunks[:-1])
    assert_translated(wire, sent(wire))
    (event,) = await gateway.events(1)
    assert (event.stream, event.status_code, event.error_code) == (True, 200, "")
    assert (event.prompt_tokens, event.completion_tokens) == (PROMPT_TOKENS, REPLY_TOKENS)


async def test_tool_calls_and_tool_results(client: AsyncOpenAI, wire: Wire) -> None:
    wire.fake.script.append(Behaviour(tool_calls=(PARIS,)))
    question: ChatCompletionMessageParam = {"role": "user", "content": "Weather in Paris?"}
    completion = await client.chat.completions.create(
        model="chat", messages=[question], tools=[WEATHER], tool_choice="auto"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    first = wire.fake.received[0].body
    if wire.name == "anthropic":
        assert first["tools"] == [
            {
                "name": "get_weather",
                "description": "The weather in a city.",
                "input_schema": WEATHER["function"]["parameters"],
            }
        ]
        assert first["tool_choice"] == {"type": "auto"}
    elif wire.name == "gemini":
        (declaration,) = first["tools"][0]["functionDeclarations"]
        assert declaration["parametersJsonSchema"] == WEATHER["function"]["parameters"]
        assert first["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    else:
        assert first["tools"] == [WEATHER]

    answer = await client.chat.completions.create(
        model="chat",
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
        ],
    )
    assert answer.choices[0].message.content == REPLY
    second = wire.fake.received[1].body
    if wire.name == "anthropic":
        assert second["messages"][2] == {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": '{"temp_c": 21}'}
            ],
        }
    elif wire.name == "gemini":
        assert second["contents"][2] == {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}],
        }


async def test_streamed_tool_calls(client: AsyncOpenAI, wire: Wire) -> None:
    wire.fake.script.append(Behaviour(tool_calls=(PARIS,)))
    stream = await client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or ():
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    (call,) = calls.values()
    assert call["id"]
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}


async def test_cached_tokens_are_reported_and_priced(
    client: AsyncOpenAI, gateway: Gateway, wire: Wire
) -> None:
    wire.fake.script.append(Behaviour(cached_tokens=3))
    completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 3
    (event,) = await gateway.events(1)
    assert (event.prompt_tokens, event.cached_prompt_tokens) == (PROMPT_TOKENS, 3)
    assert event.cost_nano_usd == cost_nano_usd(
        prompt_tokens=PROMPT_TOKENS,
        completion_tokens=REPLY_TOKENS,
        cached_prompt_tokens=3,
        input_price=PRICES[0],
        output_price=PRICES[1],
        cached_input_price=PRICES[2],
    )
    assert event.cost_nano_usd == (4 * 2_000_000 + 3 * 500_000 + 5 * 8_000_000 + 500) // 1000


async def test_a_length_finish(client: AsyncOpenAI, wire: Wire) -> None:
    wire.fake.script.append(Behaviour(finish="length"))
    completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].finish_reason == "length"


@pytest.mark.parametrize(
    ("behaviour", "error", "status", "code"),
    [
        (
            Behaviour(status=429, retry_after="7"),
            openai.RateLimitError,
            429,
            "upstream_rate_limited",
        ),
        (Behaviour(status=500), openai.InternalServerError, 502, "upstream_error"),
        (
            Behaviour(status=400, error_message="no such thing"),
            openai.BadRequestError,
            400,
            "upstream_rejected",
        ),
        (Behaviour(cut=True), openai.InternalServerError, 502, "upstream_error"),
    ],
    ids=["429", "500", "400", "cut"],
)
async def test_upstream_errors(
    client: AsyncOpenAI,
    gateway: Gateway,
    wire: Wire,
    behaviour: Behaviour,
    error: type[openai.APIStatusError],
    status: int,
    code: str,
) -> None:
    wire.fake.script.append(behaviour)
    with pytest.raises(error) as info:
        await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert (info.value.status_code, info.value.code) == (status, code)
    if status == 429:
        assert info.value.response.headers["retry-after"] == "7", "the provider's Retry-After"
    if status == 400:
        assert "no such thing" in info.value.message, "the provider's own message"
    (event,) = await gateway.events(1)
    assert (event.status_code, event.error_code) == (status, code)


async def test_a_stream_failing_mid_way_ends_with_an_error(
    client: AsyncOpenAI, gateway: Gateway, wire: Wire
) -> None:
    # Events before the fault: the role chunk (or Anthropic's start events), "Hello", " from".
    after = {"anthropic": 5, "gemini": 2}.get(wire.name, 3)
    wire.fake.script.append(Behaviour(error_after_chunks=after))
    stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    text: list[str] = []
    with pytest.raises(openai.APIError) as info:
        await collect(stream, text)
    assert "".join(text) == "Hello from", "what came before the fault was passed on"
    assert isinstance(info.value.body, dict)
    assert info.value.body.get("code") == "upstream_error"
    (event,) = await gateway.events(1)
    assert event.error_code == "stream_interrupted"


async def test_a_stream_cut_before_its_first_token_is_a_502(
    client: AsyncOpenAI, wire: Wire
) -> None:
    wire.fake.script.append(Behaviour(drop_after_chunks=0))
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    assert (info.value.status_code, info.value.code) == (502, "upstream_error")


UNSUPPORTED: dict[str, tuple[dict[str, Any], str]] = {
    "openai": ({"extra_body": {"top_k": 5}}, "top_k"),
    "azure_openai": ({"extra_body": {"top_k": 5}}, "top_k"),
    "mistral": ({"logprobs": True}, "logprobs"),
    "anthropic": ({"response_format": {"type": "json_object"}}, "JSON mode"),
    "gemini": ({"logit_bias": {"50256": -100}}, "logit_bias"),
}


async def test_what_a_provider_cannot_do_is_a_clear_400(
    client: AsyncOpenAI, gateway: Gateway, wire: Wire
) -> None:
    if wire.name not in UNSUPPORTED:
        pytest.skip("an OpenAI-compatible server gets the body as the client sent it")
    extra, what = UNSUPPORTED[wire.name]
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="chat", messages=MESSAGES, **extra)
    assert info.value.code == "unsupported_by_provider"
    assert what in info.value.message
    assert wire.name in info.value.message
    assert wire.fake.received == [], "nothing was sent"
    (event,) = await gateway.events(1)
    assert (event.status_code, event.error_code) == (400, "unsupported_by_provider")


async def test_json_mode(client: AsyncOpenAI, wire: Wire) -> None:
    if wire.name == "anthropic":
        pytest.skip("Anthropic has no JSON mode: a 400, tested above")
    await client.chat.completions.create(
        model="chat", messages=MESSAGES, response_format={"type": "json_object"}
    )
    body = sent(wire)
    if wire.name == "gemini":
        assert body["generationConfig"] == {"responseMimeType": "application/json"}
    else:
        assert body["response_format"] == {"type": "json_object"}


async def test_images(client: AsyncOpenAI, wire: Wire) -> None:
    await client.chat.completions.create(
        model="chat",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": IMAGE}},
                ],
            }
        ],
    )
    body = sent(wire)
    if wire.name == "anthropic":
        source = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
        assert body["messages"][0]["content"][1] == {"type": "image", "source": source}
    elif wire.name == "gemini":
        inline = {"mimeType": "image/png", "data": "iVBORw0KGgo="}
        assert body["contents"][0]["parts"][1] == {"inlineData": inline}
    else:
        assert body["messages"][0]["content"][1]["image_url"] == {"url": IMAGE}


def fake_vector(text: str, index: int, size: int = 4) -> list[float]:
    base = [float(len(text)), float(index), 0.5, -0.25]
    return (base * (size // 4 + 1))[:size]


@pytest.mark.parametrize("encoding", ["base64", "float"])
async def test_embeddings(client: AsyncOpenAI, gateway: Gateway, wire: Wire, encoding: str) -> None:
    if wire.name not in WITH_EMBEDDINGS:
        with pytest.raises(openai.BadRequestError) as info:
            await client.embeddings.create(model="embed", input=["one two", "three"])
        assert info.value.code == "unsupported_by_provider"
        assert "embeddings" in info.value.message
        return
    extra: dict[str, Any] = (
        {} if encoding == "base64" else {"encoding_format": "float", "dimensions": 6}
    )
    result = await client.embeddings.create(model="embed", input=["one two", "three"], **extra)
    size = 4 if encoding == "base64" else 6
    assert [d.embedding for d in result.data] == [
        fake_vector("one two", 0, size),
        fake_vector("three", 1, size),
    ]
    assert result.model == "embed"
    expected_tokens = 3 if wire.name != "gemini" else 4  # Gemini reports none: ~4 chars a token
    assert result.usage.prompt_tokens == expected_tokens
    (event,) = await gateway.events(1)
    assert (event.route_name, event.prompt_tokens, event.completion_tokens) == (
        "embed",
        expected_tokens,
        0,
    )
