"""``/v1/responses`` driven by the official openai SDK: translated to chat for the mock and
non-OpenAI providers (plain and streamed with the full event sequence, a function tool round
trip, instructions, structured output), and forwarded as it is to an OpenAI upstream (reasoning
items passed back, ``previous_response_id``, ``store: false``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import Behaviour, ToolCall
from tests.fakes.openai_server import FakeOpenAI
from tests.providers import upstreams
from tests.providers.gateway import Gateway, running_gateway

# The shared fixtures this module uses (tests.providers.upstreams).
gpt, claude, gateway, openai_client = (
    upstreams.gpt,
    upstreams.claude,
    upstreams.gateway,
    upstreams.openai_client,
)

KEY = "sk-asc-acme-responses"
OPENAI_UPSTREAM = "sk-upstream-openai-resp"
ANTHROPIC_UPSTREAM = "sk-upstream-anthropic-resp"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
SEQUENCE = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
ENDING = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def make_snapshot(openai_url: str, anthropic_url: str) -> snapshot_pb2.Snapshot:
    return (
        upstreams.three_routes(openai_url, anthropic_url, OPENAI_UPSTREAM, ANTHROPIC_UPSTREAM)
        .key("k-acme", "t-acme", KEY, ["r-gpt", "r-claude", "r-mock"])
        .snapshot(version=4)
    )


async def test_a_response_from_the_mock(
    openai_client: openai.AsyncOpenAI, gateway: Gateway
) -> None:
    response = await openai_client.responses.create(
        model="mock", input="Tell me about the gateway", instructions="Be brief."
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "mock"
    assert response.output_text.startswith("Mock response to: Tell me about the gateway")
    assert response.usage is not None
    assert response.usage.input_tokens == 7  # the mock counts words: instructions and input
    (event,) = await gateway.events(1)
    assert (event.route_name, event.prompt_tokens) == ("mock", 7)


async def test_a_streamed_response_has_the_full_event_sequence(
    openai_client: openai.AsyncOpenAI, gateway: Gateway
) -> None:
    stream = await openai_client.responses.create(model="mock", input="hello there", stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:4] == SEQUENCE
    assert kinds[-4:] == ENDING
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == text
    assert final.usage is not None
    assert final.usage.output_tokens == len(text.split())
    (event,) = await gateway.events(1)
    assert event.stream
    assert event.completion_tokens == len(text.split())


async def test_a_function_tool_round_trip_through_a_translating_provider(
    openai_client: openai.AsyncOpenAI, claude: FakeAnthropic
) -> None:
    claude.script.append(Behaviour(tool_calls=(ToolCall("get_weather", {"city": "Paris"}),)))
    first = await openai_client.responses.create(
        model="claude", input="Weather in Paris?", tools=[WEATHER]
    )
    (call,) = first.output
    assert call.type == "function_call"
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    second = await openai_client.responses.create(
        model="claude",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "21 C"},
        ],
    )
    assert second.output_text == Behaviour().reply
    sent = claude.received[1].body
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": call.call_id,
        "content": "21 C",
    }


async def test_a_streamed_function_call(
    openai_client: openai.AsyncOpenAI, claude: FakeAnthropic
) -> None:
    claude.script.append(Behaviour(tool_calls=(ToolCall("get_weather", {"city": "Oslo"}),)))
    stream = await openai_client.responses.create(
        model="claude", input="Weather in Oslo?", tools=[WEATHER], stream=True
    )
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:3] == SEQUENCE[:3]
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = events[-3]
    assert json.loads(done.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]


async def test_structured_output_is_translated(
    openai_client: openai.AsyncOpenAI, gpt: FakeOpenAI
) -> None:
    """An OpenAI upstream takes the Responses API natively; the mock-free translated path is
    checked with the fake Anthropic above. Here: text.format reaches OpenAI untouched."""
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    fmt: Any = {"type": "json_schema", "name": "out", "schema": schema, "strict": True}
    await openai_client.responses.create(model="gpt", input="hi", text={"format": fmt})
    assert gpt.received[0].path == "/v1/responses"
    assert gpt.received[0].body["text"] == {"format": fmt}


async def test_native_to_openai_with_reasoning_passed_back_and_previous_response_id(
    openai_client: openai.AsyncOpenAI, gpt: FakeOpenAI, gateway: Gateway
) -> None:
    first = await openai_client.responses.create(
        model="gpt",
        input="hello",
        reasoning={"effort": "low"},
        include=["reasoning.encrypted_content"],
    )
    assert first.model == "gpt"
    assert first.output[0].type == "reasoning"
    second = await openai_client.responses.create(
        model="gpt",
        previous_response_id=first.id,
        input=[
            *[item.model_dump(exclude_none=True) for item in first.output],  # type: ignore[misc]
            {"role": "user", "content": "again"},
        ],
        store=False,
    )
    assert second.output_text == Behaviour().reply
    sent = gpt.received[1]
    assert sent.body["previous_response_id"] == first.id
    assert sent.body["input"][0]["encrypted_content"] == "opaque-state"
    assert sent.body["store"] is False
    assert sent.headers["Authorization"] == f"Bearer {OPENAI_UPSTREAM}"
    events = await gateway.events(2)
    assert all(e.prompt_tokens > 0 for e in events)


async def test_a_native_stream_is_relayed_as_the_upstream_sent_it(
    openai_client: openai.AsyncOpenAI, gpt: FakeOpenAI, gateway: Gateway
) -> None:
    stream = await openai_client.responses.create(model="gpt", input="hello", stream=True)
    events = [event async for event in stream]
    assert [e.type for e in events][:4] == SEQUENCE
    assert events[-1].type == "response.completed"
    assert events[-1].response.model == "gpt"  # type: ignore[union-attr]
    (event,) = await gateway.events(1)
    assert event.completion_tokens == len(Behaviour().reply.split())


async def test_previous_response_id_elsewhere_is_a_400_saying_why(gateway: Gateway) -> None:
    body = {"model": "mock", "input": "again", "previous_response_id": "resp_123"}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/responses", json=body, headers=headers) as response,
    ):
        assert response.status == 400
        error = (await response.json())["error"]
    assert "previous_response_id" in error["message"]
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", ["nope", ""])
async def test_errors_are_openai_errors(gateway: Gateway, model: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.url}/v1/responses", json={"model": model, "input": "x"}, headers=headers
        ) as response,
    ):
        error = (await response.json())["error"]
    assert response.status in (400, 404)
    assert set(error) == {"message", "type", "param", "code"}


async def test_a_stored_response_is_read_back_from_the_upstream_that_keeps_it(
    openai_client: openai.AsyncOpenAI, gpt: FakeOpenAI
) -> None:
    created = await openai_client.responses.create(model="gpt", input="hello")
    again = await openai_client.responses.retrieve(created.id)
    assert (again.id, again.model, again.output_text) == (created.id, "gpt", created.output_text)
    assert gpt.received[-1].method == "GET"
    assert gpt.received[-1].headers["Authorization"] == f"Bearer {OPENAI_UPSTREAM}"
    mock = await openai_client.responses.create(model="mock", input="hello")
    for unknown in (mock.id, "resp_never_served"):
        with pytest.raises(openai.NotFoundError) as caught:
            await openai_client.responses.retrieve(unknown)
        assert caught.value.code == "response_not_found"


async def test_previous_response_id_goes_back_to_the_credential_that_created_it(
    tmp_path: Path,
) -> None:
    """Two OpenAI credentials behind one route: the follow-up goes where the first went."""
    async with (
        FakeOpenAI(api_key="sk-up-a", model="gpt-fake") as first_up,
        FakeOpenAI(api_key="sk-up-b", model="gpt-fake") as second_up,
    ):
        builder = (
            snapshots.PolicyBuilder()
            .tenant("t-acme")
            .provider("p-a", kind=snapshot_pb2.PROVIDER_KIND_OPENAI, base_url=first_up.base_url)
            .provider("p-b", kind=snapshot_pb2.PROVIDER_KIND_OPENAI, base_url=second_up.base_url)
            .credential("c-a", "t-acme", "p-a", "sk-up-a")
            .credential("c-b", "t-acme", "p-b", "sk-up-b")
            .model("m-a", "p-a", "gpt-fake")
            .model("m-b", "p-b", "gpt-fake")
            .route("r-two", "t-acme", "two", [("m-a", "c-a"), ("m-b", "c-b")])
            .key("k-acme", "t-acme", KEY, ["r-two"])
        )
        async with (
            running_gateway(tmp_path / "dp", builder.snapshot(version=2)) as gw,
            gw.openai(KEY) as client,
        ):
            first = await client.responses.create(model="two", input="hello")
            kept = first_up if first_up.received else second_up
            for _ in range(6):  # weights 1:1: without affinity some would go elsewhere
                await client.responses.create(
                    model="two", input="again", previous_response_id=first.id
                )
        assert len(kept.received) == 7
        assert first_up.problems == second_up.problems == []
