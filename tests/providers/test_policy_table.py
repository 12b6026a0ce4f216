"""The same policy on every endpoint: one table of endpoint (chat, Responses, Messages,
embeddings; forwarded as they are or translated; text in a message, or in a tool call's
arguments) x guardrail action on e-mail addresses (allow, tag, redact, block) x stream on/off.
Every row must give the same verdict (served, or refused with a 400 ``guardrail_blocked`` in
the endpoint's own format), the same text reaching the provider (redacted exactly when the
action is redact, nothing at all when it is block) and the same audit record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from shared.pb import control_pb2, snapshot_pb2
from tests.data_plane.waiting import eventually
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI
from tests.providers import upstreams
from tests.providers.gateway import Gateway

# The shared fixtures this module uses (tests.providers.upstreams).
gpt, claude, gateway = upstreams.gpt, upstreams.claude, upstreams.gateway

KEY = "sk-asc-acme-table"
OPENAI_UPSTREAM = "sk-upstream-openai-table"
ANTHROPIC_UPSTREAM = "sk-upstream-anthropic-table"
ACTIONS = ("allow", "tag", "redact", "block")
SECRET = "Write to alice@example.com today"
REDACTED = "Write to [EMAIL] today"

FAMILIES = (("gpt", ("m-gpt", "c-openai")), ("claude", ("m-claude", "c-anthropic")))

Body = dict[str, Any]


def make_snapshot(openai_url: str, anthropic_url: str) -> snapshot_pb2.Snapshot:
    """Per action: routes "gpt-<action>" and "claude-<action>" under a guardrail policy on
    e-mail addresses with that action, on input and output."""
    builder = upstreams.three_routes(openai_url, anthropic_url, OPENAI_UPSTREAM, ANTHROPIC_UPSTREAM)
    routes = []
    for action in ACTIONS:
        for name, target in FAMILIES:
            route_id = f"r-{name}-{action}"
            builder.route(route_id, "t-acme", f"{name}-{action}", [target])
            builder.policy.guardrails.add(
                id=f"g-{name}-{action}",
                tenant_id="t-acme",
                route_id=route_id,
                on_input=True,
                on_output=True,
                categories=["email"],
                default_action=action,
            )
            routes.append(route_id)
    return builder.key("k-acme", "t-acme", KEY, routes).snapshot(version=6)


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    upstream: str  # "gpt" or "claude": the route family, and the fake that receives
    body: Callable[[str, str, bool], Body]  # (route, text, stream) -> request body
    sent: Callable[[Body], str]  # what the upstream received -> the guarded text in it
    streams: bool = True


def _chat(route: str, text: str, stream: bool) -> Body:
    return {"model": route, "messages": [{"role": "user", "content": text}], "stream": stream}


def _chat_tool_arguments(route: str, text: str, stream: bool) -> Body:
    arguments = orjson.dumps({"body": text}).decode()
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "send", "arguments": arguments},
    }
    return {
        "model": route,
        "stream": stream,
        "messages": [
            {"role": "user", "content": "Send the note."},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
        ],
    }


def _responses(route: str, text: str, stream: bool) -> Body:
    return {"model": route, "input": text, "stream": stream}


def _messages(route: str, text: str, stream: bool) -> Body:
    return {
        "model": route,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    }


def _embeddings(route: str, text: str, stream: bool) -> Body:
    return {"model": route, "input": [text]}


def _first_message(body: Body) -> str:
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else content[0]["text"]


def _tool_arguments(body: Body) -> str:
    arguments = body["messages"][1]["tool_calls"][0]["function"]["arguments"]
    return str(orjson.loads(arguments)["body"])


ENDPOINTS = [
    Endpoint("chat, forwarded", "/v1/chat/completions", "gpt", _chat, _first_message),
    Endpoint("chat, translated", "/v1/chat/completions", "claude", _chat, _first_message),
    Endpoint(
        "chat, tool-call arguments",
        "/v1/chat/completions",
        "gpt",
        _chat_tool_arguments,
        _tool_arguments,
    ),
    Endpoint("responses, forwarded", "/v1/responses", "gpt", _responses, lambda b: b["input"]),
    Endpoint("responses, translated", "/v1/responses", "claude", _responses, _first_message),
    Endpoint("messages, forwarded", "/v1/messages", "claude", _messages, _first_message),
    Endpoint("messages, translated", "/v1/messages", "gpt", _messages, _first_message),
    Endpoint(
        "embeddings", "/v1/embeddings", "gpt", _embeddings, lambda b: b["input"][0], streams=False
    ),
]
CASES = [
    pytest.param(endpoint, action, stream, id=f"{endpoint.name}-{action}-{stream and 'stream'}")
    for endpoint in ENDPOINTS
    for action in ACTIONS
    for stream in ((False, True) if endpoint.streams else (False,))
]


async def audits(gateway: Gateway, count: int) -> list[control_pb2.AuditRecord]:
    def found() -> list[control_pb2.AuditRecord]:
        return [a for batch in gateway.usage.batches.values() for a in batch.audit]

    await eventually(lambda: len(found()) >= count, f"{count} audit record(s)")
    return found()


@pytest.mark.parametrize(("endpoint", "action", "stream"), CASES)
async def test_every_endpoint_keeps_the_same_policy(
    gateway: Gateway,
    gpt: FakeOpenAI,
    claude: FakeAnthropic,
    endpoint: Endpoint,
    action: str,
    stream: bool,
) -> None:
    route = f"{endpoint.upstream}-{action}"
    body = endpoint.body(route, SECRET, stream)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}{endpoint.path}", json=body, headers=headers) as response,
    ):
        status, answer = response.status, await response.read()
    fake = gpt if endpoint.upstream == "gpt" else claude

    (audit,) = await audits(gateway, 1)
    assert list(audit.categories) == ["email"]
    assert audit.guardrail_action == action
    assert audit.event.route_name == route
    if action == "block":
        assert status == 400
        error = orjson.loads(answer)
        code = error["error"]["code"]
        assert code == "guardrail_blocked", error
        assert fake.received == [], "a blocked request never reaches the provider"
        assert (audit.decision, audit.reason) == ("refused", "guardrail_blocked")
        return
    assert status == 200, answer
    (sent,) = fake.received
    assert endpoint.sent(sent.body) == (REDACTED if action == "redact" else SECRET)
    assert (audit.decision, audit.reason) == ("allowed", "")
    assert audit.event.stream is stream
    assert audit.event.prompt_tokens > 0


LEAK = "Mail bob@example.com now please"


def answer_text(path: str, raw: bytes, stream: bool) -> str:
    """The text of an answer as the client got it, in the endpoint's own format."""
    if not stream:
        body = orjson.loads(raw)
        if path == "/v1/chat/completions":
            return str(body["choices"][0]["message"]["content"] or "")
        if path == "/v1/messages":
            return "".join(b.get("text", "") for b in body["content"])
        return "".join(
            p["text"]
            for item in body["output"]
            if item["type"] == "message"
            for p in item["content"]
        )
    text = []
    for line in raw.split(b"\n"):
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = orjson.loads(line[6:])
        if path == "/v1/chat/completions":
            text += [c["delta"].get("content") or "" for c in event.get("choices", [])]
        elif event.get("type") == "content_block_delta":
            text.append(event["delta"].get("text", ""))
        elif event.get("type") == "response.output_text.delta":
            text.append(event["delta"])
    return "".join(text)


@pytest.mark.parametrize(
    ("endpoint", "action", "stream"),
    [
        pytest.param(e, a, s, id=f"{e.name}-{a}-{s and 'stream'}")
        for e in ENDPOINTS
        if e.streams and e.body is not _chat_tool_arguments
        for a in ("redact", "block")
        for s in (False, True)
    ],
)
async def test_the_output_guard_holds_on_every_endpoint(
    gateway: Gateway,
    gpt: FakeOpenAI,
    claude: FakeAnthropic,
    endpoint: Endpoint,
    action: str,
    stream: bool,
) -> None:
    fake = gpt if endpoint.upstream == "gpt" else claude
    fake.script.append(Behaviour(reply=LEAK))
    body = endpoint.body(f"{endpoint.upstream}-{action}", "Hello there", stream)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}{endpoint.path}", json=body, headers=headers) as response,
    ):
        assert response.status == 200
        raw = await response.read()
    text = answer_text(endpoint.path, raw, stream)
    assert "bob@example.com" not in text
    assert text == ("Mail [EMAIL] now please" if action == "redact" else "")
    (audit,) = await audits(gateway, 1)
    assert (list(audit.categories), audit.guardrail_action) == (["email"], action)
