"""A feature the target's format has no room for: a 400 naming it, or, on a route with
``drop_untranslatable``, the request served without it and the drop named in the audit
record (``dropped_features``). Anthropic Messages and OpenAI Responses requests, sent to an
OpenAI upstream and an Anthropic one that must get them translated."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from shared.pb import control_pb2, snapshot_pb2
from tests.data_plane.waiting import eventually
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.providers import upstreams
from tests.providers.gateway import Gateway

# The shared fixtures this module uses (tests.providers.upstreams).
gpt, claude, gateway = upstreams.gpt, upstreams.claude, upstreams.gateway

KEY = "sk-asc-acme-drop"
OPENAI_UPSTREAM = "sk-upstream-openai-drop"
ANTHROPIC_UPSTREAM = "sk-upstream-anthropic-drop"

THINKING = "extended thinking ('thinking')"
CONTEXT = "context management ('context_management')"
THINKING_BLOCKS = "assistant blocks of type 'thinking'"
REDACTED_BLOCKS = "assistant blocks of type 'redacted_thinking'"
WEB_SEARCH = "server tools (type 'web_search_20250305')"
QUESTION = {"role": "user", "content": "What is 2 + 2?"}


def make_snapshot(openai_url: str, anthropic_url: str) -> snapshot_pb2.Snapshot:
    """Routes "gpt" and "claude" refuse what cannot be translated; "gpt-lenient" and
    "claude-lenient" (the same targets) drop it."""
    builder = upstreams.three_routes(openai_url, anthropic_url, OPENAI_UPSTREAM, ANTHROPIC_UPSTREAM)
    builder.route("r-gpt-lenient", "t-acme", "gpt-lenient", [("m-gpt", "c-openai")])
    builder.route("r-claude-lenient", "t-acme", "claude-lenient", [("m-claude", "c-anthropic")])
    for route in builder.policy.routes:
        route.drop_untranslatable = route.name.endswith("-lenient")
    routes = ["r-gpt", "r-claude", "r-gpt-lenient", "r-claude-lenient"]
    return builder.key("k-acme", "t-acme", KEY, routes).snapshot(version=3)


def claude_code_turn(route: str, stream: bool) -> dict[str, Any]:
    """A second turn as Claude Code sends it with thinking on: the previous answer's thinking
    (with its signature) and a redacted block passed back, context management, a server tool
    beside a function tool."""
    return {
        "model": route,
        "max_tokens": 256,
        "stream": stream,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "tools": [
            {"name": "read_file", "input_schema": {"type": "object", "properties": {}}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
        ],
        "messages": [
            QUESTION,
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Two and two.", "signature": "sig-1"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "4"},
                ],
            },
            {"role": "user", "content": "And 3 + 3?"},
        ],
    }


async def post(gateway: Gateway, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}{path}", json=body, headers=headers) as response,
    ):
        return response.status, await response.read()


async def audit_of(gateway: Gateway) -> control_pb2.AuditRecord:
    def found() -> list[control_pb2.AuditRecord]:
        return [a for batch in gateway.usage.batches.values() for a in batch.audit]

    await eventually(lambda: len(found()) >= 1, "an audit record")
    (audit,) = found()
    return audit


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_lenient_route_drops_thinking_for_openai_and_the_audit_says_so(
    gateway: Gateway, gpt: FakeOpenAI, stream: bool
) -> None:
    status, answer = await post(gateway, "/v1/messages", claude_code_turn("gpt-lenient", stream))

    assert status == 200, answer
    if not stream:
        assert orjson.loads(answer)["type"] == "message"
    else:
        assert b"event: message_stop" in answer
    (sent,) = gpt.received
    assert "thinking" not in sent.body
    assert "context_management" not in sent.body
    assert [t["function"]["name"] for t in sent.body["tools"]] == ["read_file"]
    assert sent.body["messages"][1] == {"role": "assistant", "content": "4"}
    audit = await audit_of(gateway)
    assert (audit.decision, audit.reason) == ("allowed", "")
    assert sorted(audit.dropped_features) == sorted(
        [THINKING, CONTEXT, WEB_SEARCH, THINKING_BLOCKS, REDACTED_BLOCKS]
    )


async def test_without_the_option_thinking_is_a_400_naming_it(
    gateway: Gateway, gpt: FakeOpenAI
) -> None:
    status, answer = await post(gateway, "/v1/messages", claude_code_turn("gpt", False))

    assert status == 400
    error = orjson.loads(answer)
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert THINKING in error["error"]["message"]
    assert gpt.received == []
    audit = await audit_of(gateway)
    assert audit.decision == "refused"
    assert list(audit.dropped_features) == []


async def test_a_native_target_drops_nothing_on_a_lenient_route(
    gateway: Gateway, claude: FakeAnthropic
) -> None:
    # A first turn: the fake checks signatures passed back against those it gave.
    body = {**claude_code_turn("claude-lenient", False), "messages": [QUESTION]}

    status, answer = await post(gateway, "/v1/messages", body)

    assert status == 200, answer
    (sent,) = claude.received
    assert sent.body == body | {"model": "claude-fake"}
    assert list((await audit_of(gateway)).dropped_features) == []


async def test_documents_are_refused_even_on_a_lenient_route(
    gateway: Gateway, gpt: FakeOpenAI
) -> None:
    document = {"type": "document", "source": {"type": "text", "data": "The contract."}}
    body = {
        "model": "gpt-lenient",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [document, {"type": "text", "text": "Sum up"}]}],
    }

    status, answer = await post(gateway, "/v1/messages", body)

    assert status == 400, answer
    assert "document" in orjson.loads(answer)["error"]["message"]
    assert gpt.received == []


async def test_a_responses_built_in_tool_is_dropped_for_anthropic_on_a_lenient_route(
    gateway: Gateway, claude: FakeAnthropic
) -> None:
    function = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    tools = [{"type": "web_search_preview"}, function]
    body = {"model": "claude-lenient", "input": "Hello", "tools": tools}

    status, answer = await post(gateway, "/v1/responses", body)
    assert status == 200, answer
    (sent,) = claude.received
    assert [t["name"] for t in sent.body["tools"]] == ["lookup"]
    audit = await audit_of(gateway)
    assert list(audit.dropped_features) == ["built-in tools (type 'web_search_preview')"]

    status, answer = await post(gateway, "/v1/responses", {**body, "model": "claude"})
    assert status == 400
    assert "web_search_preview" in orjson.loads(answer)["error"]["message"]
