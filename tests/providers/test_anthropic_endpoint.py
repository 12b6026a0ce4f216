"""The Anthropic-compatible endpoint ``/v1/messages`` driven by the official anthropic SDK:
with an OpenAI-format provider behind it (messages, streams, tools and tool results, usage,
errors and mid-stream faults in Anthropic's own format), with an Anthropic provider behind it,
and under the same policies as ``/v1/chat/completions`` (authorization, guardrails)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, ToolParam

from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import Behaviour, ToolCall
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.gateway import Gateway, running_gateway

KEY = "sk-asc-acme-messages"
OPENAI_UPSTREAM = "sk-upstream-openai-msg"
ANTHROPIC_UPSTREAM = "sk-upstream-anthropic-msg"
REPLY = Behaviour().reply
QUESTION: list[MessageParam] = [{"role": "user", "content": "Say hello to the gateway"}]
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
PARIS = ToolCall("get_weather", {"city": "Paris"})


def gateway_snapshot(openai_url: str, anthropic_url: str) -> snapshot_pb2.Snapshot:
    """Route "gpt" to an OpenAI provider, "claude" to an Anthropic one, "guarded" (to the
    OpenAI one) under a guardrail blocking e-mail addresses; "other" is not granted."""
    builder = (
        snapshots.PolicyBuilder()
        .tenant("t-acme")
        .provider("p-openai", kind=snapshot_pb2.PROVIDER_KIND_OPENAI, base_url=openai_url)
        .provider("p-anthropic", kind=snapshot_pb2.PROVIDER_KIND_ANTHROPIC, base_url=anthropic_url)
        .credential("c-openai", "t-acme", "p-openai", OPENAI_UPSTREAM)
        .credential("c-anthropic", "t-acme", "p-anthropic", ANTHROPIC_UPSTREAM)
        .model("m-gpt", "p-openai", "gpt-fake")
        .model("m-claude", "p-anthropic", "claude-fake")
        .route("r-gpt", "t-acme", "gpt", [("m-gpt", "c-openai")])
        .route("r-claude", "t-acme", "claude", [("m-claude", "c-anthropic")])
        .route("r-guarded", "t-acme", "guarded", [("m-gpt", "c-openai")])
        .route("r-other", "t-acme", "other", [("m-gpt", "c-openai")])
        .key("k-acme", "t-acme", KEY, ["r-gpt", "r-claude", "r-guarded"])
    )
    builder.policy.guardrails.add(
        id="g-mail",
        tenant_id="t-acme",
        route_id="r-guarded",
        on_input=True,
        categories=["email"],
        default_action="block",
    )
    return builder.snapshot(version=5)


@pytest.fixture
async def gpt() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=OPENAI_UPSTREAM, model="gpt-fake") as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=ANTHROPIC_UPSTREAM, model="claude-fake") as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
async def gateway(tmp_path: Path, gpt: FakeOpenAI, claude: FakeAnthropic) -> AsyncIterator[Gateway]:
    async with running_gateway(
        tmp_path / "dp", gateway_snapshot(gpt.base_url, claude.base_url)
    ) as gw:
        yield gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[AsyncAnthropic]:
    sdk = gateway.anthropic(KEY)
    yield sdk
    await sdk.close()


async def test_a_message_through_an_openai_provider(
    client: AsyncAnthropic, gateway: Gateway, gpt: FakeOpenAI
) -> None:
    message = await client.messages.create(
        model="gpt",
        max_tokens=50,
        system="Be brief.",
        messages=QUESTION,
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
        extra_body={"temperature": 0.5},  # older API versions' sampling parameter
    )
    assert (message.type, message.role) == ("message", "assistant")
    assert message.model == "gpt"
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", REPLY)]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 5)
    assert message.id.startswith("msg_")
    (sent,) = gpt.received
    assert sent.body == {
        "model": "gpt-fake",
        "max_tokens": 50,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello to the gateway"},
        ],
        "temperature": 0.5,
        "stop": ["END"],
        "user": "user-7",
        "stream": False,
    }
    (event,) = await gateway.events(1)
    assert (event.route_name, event.model_id, event.status_code) == ("gpt", "m-gpt", 200)
    assert (event.prompt_tokens, event.completion_tokens) == (7, 5)


async def test_a_streamed_message(client: AsyncAnthropic, gateway: Gateway) -> None:
    async with client.messages.stream(
        model="gpt", max_tokens=50, system="Be brief.", messages=QUESTION
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == REPLY
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 5)
    assert final.model == "gpt"

    raw = await client.messages.create(model="gpt", max_tokens=50, messages=QUESTION, stream=True)
    kinds = [event.type async for event in raw]
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    first, _ = await gateway.events(2)
    assert (first.stream, first.prompt_tokens, first.completion_tokens) == (True, 7, 5)


async def test_tool_use_and_tool_results(client: AsyncAnthropic, gpt: FakeOpenAI) -> None:
    gpt.script.append(Behaviour(tool_calls=(PARIS,)))
    question: list[MessageParam] = [{"role": "user", "content": "Weather in Paris?"}]
    message = await client.messages.create(
        model="gpt",
        max_tokens=50,
        messages=question,
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": "Paris"})
    first = gpt.received[0].body
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "The weather in a city.",
            },
        }
    ]
    assert (first["tool_choice"], first["parallel_tool_calls"]) == ("required", False)

    answer = await client.messages.create(
        model="gpt",
        max_tokens=50,
        tools=[WEATHER],
        messages=[
            *question,
            {"role": "assistant", "content": [block.model_dump()]},  # type: ignore[list-item]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": block.id, "content": "21 C"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    )
    assert answer.content[0].type == "text"
    second = gpt.received[1].body["messages"]
    assert second[1]["tool_calls"][0]["id"] == block.id
    assert second[2:] == [
        {"role": "tool", "tool_call_id": block.id, "content": "21 C"},
        {"role": "user", "content": "And tomorrow?"},
    ]


async def test_streamed_tool_use(client: AsyncAnthropic, gpt: FakeOpenAI) -> None:
    gpt.script.append(Behaviour(tool_calls=(PARIS,)))
    async with client.messages.stream(
        model="gpt", max_tokens=50, messages=QUESTION, tools=[WEATHER]
    ) as stream:
        final = await stream.get_final_message()
    (block,) = final.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": "Paris"})
    assert final.stop_reason == "tool_use"


async def test_the_anthropic_sdk_to_an_anthropic_provider(
    client: AsyncAnthropic, claude: FakeAnthropic
) -> None:
    claude.script.append(Behaviour(cached_tokens=2))
    message = await client.messages.create(
        model="claude", max_tokens=50, system="Be brief.", messages=QUESTION
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == REPLY
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (5, 2)
    async with client.messages.stream(model="claude", max_tokens=50, messages=QUESTION) as stream:
        assert "".join([t async for t in stream.text_stream]) == REPLY
    first = claude.received[0]
    assert first.headers["x-api-key"] == ANTHROPIC_UPSTREAM
    # Forwarded as the client sent it: only the model is the upstream's.
    assert first.body == {
        "model": "claude-fake",
        "max_tokens": 50,
        "system": "Be brief.",
        "messages": QUESTION,
    }


async def post(gateway: Gateway, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("api_key", "model", "error", "status", "kind", "code"),
    [
        (
            "sk-asc-wrong",
            "gpt",
            anthropic.AuthenticationError,
            401,
            "authentication_error",
            "invalid_api_key",
        ),
        (
            KEY,
            "other",
            anthropic.PermissionDeniedError,
            403,
            "permission_error",
            "model_not_allowed",
        ),
        (KEY, "nope", anthropic.NotFoundError, 404, "not_found_error", "model_not_found"),
    ],
)
async def test_refusals_are_anthropic_errors(
    gateway: Gateway,
    gpt: FakeOpenAI,
    api_key: str,
    model: str,
    error: type[anthropic.APIStatusError],
    status: int,
    kind: str,
    code: str,
) -> None:
    sdk = gateway.anthropic(api_key)
    try:
        with pytest.raises(error) as info:
            await sdk.messages.create(model=model, max_tokens=10, messages=QUESTION)
    finally:
        await sdk.close()
    assert info.value.status_code == status
    assert info.value.body == {
        "type": "error",
        "error": {"type": kind, "message": info.value.body["error"]["message"], "code": code},  # type: ignore[index]
    }
    assert gpt.received == []


async def test_a_key_in_x_api_key_and_malformed_requests(gateway: Gateway) -> None:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    status, body = await post(gateway, {"model": "gpt", "messages": QUESTION}, headers)
    assert status == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    request = {"model": "gpt", "max_tokens": 10, "messages": QUESTION, "thinking": thinking}
    status, body = await post(gateway, request, headers)
    assert (status, body["error"]["type"]) == (400, "invalid_request_error")
    assert "thinking" in body["error"]["message"]
    status, body = await post(gateway, {"model": "gpt", "max_tokens": 10}, {"x-api-key": "nope"})
    assert (status, body["error"]["type"]) == (401, "authentication_error")


@pytest.mark.parametrize(
    ("behaviour", "error", "status", "kind"),
    [
        (Behaviour(status=429, retry_after="3"), anthropic.RateLimitError, 429, "rate_limit_error"),
        (Behaviour(status=503), anthropic.InternalServerError, 502, "api_error"),
    ],
)
async def test_upstream_failures_are_anthropic_errors(
    client: AsyncAnthropic,
    gpt: FakeOpenAI,
    behaviour: Behaviour,
    error: type[anthropic.APIStatusError],
    status: int,
    kind: str,
) -> None:
    gpt.script.append(behaviour)
    with pytest.raises(error) as info:
        await client.messages.create(model="gpt", max_tokens=10, messages=QUESTION)
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == kind
    if status == 429:
        assert info.value.response.headers["retry-after"] == "3"


async def test_a_stream_failing_mid_way_ends_with_an_anthropic_error_event(
    client: AsyncAnthropic, gateway: Gateway, gpt: FakeOpenAI
) -> None:
    gpt.script.append(Behaviour(error_after_chunks=3))
    text: list[str] = []

    async def read() -> None:
        async with client.messages.stream(model="gpt", max_tokens=50, messages=QUESTION) as stream:
            async for piece in stream.text_stream:
                text.append(piece)  # keeps what came before the error

    with pytest.raises(anthropic.APIStatusError) as info:
        await read()
    assert "".join(text) == "Hello from"
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "api_error"
    (event,) = await gateway.events(1)
    assert event.error_code == "stream_interrupted"


async def test_guardrails_hold_on_the_messages_endpoint(
    client: AsyncAnthropic, gateway: Gateway, gpt: FakeOpenAI
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(
            model="guarded",
            max_tokens=10,
            messages=[{"role": "user", "content": "Mail jane.doe@example.com the report"}],
        )
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["code"] == "guardrail_blocked"
    assert gpt.received == []
    (event,) = await gateway.events(1)
    assert (event.route_name, event.status_code, event.error_code) == (
        "guarded",
        400,
        "guardrail_blocked",
    )
