"""Anthropic's Messages API forwarded as it is to an Anthropic upstream, driven by the
official anthropic SDK the way Claude Code drives it: extended thinking with signatures
passed back, ``cache_control`` with ``ttl``, ``context_management``, ``metadata.user_id``,
documents, server tools, beta headers, streamed; ``count_tokens``; what happens when such a
request goes to a provider that cannot take it; end-user attribution from the body."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from anthropic import AsyncAnthropic

from shared.pb import snapshot_pb2
from tests.fakes.anthropic_server import FakeAnthropic, prompt_tokens
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI
from tests.providers import upstreams
from tests.providers.gateway import Gateway

# The shared fixtures this module uses (tests.providers.upstreams).
gpt, claude, gateway, anthropic_client = (
    upstreams.gpt,
    upstreams.claude,
    upstreams.gateway,
    upstreams.anthropic_client,
)

KEY = "sk-asc-acme-native"
ASSERTING_KEY = "sk-asc-acme-asserts"
OPENAI_UPSTREAM = "sk-upstream-openai-native"
ANTHROPIC_UPSTREAM = "sk-upstream-anthropic-native"
THOUGHT = "The user greets the gateway; a short greeting back will do."
BETAS = "interleaved-thinking-2025-05-14,context-management-2025-06-27"
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}
CONTEXT = {"edits": [{"type": "clear_tool_uses_20250919"}]}


def make_snapshot(openai_url: str, anthropic_url: str) -> snapshot_pb2.Snapshot:
    builder = (
        upstreams.three_routes(openai_url, anthropic_url, OPENAI_UPSTREAM, ANTHROPIC_UPSTREAM)
        # Anthropic first, OpenAI behind it: a thinking request can only use the first.
        .route(
            "r-mixed",
            "t-acme",
            "mixed",
            [("m-claude", "c-anthropic", 0, 1), ("m-gpt", "c-openai", 1, 1)],
        )
        .key("k-acme", "t-acme", KEY, ["r-claude", "r-gpt", "r-mock", "r-mixed"])
        .key("k-asserts", "t-acme", ASSERTING_KEY, ["r-claude"])
    )
    builder.policy.keys[-1].asserts_end_user = True
    return builder.snapshot(version=3)


def claude_code_request(**extra: Any) -> dict[str, Any]:
    """A request shaped like Claude Code's: system blocks with cache_control (ttl), thinking,
    context management, metadata.user_id, tools with cache_control, a server tool."""
    return {
        "model": "claude",
        "max_tokens": 4096,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {
                "type": "text",
                "text": "Project instructions: be brief.",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "README"},
                        "title": "README.md",
                        "citations": {"enabled": True},
                    },
                    {
                        "type": "text",
                        "text": "Say hello to the gateway",
                        "cache_control": {"type": "ephemeral", "ttl": "5m"},
                    },
                ],
            }
        ],
        "tools": [
            {
                "name": "Bash",
                "description": "Run a shell command.",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        ],
        "thinking": THINKING,
        "context_management": CONTEXT,
        "metadata": {"user_id": "user_abc_account_def_session_123"},
        **extra,
    }


def without_model(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "model"}


async def test_thinking_with_signatures_passed_back_on_the_next_turn(
    anthropic_client: AsyncAnthropic, claude: FakeAnthropic, gateway: Gateway
) -> None:
    claude.script.append(Behaviour(thinking=THOUGHT))
    first = await anthropic_client.messages.create(
        model="claude",
        max_tokens=4096,
        thinking=THINKING,
        messages=[{"role": "user", "content": "Say hello to the gateway"}],
    )
    thought, text = first.content
    assert thought.type == "thinking"
    assert thought.thinking == THOUGHT
    assert thought.signature.startswith("sig-")
    assert text.type == "text"
    assert first.model == "claude", "the client sees the route's name"
    # The next turn passes the thinking block back with its signature; the fake checks it.
    second = await anthropic_client.messages.create(
        model="claude",
        max_tokens=4096,
        thinking=THINKING,
        messages=[
            {"role": "user", "content": "Say hello to the gateway"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},  # type: ignore[list-item]  # the SDK's own blocks, passed back
            {"role": "user", "content": "Again, please."},
        ],
    )
    assert second.content[0].type == "text"
    sent = claude.received[1].body
    assert sent["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": THOUGHT,
        "signature": thought.signature,
    }
    events = await gateway.events(2)
    assert [e.route_name for e in events] == ["claude", "claude"]
    assert events[0].completion_tokens > 0


async def test_a_claude_code_request_streamed_reaches_the_upstream_whole(
    gateway: Gateway, claude: FakeAnthropic
) -> None:
    claude.script.append(Behaviour(thinking=THOUGHT, cached_tokens=2))
    body = claude_code_request(stream=True)
    headers = {
        "x-api-key": KEY,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": BETAS,
        "content-type": "application/json",
    }
    raw = orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/messages", data=raw, headers=headers) as response,
    ):
        assert response.status == 200
        stream = await response.read()
    (sent,) = claude.received
    assert without_model(sent.body) == without_model(body), "every field the client sent"
    assert sent.body["model"] == "claude-fake"
    assert sent.headers["anthropic-beta"] == BETAS
    assert sent.headers["anthropic-version"] == "2023-06-01"
    events = [orjson.loads(line[6:]) for line in stream.split(b"\n") if line.startswith(b"data: ")]
    start = events[0]
    assert start["type"] == "message_start"
    expected_input = prompt_tokens(body) - 2
    assert start["message"]["usage"]["input_tokens"] == expected_input, "the real count"
    assert start["message"]["model"] == "claude"
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert deltas[:2] == ["thinking_delta", "signature_delta"]
    assert events[-1]["type"] == "message_stop"
    (event,) = await gateway.events(1)
    assert (event.stream, event.prompt_tokens, event.cached_prompt_tokens) == (
        True,
        prompt_tokens(body),
        2,
    )


async def test_the_sdk_streams_a_claude_code_request(
    anthropic_client: AsyncAnthropic, claude: FakeAnthropic
) -> None:
    claude.script.append(Behaviour(thinking=THOUGHT))
    request = claude_code_request()
    async with anthropic_client.beta.messages.stream(
        model=request["model"],
        max_tokens=request["max_tokens"],
        system=request["system"],
        messages=request["messages"],
        tools=request["tools"],
        thinking=request["thinking"],
        context_management=request["context_management"],
        metadata=request["metadata"],
        betas=BETAS.split(","),
    ) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    (sent,) = claude.received
    assert without_model(sent.body) == {**without_model(request), "stream": True}
    assert sent.headers["anthropic-beta"] == BETAS


async def test_the_body_is_forwarded_byte_for_byte_but_for_the_model(
    gateway: Gateway, claude: FakeAnthropic
) -> None:
    """A field the gateway knows nothing about, and the exact bytes, reach the upstream."""
    raw = b'{"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], "service_tier": "auto"}'  # noqa: E501
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/messages", data=raw, headers=headers) as response,
    ):
        assert response.status == 200
    (sent,) = claude.received
    assert sent.raw == raw.replace(b'"model": "claude"', b'"model":"claude-fake"')


async def test_count_tokens_native_and_estimated(
    anthropic_client: AsyncAnthropic, gateway: Gateway
) -> None:
    messages: list[Any] = [{"role": "user", "content": "Say hello to the gateway"}]
    counted = await anthropic_client.messages.count_tokens(model="claude", messages=messages)
    assert counted.input_tokens == 5, "the upstream's own count"
    raw = await anthropic_client.messages.with_raw_response.count_tokens(
        model="gpt", messages=messages
    )
    assert raw.headers["x-asc-token-count"] == "estimate"
    assert raw.headers["x-asc-tokenizer"] == "o200k_base"
    assert (await raw.parse()).input_tokens == 5 + 3, "the shipped tokenizer's 5, and framing"
    with pytest.raises(anthropic.NotFoundError):
        await anthropic_client.messages.count_tokens(model="nope", messages=messages)


@pytest.mark.parametrize(
    ("extra", "feature"),
    [
        ({"thinking": THINKING}, "extended thinking"),
        ({"context_management": CONTEXT}, "context management"),
    ],
)
async def test_a_feature_a_provider_cannot_take_is_a_400_naming_it(
    gateway: Gateway, gpt: FakeOpenAI, extra: dict[str, Any], feature: str
) -> None:
    body = {
        "model": "gpt",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
    headers = {"x-api-key": KEY}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as response,
    ):
        assert response.status == 400
        error = await response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert feature in error["error"]["message"]
    assert "openai" in error["error"]["message"]
    assert gpt.received == []


async def test_a_mixed_route_serves_thinking_from_its_anthropic_target(
    anthropic_client: AsyncAnthropic, claude: FakeAnthropic, gpt: FakeOpenAI
) -> None:
    request: dict[str, Any] = {
        "model": "mixed",
        "max_tokens": 100,
        "thinking": THINKING,
        "messages": [{"role": "user", "content": "hi"}],
    }
    message = await anthropic_client.messages.create(**request)
    assert message.content[0].type == "text"
    assert claude.received[0].body["thinking"] == THINKING
    claude.script.append(Behaviour(status=503))
    with pytest.raises(anthropic.APIStatusError) as caught:
        await anthropic_client.messages.create(**request)
    assert caught.value.status_code == 502
    assert gpt.received == [], "the OpenAI target cannot take thinking and was passed over"


async def test_the_mock_answers_an_anthropic_request_by_translation(
    anthropic_client: AsyncAnthropic,
) -> None:
    message = await anthropic_client.messages.create(
        model="mock", max_tokens=100, messages=[{"role": "user", "content": "hi there"}]
    )
    assert message.content[0].text.startswith("Mock response to: hi there")


async def test_metadata_user_id_attributes_the_request_when_the_key_may_assert_it(
    gateway: Gateway,
) -> None:
    body = {
        "model": "claude",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": "alice@example.com"},
    }
    async with aiohttp.ClientSession() as session:
        for key in (ASSERTING_KEY, KEY):
            async with session.post(
                f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": key}
            ) as response:
                assert response.status == 200
    first, second = await gateway.events(2)
    assert first.subject == "alice@example.com"
    assert second.subject == "", "a key that may not assert it names nobody"


async def test_model_discovery_with_the_anthropic_sdk(anthropic_client: AsyncAnthropic) -> None:
    """Claude Code lists a gateway's models (those named claude... or anthropic...)."""
    page = await anthropic_client.models.list()
    ids = [model.id for model in page.data]
    assert ids == ["claude", "gpt", "mixed", "mock"]
    assert page.data[0].display_name == "claude"
    assert page.data[0].type == "model"
    assert (page.first_id, page.last_id, page.has_more) == ("claude", "mock", False)
    one = await anthropic_client.models.retrieve("claude")
    assert (one.id, one.type, one.created_at.year) == ("claude", "model", 1970)
    with pytest.raises(anthropic.NotFoundError):
        await anthropic_client.models.retrieve("nope")
