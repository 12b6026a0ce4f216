"""Anthropic's Messages API (``POST {base_url}/messages``): the HTTP calls; the translation
is ``anthropic_wire``. Authentication is the ``x-api-key`` header with the
``anthropic-version`` header (provider option ``anthropic_version``, default
``API_VERSION``). Provider option ``default_max_tokens`` sets ``max_tokens`` for requests
without one. Anthropic has no embeddings API.

Requests that arrive in Anthropic's own format (``/v1/messages``, ``/v1/messages/count_tokens``)
are forwarded as the client sent them (``native``): the model renamed, the client's
``anthropic-version`` and ``anthropic-beta`` headers passed on, the answer kept as sent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from data_plane.types import (
    ANTHROPIC_MESSAGES,
    ChatRequest,
    ChatResult,
    EmbeddingsRequest,
    EmbeddingsResult,
    Event,
    Forwarded,
    Native,
    Target,
)
from data_plane.upstream.client import UpstreamClient
from data_plane.upstream.providers import anthropic_wire, native
from data_plane.upstream.providers.base import Unsupported
from data_plane.upstream.providers.http import (
    JSON_HEADERS,
    client_timeout,
    json_object,
    raise_for_status,
    sse_events,
    truncated,
    upstream_errors,
)

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"


def _max_tokens(target: Target) -> int:
    try:
        return int(target.options.get("default_max_tokens", anthropic_wire.DEFAULT_MAX_TOKENS))
    except ValueError:
        return anthropic_wire.DEFAULT_MAX_TOKENS


PASSED_HEADERS = ("anthropic-version", "anthropic-beta")


class AnthropicProvider:
    wires = frozenset({ANTHROPIC_MESSAGES})

    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    def _post(
        self,
        target: Target,
        body: dict[str, Any] | bytes,
        connect: float | None,
        passed: Mapping[str, str] | None = None,
        operation: str = "messages",
    ) -> Any:
        headers = {
            **JSON_HEADERS,
            "x-api-key": target.api_key,
            "anthropic-version": target.options.get("anthropic_version") or API_VERSION,
        }
        for name in PASSED_HEADERS:
            value = (passed or {}).get(name)
            if value:
                headers[name] = value
        url = (target.base_url or DEFAULT_BASE_URL).rstrip("/") + "/" + operation
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        return self._client.post(
            url, data=data, headers=headers, timeout=client_timeout(target, connect)
        )

    async def forward(
        self, target: Target, request: Native, *, connect_timeout_s: float | None = None
    ) -> Forwarded:
        data = native.request_bytes(request, target.provider_model)
        with upstream_errors():
            async with self._post(target, data, connect_timeout_s, request.headers) as response:
                await raise_for_status(response)
                payload = await response.read()
        with upstream_errors():  # reading the answer
            return native.forwarded(payload, native.usage_of_message, request.model)

    async def forward_stream(
        self, target: Target, request: Native, *, connect_timeout_s: float | None = None
    ) -> AsyncIterator[Event]:
        data = native.request_bytes(request, target.provider_model)
        with upstream_errors():
            async with self._post(target, data, connect_timeout_s, request.headers) as response:
                await raise_for_status(response)
                async for event in native.events(response, request.model):
                    yield event
                    if event.body is not None and event.body.get("type") == "message_stop":
                        return
            raise truncated()

    async def count_tokens(
        self, target: Target, request: Native, *, connect_timeout_s: float | None = None
    ) -> dict[str, Any]:
        """``POST /messages/count_tokens``: the upstream's own count of the request."""
        data = native.request_bytes(request, target.provider_model)
        with upstream_errors():
            async with self._post(
                target, data, connect_timeout_s, request.headers, "messages/count_tokens"
            ) as response:
                await raise_for_status(response)
                payload = await response.read()
        return json_object(payload)

    async def complete(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> ChatResult:
        body = anthropic_wire.request(
            request.body, target.provider_model, False, _max_tokens(target)
        )
        with upstream_errors():
            async with self._post(target, body, connect_timeout_s) as response:
                await raise_for_status(response)
                payload = await response.read()
        with upstream_errors():  # reading the answer
            result, usage = anthropic_wire.answer(json_object(payload), int(time.time()))
        return ChatResult(result, usage)

    async def stream(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        body = anthropic_wire.request(
            request.body, target.provider_model, True, _max_tokens(target)
        )
        translator = anthropic_wire.StreamTranslator(int(time.time()))
        with upstream_errors():
            async with self._post(target, body, connect_timeout_s) as response:
                await raise_for_status(response)
                async for _, data in sse_events(response):
                    for chunk in translator.feed(json_object(data)):
                        yield chunk
                    if translator.done:
                        return
            raise truncated()

    async def embed(
        self,
        target: Target,
        request: EmbeddingsRequest,
        *,
        connect_timeout_s: float | None = None,
    ) -> EmbeddingsResult:
        raise Unsupported("anthropic", "embeddings")
