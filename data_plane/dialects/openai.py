"""The OpenAI chat API on the wire, without I/O: request validation and response shaping.

Validation is deliberately shallow: the gateway checks what it needs to route and meter
(model, messages, stream flags) and leaves the rest of the body to the provider, untouched:
to OpenAI-family upstreams it is forwarded as the client's bytes (``Inbound``), the other
adapters translate it. The person behind the request is ``safety_identifier`` or ``user``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from data_plane import errors
from data_plane.dialects import numbers
from data_plane.dialects.inbound import Inbound, inbound, normalise, pick_headers
from data_plane.dialects.relay import SSE_DONE, ChatRelay, sse_event
from data_plane.errors import ApiError
from data_plane.guardrails import CompiledGuardrails, Verdict
from data_plane.guardrails.enforce import guard_completion
from data_plane.types import OPENAI_CHAT, ChatRequest


def parse_model_request(raw: bytes) -> dict[str, Any] | ApiError:
    """A JSON object naming a ``model``: what every OpenAI endpoint's body starts as."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return errors.bad_request("The request body is not valid JSON.", code=errors.INVALID_JSON)
    if not isinstance(body, dict):
        return errors.bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return errors.bad_request("'model' is required and must be a string.", param="model")
    return body


def parse_chat_request(raw: bytes, request_id: str) -> ChatRequest | ApiError:
    parsed = _parse_chat(raw)
    if isinstance(parsed, ApiError):
        return parsed
    body = parsed[0]
    return ChatRequest(request_id=request_id, body=body, stream=body.get("stream") is True)


def _parse_chat(raw: bytes) -> tuple[dict[str, Any], bool] | ApiError:
    """The body, and whether normalising its numbers rewrote it."""
    body = parse_model_request(raw)
    if isinstance(body, ApiError):
        return body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return errors.bad_request("'messages' must be a non-empty array.", param="messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return errors.bad_request(
            "Every message must be an object with a 'role'.", param="messages"
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        return errors.bad_request("'stream' must be a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return errors.bad_request("'stream_options' must be an object.", param="stream_options")
    rewritten = normalise(body, numbers.CHAT)
    if isinstance(rewritten, ApiError):
        return rewritten
    return body, rewritten


PASSED_HEADERS = ("openai-beta",)
GUARDED = ("messages", "tools")


def parse_chat(raw: bytes, request_id: str, headers: Mapping[str, str]) -> Inbound | ApiError:
    parsed = _parse_chat(raw)
    if isinstance(parsed, ApiError):
        return parsed
    body, rewritten = parsed
    return inbound(
        OPENAI_CHAT,
        request_id,
        body,
        None if rewritten else raw,
        headers=pick_headers(headers, PASSED_HEADERS),
        admission=body,
        end_user=end_user(body),
        guarded=GUARDED,
        to_chat=lambda rid, b, _dropped: ChatRequest(rid, b, b.get("stream") is True),
    )


def end_user(body: Mapping[str, Any]) -> str | None:
    for name in ("safety_identifier", "user"):
        value = body.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


def include_usage(request: ChatRequest | Inbound) -> bool:
    options = request.body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def has_content(chunk: dict[str, Any]) -> bool:
    """Whether a chunk carries generated text (one token, as providers stream them)."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and delta.get("content"):
            return True
    return False


def model_object(route_name: str, owner: str) -> dict[str, Any]:
    return {"id": route_name, "object": "model", "created": 0, "owned_by": owner}


def model_list(route_names: list[str], owner: str) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(name, owner) for name in route_names]}


class OpenAIEncoder:
    """OpenAI chunks to the client as server-sent events, under the route's name. Usage
    reaches the client only when it asked for it (``stream_options.include_usage``)."""

    __slots__ = ("model", "with_usage")

    def __init__(self, model: str, with_usage: bool) -> None:
        self.model = model
        self.with_usage = with_usage

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        if not self.with_usage:
            if chunk.get("usage") and not chunk.get("choices"):
                return b""
            chunk.pop("usage", None)
        chunk["model"] = self.model
        return sse_event(chunk)

    def end(self) -> bytes:
        return SSE_DONE

    def error(self, error: ApiError) -> bytes:
        return sse_event(error.body())


class OpenAIDialect:
    """The OpenAI chat API as the pipeline's client dialect (``pipeline.Dialect``)."""

    @staticmethod
    def parse(raw: bytes, request_id: str, headers: Mapping[str, str]) -> Inbound | ApiError:
        return parse_chat(raw, request_id, headers)

    @staticmethod
    def guard_answer(compiled: CompiledGuardrails, body: dict[str, Any]) -> Verdict:
        return guard_completion(compiled, body)

    @staticmethod
    def relay(request: Inbound, compiled: CompiledGuardrails | None) -> ChatRelay:
        return ChatRelay(ApiError.body, compiled, include_usage(request))

    @staticmethod
    def error_body(error: ApiError) -> dict[str, Any]:
        return error.body()

    @staticmethod
    def answer(completion: dict[str, Any], route_name: str, request: Inbound) -> dict[str, Any]:
        completion["model"] = route_name
        return completion

    @staticmethod
    def encoder(request: Inbound, route_name: str) -> OpenAIEncoder:
        return OpenAIEncoder(route_name, include_usage(request))


OPENAI = OpenAIDialect()
