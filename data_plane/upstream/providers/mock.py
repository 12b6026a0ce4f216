"""The built-in mock provider: no network, a deterministic reply derived from the request.

The reply is "Mock response to: <first words of the last user message>" followed by a fixed
sentence, so tests and demos can check content end to end. Token counts are words: prompt
tokens are the whitespace-separated words across all message contents, completion tokens the
words of the reply. Streaming yields one word per chunk. Provider options:
``latency_ms`` (delay before the first token), ``token_latency_ms`` (delay between tokens) and
``fail_status`` (answer every call with this HTTP status, to exercise fallbacks).
Embeddings are deterministic too: ``EMBEDDING_DIMENSIONS`` numbers derived from a hash of
each input (or ``dimensions`` of them), one token per word.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from data_plane.types import (
    ChatRequest,
    ChatResult,
    EmbeddingsRequest,
    EmbeddingsResult,
    Target,
    Usage,
)
from data_plane.upstream.providers.base import status_error

PROMPT_WORDS = 8
EMBEDDING_DIMENSIONS = 8
TAIL = "This is a deterministic reply from the ASC mock provider."


def _texts(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    messages = request.body.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def reply_words(request: ChatRequest) -> list[str]:
    last_user = ""
    for message in _messages(request):
        if message.get("role") == "user":
            last_user = " ".join(_texts(message.get("content")))
    head = last_user.split()[:PROMPT_WORDS]
    return ["Mock", "response", "to:", *head, *TAIL.split()]


def prompt_tokens(request: ChatRequest) -> int:
    return sum(len(text.split()) for m in _messages(request) for text in _texts(m.get("content")))


def _option(target: Target, name: str) -> float:
    try:
        return float(target.options.get(name, "0")) / 1000.0
    except ValueError:
        return 0.0


class MockProvider:
    async def complete(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> ChatResult:
        self._maybe_fail(target)
        words = reply_words(request)
        delay = _option(target, "latency_ms") + _option(target, "token_latency_ms") * len(words)
        if delay:
            await asyncio.sleep(delay)
        usage = Usage(prompt_tokens(request), len(words))
        body = {
            "id": f"chatcmpl-{request.request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": target.provider_model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": " ".join(words),
                        "refusal": None,
                    },
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage.to_openai(),
        }
        return ChatResult(body, usage)

    async def stream(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        self._maybe_fail(target)
        words = reply_words(request)
        first_delay, token_delay = (
            _option(target, "latency_ms"),
            _option(target, "token_latency_ms"),
        )
        if first_delay:
            await asyncio.sleep(first_delay)
        base = {
            "id": f"chatcmpl-{request.request_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": target.provider_model,
        }
        yield {**base, "choices": [_choice({"role": "assistant", "content": ""})]}
        for i, word in enumerate(words):
            if token_delay and i:
                await asyncio.sleep(token_delay)
            yield {**base, "choices": [_choice({"content": word if i == 0 else " " + word})]}
        yield {**base, "choices": [_choice({}, "stop")]}
        usage = Usage(prompt_tokens(request), len(words))
        yield {**base, "choices": [], "usage": usage.to_openai()}

    async def embed(
        self,
        target: Target,
        request: EmbeddingsRequest,
        *,
        connect_timeout_s: float | None = None,
    ) -> EmbeddingsResult:
        self._maybe_fail(target)
        raw = request.body.get("input")
        inputs = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
        dimensions = request.body.get("dimensions")
        size = (
            dimensions if isinstance(dimensions, int) and dimensions > 0 else EMBEDDING_DIMENSIONS
        )
        as_base64 = request.body.get("encoding_format") == "base64"
        data, tokens = [], 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += len(text.split())
            vector = _vector(text, size)
            embedding: Any = vector
            if as_base64:
                embedding = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        usage = Usage(tokens, 0)
        body = {
            "object": "list",
            "data": data,
            "model": target.provider_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return EmbeddingsResult(body, usage)

    @staticmethod
    def _maybe_fail(target: Target) -> None:
        status = target.options.get("fail_status")
        if status:
            raise status_error(int(status), "mock provider told to fail")


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}


def _vector(text: str, size: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 4) for i in range(size)]
