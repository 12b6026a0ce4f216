"""OpenAI-compatible upstreams (OpenAI, Mistral, vLLM, Ollama, ...).

The client's body is forwarded with ``model`` replaced by the target's provider model. When
streaming, the upstream is asked for ``stream_options.include_usage`` so the last chunk carries
the usage the gateway meters; its SSE events are parsed and passed through as dicts. A stream
that ends without ``data: [DONE]`` was cut short and is an error, never a complete answer.
Provider options: ``timeout_s`` (read timeout, default 600) and ``connect_timeout_s``
(default 10).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from data_plane.providers.base import (
    ChatRequest,
    ChatResult,
    ProviderError,
    Target,
    Usage,
    status_error,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _seconds(options: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(options.get(name, default))
    except ValueError:
        return default


def _timeout(target: Target) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=None,
        sock_connect=_seconds(target.options, "connect_timeout_s", 10.0),
        sock_read=_seconds(target.options, "timeout_s", 600.0),
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers["Retry-After"])
    except (KeyError, ValueError):
        return None


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    text = await response.text(errors="replace")
    message = text[:500]
    try:
        parsed = orjson.loads(text)
        message = str(parsed["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    raise status_error(response.status, message, _retry_after(response.headers))


class OpenAIProvider:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def _post(self, target: Target, body: dict[str, Any]) -> Any:
        url = (target.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        if target.api_key:
            headers["Authorization"] = f"Bearer {target.api_key}"
        return self._session.post(
            url, data=orjson.dumps(body), headers=headers, timeout=_timeout(target)
        )

    async def complete(self, target: Target, request: ChatRequest) -> ChatResult:
        body = {**request.body, "model": target.provider_model, "stream": False}
        body.pop("stream_options", None)
        try:
            async with self._post(target, body) as response:
                await _raise_for_status(response)
                payload = await response.read()
        except TimeoutError as exc:  # first: aiohttp's timeouts are ClientConnectionErrors too
            raise ProviderError("timeout", retryable=True) from exc
        except aiohttp.ClientConnectionError as exc:
            raise ProviderError("connect_error", retryable=True, message=str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("upstream_error", retryable=True, message=str(exc)) from exc
        try:
            result = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ProviderError("bad_response", status=502, retryable=True) from exc
        if not isinstance(result, dict) or not isinstance(result.get("choices"), list):
            raise ProviderError("bad_response", status=502, retryable=True)
        return ChatResult(result, Usage.from_openai(result.get("usage")))

    async def stream(self, target: Target, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        body = {
            **request.body,
            "model": target.provider_model,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        try:
            async with self._post(target, body) as response:
                await _raise_for_status(response)
                async for event in _sse_events(response.content):
                    if event == b"[DONE]":
                        return
                    yield _parse_chunk(event)
            # The body ended without [DONE]: the answer was cut short, not complete.
            raise ProviderError(
                "stream_truncated", status=502, retryable=True, message="stream ended before [DONE]"
            )
        except TimeoutError as exc:  # first: aiohttp's timeouts are ClientConnectionErrors too
            raise ProviderError("timeout", retryable=True) from exc
        except aiohttp.ClientConnectionError as exc:
            raise ProviderError("connect_error", retryable=True, message=str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("upstream_error", retryable=True, message=str(exc)) from exc


def _parse_chunk(data: bytes) -> dict[str, Any]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProviderError("bad_response", status=502, retryable=True) from exc
    if not isinstance(chunk, dict):
        raise ProviderError("bad_response", status=502, retryable=True)
    if "error" in chunk:
        error = chunk["error"]
        message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
        raise ProviderError("stream_error", status=502, retryable=True, message=message)
    return chunk


async def _sse_events(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The data of each server-sent event (multi-line data joined with newlines)."""
    data: list[bytes] = []
    async for raw in content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
                data = []
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
        # comments (":") and other fields (event, id, retry) carry nothing we use
    if data:
        yield b"\n".join(data)
