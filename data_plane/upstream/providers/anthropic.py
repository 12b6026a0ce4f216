"""Anthropic's Messages API (``POST {base_url}/messages``): the HTTP calls; the translation
is ``anthropic_wire``. Authentication is the ``x-api-key`` header with the
``anthropic-version`` header (provider option ``anthropic_version``, default
``API_VERSION``). Provider option ``default_max_tokens`` sets ``max_tokens`` for requests
without one. Anthropic has no embeddings API.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from data_plane.types import ChatRequest, ChatResult, EmbeddingsRequest, EmbeddingsResult, Target
from data_plane.upstream.providers import anthropic_wire
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


class AnthropicProvider:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def _post(self, target: Target, body: dict[str, Any], connect: float | None) -> Any:
        headers = {
            **JSON_HEADERS,
            "x-api-key": target.api_key,
            "anthropic-version": target.options.get("anthropic_version") or API_VERSION,
        }
        url = (target.base_url or DEFAULT_BASE_URL).rstrip("/") + "/messages"
        return self._session.post(
            url, data=orjson.dumps(body), headers=headers, timeout=client_timeout(target, connect)
        )

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
                async for _, data in sse_events(response.content):
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
