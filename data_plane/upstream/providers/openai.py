"""Providers that speak OpenAI's wire format: OpenAI, OpenAI-compatible servers (vLLM,
Ollama, another gateway), Azure OpenAI and Mistral. They differ in URL, authentication header
and request body (``openai_wire``); answers are OpenAI's already.

A stream that ends without ``data: [DONE]`` was cut short and is an error, never a complete
answer. Azure: ``base_url`` is the resource endpoint (``https://<name>.openai.azure.com``), the
target's provider model is the deployment name, provider option ``api_version`` (default
``DEFAULT_AZURE_API_VERSION``) goes in the query and the key in the ``api-key`` header.

Requests that arrive in OpenAI's own formats are forwarded as the client sent them
(``native``): chat completions to OpenAI, Azure OpenAI and OpenAI-compatible servers, the
Responses API to OpenAI and OpenAI-compatible servers (Azure and Mistral get it translated to
chat). Only the model changes, and a streamed chat request is asked for its usage
(``stream_options.include_usage``) when the client did not ask: the gateway meters it.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from data_plane.types import (
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    ChatRequest,
    ChatResult,
    EmbeddingsRequest,
    EmbeddingsResult,
    Event,
    Forwarded,
    Native,
    Target,
    Usage,
)
from data_plane.upstream.client import UpstreamClient
from data_plane.upstream.providers import native, openai_wire
from data_plane.upstream.providers.base import ProviderError, Unsupported
from data_plane.upstream.providers.http import (
    JSON_HEADERS,
    client_timeout,
    json_object,
    raise_for_status,
    sse_events,
    truncated,
    upstream_errors,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_AZURE_API_VERSION = "2024-10-21"
MISTRAL_BASE_URL = "https://api.mistral.ai/v1"


class OpenAIProvider:
    """``strict`` for a real OpenAI service: parameters it lacks are refused before sending.
    ``name`` is the provider kind, as named in Unsupported errors."""

    default_base_url = DEFAULT_BASE_URL
    wires = frozenset({OPENAI_CHAT, OPENAI_RESPONSES})

    def __init__(
        self,
        client: UpstreamClient,
        *,
        name: str = "openai_compatible",
        strict: bool = False,
    ) -> None:
        self._client = client
        self.name = name
        self._strict = strict

    # What differs between flavours.
    def url(self, target: Target, operation: str) -> str:
        return (target.base_url or self.default_base_url).rstrip("/") + "/" + operation

    def headers(self, target: Target) -> dict[str, str]:
        if not target.api_key:
            return JSON_HEADERS
        return {**JSON_HEADERS, "Authorization": f"Bearer {target.api_key}"}

    def chat_body(self, target: Target, body: Any, stream: bool) -> dict[str, Any]:
        strict = self.name if self._strict else ""
        return openai_wire.openai_chat(body, target.provider_model, stream, strict=strict)

    def embeddings_body(self, target: Target, body: Any) -> dict[str, Any]:
        return openai_wire.openai_embeddings(body, target.provider_model)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def chunks(self, chunk: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Chunks to yield for an upstream chunk; None: the chunk itself."""
        return None

    def native_model(self, target: Target) -> str | None:
        return target.provider_model

    # The calls.
    def _post(
        self, target: Target, operation: str, body: dict[str, Any] | bytes, connect: float | None
    ) -> Any:
        return self._client.post(
            self.url(target, operation),
            data=body if isinstance(body, bytes) else orjson.dumps(body),
            headers=self.headers(target),
            timeout=client_timeout(target, connect),
        )

    def _native(self, request: Native, target: Target) -> tuple[str, bytes]:
        """The operation and body bytes of a request forwarded in its own format."""
        if self._strict:
            for name in openai_wire.OPENAI_ONLY_REFUSED:
                if request.body.get(name) is not None:
                    raise Unsupported(self.name, f"the parameter '{name}'")
        if request.wire == OPENAI_RESPONSES:
            return "responses", native.request_bytes(request, self.native_model(target))
        extra = None
        options = request.body.get("stream_options")
        if request.stream and not (isinstance(options, dict) and options.get("include_usage")):
            extra = {"stream_options": {**(options or {}), "include_usage": True}}
        return "chat/completions", native.request_bytes(request, self.native_model(target), extra)

    async def forward(
        self, target: Target, request: Native, *, connect_timeout_s: float | None = None
    ) -> Forwarded:
        operation, data = self._native(request, target)
        with upstream_errors():
            async with self._post(target, operation, data, connect_timeout_s) as response:
                await raise_for_status(response)
                payload = await response.read()
        with upstream_errors():  # reading the answer
            if request.wire == OPENAI_RESPONSES:
                return native.forwarded(payload, native.usage_of_response, request.model)
            return native.forwarded(payload, native.usage_of_completion, request.model)

    async def retrieve_response(
        self,
        target: Target,
        response_id: str,
        model: str,
        *,
        connect_timeout_s: float | None = None,
    ) -> Forwarded:
        """A stored Responses API answer, naming ``model`` (the route's)."""
        with upstream_errors():
            async with self._client.get(
                self.url(target, f"responses/{quote(response_id, safe='')}"),
                headers=self.headers(target),
                timeout=client_timeout(target, connect_timeout_s),
            ) as response:
                await raise_for_status(response)
                payload = await response.read()
        return native.forwarded(payload, native.usage_of_response, model)

    async def forward_stream(
        self, target: Target, request: Native, *, connect_timeout_s: float | None = None
    ) -> AsyncIterator[Event]:
        operation, data = self._native(request, target)
        with upstream_errors():
            async with self._post(target, operation, data, connect_timeout_s) as response:
                await raise_for_status(response)
                async for event in native.events(response, request.model):
                    yield event
                    if event.body is None or event.body.get("type") in native.ENDS:
                        return
            raise truncated()

    async def complete(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> ChatResult:
        body = self.chat_body(target, request.body, False)
        with upstream_errors():
            async with self._post(target, "chat/completions", body, connect_timeout_s) as response:
                await raise_for_status(response)
                payload = await response.read()
        with upstream_errors():  # reading the answer
            result = well_formed(json_object(payload), "message")
            result = self.answer(result)
            return ChatResult(result, Usage.from_openai(result.get("usage")))

    async def stream(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        body = self.chat_body(target, request.body, True)
        with upstream_errors():
            async with self._post(target, "chat/completions", body, connect_timeout_s) as response:
                await raise_for_status(response)
                async for _, data in sse_events(response):
                    if data == b"[DONE]":
                        return
                    chunk = _parse_chunk(data)
                    translated = self.chunks(chunk)
                    if translated is None:
                        yield chunk
                    else:
                        for out in translated:
                            yield out
            # The body ended without [DONE]: the answer was cut short, not complete.
            raise truncated()

    async def embed(
        self,
        target: Target,
        request: EmbeddingsRequest,
        *,
        connect_timeout_s: float | None = None,
    ) -> EmbeddingsResult:
        body = self.embeddings_body(target, request.body)
        with upstream_errors():
            async with self._post(target, "embeddings", body, connect_timeout_s) as response:
                await raise_for_status(response)
                payload = await response.read()
        with upstream_errors():  # reading the answer
            result = json_object(payload)
            data = result.get("data")
            if not isinstance(data, list):
                raise ProviderError("bad_response", status=502, retryable=True)
            if request.body.get("encoding_format") == "base64":
                encode_base64(data)
            return EmbeddingsResult(result, Usage.from_openai(result.get("usage")))


class AzureOpenAIProvider(OpenAIProvider):
    default_base_url = ""
    wires = frozenset({OPENAI_CHAT})

    def __init__(self, client: UpstreamClient) -> None:
        super().__init__(client, name="azure_openai", strict=True)

    def url(self, target: Target, operation: str) -> str:
        version = target.options.get("api_version") or DEFAULT_AZURE_API_VERSION
        base = target.base_url.rstrip("/")
        return (
            f"{base}/openai/deployments/{target.provider_model}/{operation}?api-version={version}"
        )

    def headers(self, target: Target) -> dict[str, str]:
        return {**JSON_HEADERS, "api-key": target.api_key}

    def chat_body(self, target: Target, body: Any, stream: bool) -> dict[str, Any]:
        return openai_wire.openai_chat(body, None, stream, strict=self.name)

    def embeddings_body(self, target: Target, body: Any) -> dict[str, Any]:
        return openai_wire.openai_embeddings(body, None)

    def native_model(self, target: Target) -> str | None:
        return None  # the deployment in the URL decides


class MistralProvider(OpenAIProvider):
    default_base_url = MISTRAL_BASE_URL
    wires = frozenset()  # its chat format differs (openai_wire.mistral_chat)

    def __init__(self, client: UpstreamClient) -> None:
        super().__init__(client, name="mistral")

    def chat_body(self, target: Target, body: Any, stream: bool) -> dict[str, Any]:
        return openai_wire.mistral_chat(body, target.provider_model, stream)

    def embeddings_body(self, target: Target, body: Any) -> dict[str, Any]:
        return openai_wire.mistral_embeddings(body, target.provider_model)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return openai_wire.mistral_completion(body)

    def chunks(self, chunk: dict[str, Any]) -> list[dict[str, Any]] | None:
        return openai_wire.mistral_chunks(chunk)


def encode_base64(data: list[Any]) -> None:
    """Float vectors as base64 of little-endian float32, as OpenAI sends them when asked;
    vectors already in base64 are left alone."""
    for item in data:
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, list):
            packed = struct.pack(f"<{len(vector)}f", *vector)
            item["embedding"] = base64.b64encode(packed).decode()


def _parse_chunk(data: bytes) -> dict[str, Any]:
    chunk = json_object(data)
    if "error" in chunk:
        error = chunk["error"]
        message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
        raise ProviderError("stream_error", status=502, retryable=True, message=message)
    return well_formed(chunk, "delta")


def well_formed(body: dict[str, Any], part: str) -> dict[str, Any]:
    """``body`` when its ``choices`` are objects whose ``part`` (message, delta), if any, is
    an object: the shape the rest of the gateway (guardrails, the client's dialect) reads.
    Anything else is the provider's ``bad_response``."""
    choices = body.get("choices", [] if part == "delta" else None)
    if not isinstance(choices, list) or not all(
        isinstance(choice, dict) and isinstance(choice.get(part, {}), dict) for choice in choices
    ):
        raise ProviderError("bad_response", status=502, retryable=True)
    return body
