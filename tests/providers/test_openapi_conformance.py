"""ASC's own JSON against OpenAI's published descriptions: the chat completions, chunks,
models, embeddings and errors the gateway builds itself (the mock's answers, translations from
Anthropic, its own errors) validate against the trimmed copy of OpenAI's OpenAPI schemas in
``tests/schemas`` (source noted there); the Responses objects and stream events it builds
validate against the openai SDK's types, generated from OpenAI's current description."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from shared.pb import snapshot_pb2
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import Behaviour, ToolCall
from tests.providers import upstreams
from tests.providers.gateway import Gateway

# The shared fixtures this module uses (tests.providers.upstreams).
gpt, claude, gateway = upstreams.gpt, upstreams.claude, upstreams.gateway

KEY = "sk-asc-acme-conformance"
OPENAI_UPSTREAM = "sk-upstream-openai-conf"
ANTHROPIC_UPSTREAM = "sk-upstream-anthropic-conf"
SCHEMAS = Path(__file__).parents[1] / "schemas" / "openai_openapi_trimmed.yaml"
URI = "urn:openai-openapi"
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def make_snapshot(openai_url: str, anthropic_url: str) -> snapshot_pb2.Snapshot:
    return (
        upstreams.three_routes(openai_url, anthropic_url, OPENAI_UPSTREAM, ANTHROPIC_UPSTREAM)
        .key("k-acme", "t-acme", KEY, ["r-gpt", "r-claude", "r-mock"])
        .snapshot(version=3)
    )


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable`` as JSON Schema's null type."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _registry() -> Registry:
    document = _json_schema(yaml.safe_load(SCHEMAS.read_text()))
    return Registry().with_resource(URI, Resource.from_contents(document, DRAFT202012))


REGISTRY = _registry()


def check(name: str, body: Any) -> None:
    validator = Draft202012Validator(
        {"$ref": f"{URI}#/components/schemas/{name}"}, registry=REGISTRY
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == [], f"{name}: {errors}"


def test_the_checks_can_fail() -> None:
    """The validator does reject what the schema rejects (a message without refusal)."""
    message = {"role": "assistant", "content": "hi"}
    with pytest.raises(AssertionError):
        check("ChatCompletionResponseMessage", message)
    check("ChatCompletionResponseMessage", {**message, "refusal": None})
    with pytest.raises(ValidationError):
        Response.model_validate({"id": "resp_1", "object": "response"})
    with pytest.raises(ValidationError):
        EVENTS.validate_python({"type": "response.output_text.delta", "delta": "x"})


async def call(gateway: Gateway, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{gateway.url}{path}", json=body, headers=headers) as response,
    ):
        return response.status, await response.read()


def sse_data(raw: bytes) -> list[Any]:
    return [
        orjson.loads(line[6:])
        for line in raw.split(b"\n")
        if line.startswith(b"data: ") and line != b"data: [DONE]"
    ]


@pytest.mark.parametrize("model", ["mock", "claude"])
async def test_chat_completions_and_chunks(
    gateway: Gateway, claude: FakeAnthropic, model: str
) -> None:
    claude.script.append(Behaviour(tool_calls=(ToolCall("f", {"a": 1}),)))
    messages = [{"role": "user", "content": "hello there"}]
    for stream in (False, True):
        body = {"model": model, "messages": messages, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        status, raw = await call(gateway, "POST", "/v1/chat/completions", body)
        assert status == 200
        if stream:
            chunks = sse_data(raw)
            assert chunks
            for chunk in chunks:
                check("CreateChatCompletionStreamResponse", chunk)
        else:
            check("CreateChatCompletionResponse", orjson.loads(raw))


async def test_models_embeddings_and_errors(gateway: Gateway) -> None:
    status, raw = await call(gateway, "GET", "/v1/models")
    check("ListModelsResponse", orjson.loads(raw))
    status, raw = await call(gateway, "GET", "/v1/models/mock")
    check("Model", orjson.loads(raw))
    for encoding in ("float", "base64"):
        body = {"model": "mock", "input": ["a b", "c"], "encoding_format": encoding}
        status, raw = await call(gateway, "POST", "/v1/embeddings", body)
        assert status == 200
        check("CreateEmbeddingResponse", orjson.loads(raw))
    for method, path, body in (
        ("GET", "/v1/models/nope", None),
        ("POST", "/v1/chat/completions", {"model": "nope", "messages": []}),
        ("POST", "/v1/chat/completions", {"model": "mock"}),
        ("POST", "/v1/responses", {"model": "mock", "input": 7}),
        ("POST", "/v1/embeddings", {"model": "mock", "input": ""}),
    ):
        status, raw = await call(gateway, method, path, body)
        assert status >= 400
        check("ErrorResponse", orjson.loads(raw))


@pytest.mark.parametrize("model", ["mock", "claude"])
async def test_responses_and_their_events(
    gateway: Gateway, claude: FakeAnthropic, model: str
) -> None:
    claude.script.extend([Behaviour(), Behaviour(tool_calls=(ToolCall("f", {"a": 1}),))])
    status, raw = await call(gateway, "POST", "/v1/responses", {"model": model, "input": "hi"})
    assert status == 200
    Response.model_validate(orjson.loads(raw), strict=False)
    body = {"model": model, "input": "hi", "stream": True}
    status, raw = await call(gateway, "POST", "/v1/responses", body)
    events = sse_data(raw)
    assert events
    for event in events:
        EVENTS.validate_python(event)
