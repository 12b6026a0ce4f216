"""Google's Gemini API: ``models/<model>:generateContent``, ``:streamGenerateContent?alt=sse``
and ``:batchEmbedContents`` under ``base_url`` (default ``DEFAULT_BASE_URL``), the key in the
``x-goog-api-key`` header. The HTTP calls; the translation is ``gemini_wire``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from data_plane.types import ChatRequest, ChatResult, EmbeddingsRequest, EmbeddingsResult, Target
from data_plane.upstream.client import UpstreamClient
from data_plane.upstream.providers import gemini_wire
from data_plane.upstream.providers.base import ProviderError, Unsupported
from data_plane.upstream.providers.http import (
    JSON_HEADERS,
    client_timeout,
    json_object,
    raise_for_status,
    sse_events,
    upstream_errors,
)
from data_plane.upstream.providers.openai import encode_base64
from data_plane.upstream.providers.openai_wire import text_inputs
from data_plane.upstream.providers.translate import ADVISORY

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"


class GeminiProvider:
    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    def _post(
        self, target: Target, operation: str, body: dict[str, Any], connect: float | None
    ) -> Any:
        base = (target.base_url or DEFAULT_BASE_URL).rstrip("/")
        headers = {**JSON_HEADERS, "x-goog-api-key": target.api_key}
        return self._client.post(
            f"{base}/models/{target.provider_model}:{operation}",
            data=orjson.dumps(body),
            headers=headers,
            timeout=client_timeout(target, connect),
        )

    async def complete(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> ChatResult:
        body = gemini_wire.request(request.body)
        with upstream_errors():
            async with self._post(target, "generateContent", body, connect_timeout_s) as response:
                await raise_for_status(response)
                payload = await response.read()
        with upstream_errors():  # reading the answer
            result, usage = gemini_wire.answer(
                json_object(payload), target.provider_model, request.request_id, int(time.time())
            )
        return ChatResult(result, usage)

    async def stream(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        body = gemini_wire.request(request.body)
        translator = gemini_wire.StreamTranslator(
            target.provider_model, request.request_id, int(time.time())
        )
        operation = "streamGenerateContent?alt=sse"
        with upstream_errors():
            async with self._post(target, operation, body, connect_timeout_s) as response:
                await raise_for_status(response)
                async for _, data in sse_events(response):
                    event = json_object(data)
                    if "error" in event:
                        message = str((event.get("error") or {}).get("message", "error"))
                        raise ProviderError(
                            "stream_error", status=502, retryable=True, message=message
                        )
                    for chunk in translator.feed(event):
                        yield chunk
        with upstream_errors():  # reading the answer
            finished = translator.finish()
        for chunk in finished:
            yield chunk

    async def embed(
        self,
        target: Target,
        request: EmbeddingsRequest,
        *,
        connect_timeout_s: float | None = None,
    ) -> EmbeddingsResult:
        texts = text_inputs("gemini", request.body.get("input"))
        for name, value in request.body.items():
            known = ("model", "input", "encoding_format", "dimensions")
            if value is not None and name not in known and name not in ADVISORY:
                raise Unsupported("gemini", f"the embeddings parameter '{name}'")
        body = gemini_wire.embeddings_request(
            texts, target.provider_model, request.body.get("dimensions")
        )
        with upstream_errors():
            async with self._post(
                target, "batchEmbedContents", body, connect_timeout_s
            ) as response:
                await raise_for_status(response)
                payload = await response.read()
        with upstream_errors():  # reading the answer
            result, usage = gemini_wire.embeddings_answer(
                json_object(payload), target.provider_model, texts
            )
            if request.body.get("encoding_format") == "base64":
                encode_base64(result["data"])
        return EmbeddingsResult(result, usage)
