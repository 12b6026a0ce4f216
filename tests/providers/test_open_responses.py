"""ASC's own Responses API JSON against the Open Responses specification: the response
objects and stream events the gateway builds itself (the mock's answers, and translations of
another provider's, text and function calls, a stream cut short by the provider) validate
against the trimmed copy of that specification's schemas in ``tests/schemas`` (source noted
there). Forwarded answers are the upstream's own and are not checked here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import Behaviour, ToolCall
from tests.providers import upstreams
from tests.providers.gateway import Gateway
from tests.providers.test_openapi_conformance import (
    ANTHROPIC_UPSTREAM,
    KEY,
    OPENAI_UPSTREAM,
    call,
    make_snapshot,
    sse_data,
)

# The shared fixtures this module uses (tests.providers.upstreams); the snapshot, key and
# upstream keys are the OpenAPI conformance test's.
gpt, claude, gateway = upstreams.gpt, upstreams.claude, upstreams.gateway
__all__ = ["ANTHROPIC_UPSTREAM", "KEY", "OPENAI_UPSTREAM", "make_snapshot"]

SCHEMAS = Path(__file__).parents[1] / "schemas" / "open_responses_trimmed.yaml"
URI = "urn:open-responses"
REGISTRY = Registry().with_resource(
    URI, Resource.from_contents(yaml.safe_load(SCHEMAS.read_text()), DRAFT202012)
)
# Each stream event type and its schema.
EVENTS = {
    "response.created": "ResponseCreatedStreamingEvent",
    "response.in_progress": "ResponseInProgressStreamingEvent",
    "response.completed": "ResponseCompletedStreamingEvent",
    "response.failed": "ResponseFailedStreamingEvent",
    "response.incomplete": "ResponseIncompleteStreamingEvent",
    "response.output_item.added": "ResponseOutputItemAddedStreamingEvent",
    "response.output_item.done": "ResponseOutputItemDoneStreamingEvent",
    "response.content_part.added": "ResponseContentPartAddedStreamingEvent",
    "response.content_part.done": "ResponseContentPartDoneStreamingEvent",
    "response.output_text.delta": "ResponseOutputTextDeltaStreamingEvent",
    "response.output_text.done": "ResponseOutputTextDoneStreamingEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaStreamingEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneStreamingEvent",
    "error": "ErrorStreamingEvent",
}


def problems(name: str, body: Any) -> list[str]:
    validator = Draft202012Validator(
        {"$ref": f"{URI}#/components/schemas/{name}"}, registry=REGISTRY
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


def check_events(events: list[Any]) -> list[str]:
    """Each event against its type's schema (an unknown type is a problem too), numbered
    from 0 in order."""
    found = [
        f"{event.get('type')}: {problem}"
        for event in events
        for problem in (
            problems(EVENTS[event["type"]], event)
            if event.get("type") in EVENTS
            else ["not an event type of the specification"]
        )
    ]
    numbers = [event.get("sequence_number") for event in events]
    if numbers != list(range(len(events))):
        found.append(f"sequence numbers {numbers}")
    return found


def test_the_checks_can_fail() -> None:
    """The schemas do reject what the specification rejects: a response without the fields
    it requires, an output text without annotations, an event out of sequence."""
    assert problems("ResponseResource", {"id": "resp_1", "object": "response"})
    text = {"type": "output_text", "text": "hi"}
    assert problems("OutputTextContent", text)
    assert problems("OutputTextContent", {**text, "annotations": []}) == []
    delta = {
        "type": "response.output_text.delta",
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "hi",
    }
    assert check_events([{**delta, "sequence_number": 1}]) == ["sequence numbers [1]"]
    assert check_events([{**delta, "sequence_number": 0}]) == []


@pytest.mark.parametrize(
    "behaviour",
    [Behaviour(), Behaviour(tool_calls=(ToolCall("lookup", {"city": "Paris"}),))],
    ids=["text", "function call"],
)
@pytest.mark.parametrize("model", ["mock", "claude"])
async def test_responses_and_their_events_follow_open_responses(
    gateway: Gateway, claude: FakeAnthropic, model: str, behaviour: Behaviour
) -> None:
    claude.script.extend([behaviour, behaviour])
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    body = {"model": model, "input": "Weather in Paris?", "tools": [tool]}

    status, raw = await call(gateway, "POST", "/v1/responses", body)
    assert status == 200, raw
    response = orjson.loads(raw)
    assert problems("ResponseResource", response) == []

    status, raw = await call(gateway, "POST", "/v1/responses", {**body, "stream": True})
    assert status == 200, raw
    events = sse_data(raw)
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] == "response.completed"
    assert check_events(events) == []
    if model == "claude":
        kinds = {item["type"] for item in events[-1]["response"]["output"]}
        assert kinds == ({"function_call"} if behaviour.tool_calls else {"message"})


async def test_a_stream_cut_short_ends_with_events_of_the_specification(
    gateway: Gateway, claude: FakeAnthropic
) -> None:
    claude.script.append(Behaviour(reply="one two three four five", drop_after_chunks=4))
    body = {"model": "claude", "input": "Count", "stream": True}

    status, raw = await call(gateway, "POST", "/v1/responses", body)

    assert status == 200
    events = sse_data(raw)
    assert events[-1]["type"] in ("error", "response.failed", "response.incomplete"), events[-1]
    assert check_events(events) == []
