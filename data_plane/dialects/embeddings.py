"""The OpenAI embeddings API on the wire, without I/O: request validation, and the inputs as
chat messages so the input guardrails can scan (and redact) them like prompts.

Validation is shallow, as for chat: what the gateway needs to route, meter and guard
(``model``, ``input``, ``encoding_format``, ``dimensions``); the rest travels untouched.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from data_plane import errors
from data_plane.dialects import numbers
from data_plane.dialects.openai import parse_model_request
from data_plane.errors import ApiError
from data_plane.types import ChatRequest, EmbeddingsRequest

MAX_INPUTS = 2048  # OpenAI's own limit on inputs per request


def parse_embeddings_request(raw: bytes, request_id: str) -> EmbeddingsRequest | ApiError:
    body = parse_model_request(raw)
    if isinstance(body, ApiError):
        return body
    if not _valid_input(body.get("input")):
        return errors.bad_request(
            "'input' must be a non-empty string, array of strings, array of token ids or "
            f"array of token id arrays (at most {MAX_INPUTS}).",
            param="input",
        )
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        return errors.bad_request(
            "'encoding_format' must be 'float' or 'base64'.", param="encoding_format"
        )
    refused = numbers.normalise(body, numbers.EMBEDDINGS)
    if refused is not None:
        return refused
    return EmbeddingsRequest(request_id=request_id, body=body)


def _valid_input(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    if not isinstance(value, list) or not value or len(value) > MAX_INPUTS:
        return False
    if all(isinstance(v, str) and v for v in value):
        return True
    if all(_is_token(v) for v in value):
        return True
    return all(isinstance(v, list) and v and all(_is_token(t) for t in v) for v in value)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def texts(request: EmbeddingsRequest) -> list[str]:
    """The text inputs (token arrays carry no text to scan)."""
    value = request.body.get("input")
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def as_chat(request: EmbeddingsRequest) -> ChatRequest:
    """The text inputs as user messages, for the input guardrails."""
    messages = [{"role": "user", "content": text} for text in texts(request)]
    return ChatRequest(request_id=request.request_id, body={"messages": messages})


def with_texts(request: EmbeddingsRequest, chat: ChatRequest) -> EmbeddingsRequest:
    """``request`` with its text inputs replaced by the (guarded) messages of ``as_chat``."""
    new = [str(m["content"]) for m in chat.body["messages"]]
    value = request.body["input"]
    inputs = new[0] if isinstance(value, str) else new
    return replace(request, body={**request.body, "input": inputs})


def admission_body(request: EmbeddingsRequest) -> dict[str, Any]:
    """The body admission sizes the request by: an embedding generates no tokens, so it
    reserves one completion token rather than a chat's default allowance."""
    return {**request.body, "max_tokens": 1}
