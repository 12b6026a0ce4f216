"""A fake OpenAI-compatible provider: a real aiohttp HTTP server on port 0.

It checks every request exactly as the gateway must send it (``POST /v1/chat/completions``,
``Authorization: Bearer <the credential>``, a JSON object whose ``model`` is the provider's
model name) and refuses anything else, noting why in ``problems``. It answers like OpenAI:
a ``chat.completion``, or an SSE stream of ``chat.completion.chunk`` events with a final usage
chunk when ``stream_options.include_usage`` is set, then ``data: [DONE]``.

Behaviour is injectable per request: latency before the answer, an error status (with
``Retry-After``), a connection cut in the middle of a stream, a stream that ends without
``[DONE]``, or exact bytes to answer with. ``script`` holds behaviours
for the next requests, in order; ``default`` serves the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

PATH = "/v1/chat/completions"
CREATED = 1_700_000_000


@dataclass(frozen=True, slots=True)
class Behaviour:
    status: int = 200
    # Sent with an error status, e.g. "2" for a 429.
    retry_after: str | None = None
    # Delay before the response starts (cut short when the server closes).
    latency_s: float = 0.0
    # Streams only: cut the connection after this many chunks (no [DONE]).
    drop_after_chunks: int | None = None
    # Streams only: end the response cleanly after this many chunks, but without [DONE].
    end_after_chunks: int | None = None
    reply: str = "Hello from the fake provider."
    error_message: str = "The fake provider was told to fail."
    # Answer these exact bytes (with ``status`` and ``content_type``) instead: malformed
    # bodies, hand-written SSE.
    raw: bytes | None = None
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def prompt_tokens(body: dict[str, Any]) -> int:
    """Words across all string message contents: deterministic, easy to check."""
    return sum(
        len(m["content"].split())
        for m in body.get("messages", [])
        if isinstance(m, dict) and isinstance(m.get("content"), str)
    )


def usage(body: dict[str, Any], reply: str) -> dict[str, int]:
    prompt, completion = prompt_tokens(body), len(reply.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class FakeOpenAI:
    """``async with FakeOpenAI(api_key=..., model=...) as fake``; ``fake.base_url`` is what a
    provider's base URL would be (``http://127.0.0.1:<port>/v1``)."""

    def __init__(self, *, api_key: str, model: str, default: Behaviour | None = None) -> None:
        self.api_key = api_key
        self.model = model
        self.default = default or Behaviour()
        self.script: deque[Behaviour] = deque()
        self.received: list[Received] = []
        self.problems: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._served = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()  # slow answers end now
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw.decode(errors="replace")
        self.received.append(Received(request.method, request.path, dict(request.headers), body))
        refusal = self._check(request, body)
        if refusal is not None:
            self.problems.append(refusal[1])
            return _error(refusal[0], refusal[1])
        behaviour = self.script.popleft() if self.script else self.default
        if behaviour.latency_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), behaviour.latency_s)
        if behaviour.raw is not None:
            return web.Response(
                body=behaviour.raw, status=behaviour.status, content_type=behaviour.content_type
            )
        if behaviour.status != 200:
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            return _error(behaviour.status, behaviour.error_message, headers)
        self._served += 1
        completion_id = f"chatcmpl-fake-{self._served}"
        if body.get("stream") is True:
            return await self._stream(request, body, behaviour, completion_id)
        return web.json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": CREATED,
                "model": self.model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": behaviour.reply},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage(body, behaviour.reply),
            },
            dumps=lambda obj: orjson.dumps(obj).decode(),
        )

    def _check(self, request: web.Request, body: Any) -> tuple[int, str] | None:
        """The refusal (status, reason) for a request the gateway should not have sent."""
        if request.path != PATH:
            return 404, f"unexpected path {request.path!r}"
        if request.method != "POST":
            return 405, f"unexpected method {request.method}"
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, f"wrong Authorization header {request.headers.get('Authorization')!r}"
        if request.content_type != "application/json":
            return 400, f"wrong Content-Type {request.content_type!r}"
        if not isinstance(body, dict):
            return 400, "the body is not a JSON object"
        if body.get("model") != self.model:
            return 400, f"wrong model {body.get('model')!r}, expected {self.model!r}"
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return 400, "no messages"
        return None

    async def _stream(
        self, request: web.Request, body: dict[str, Any], behaviour: Behaviour, completion_id: str
    ) -> web.StreamResponse:
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        base: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self.model,
            "system_fingerprint": "fp_fake",
        }
        if with_usage:
            base["usage"] = None  # as OpenAI does on every chunk but the last
        words = behaviour.reply.split()
        chunks = [
            {**base, "choices": [_choice({"role": "assistant", "content": ""})]},
            *(
                {**base, "choices": [_choice({"content": w if i == 0 else " " + w})]}
                for i, w in enumerate(words)
            ),
            {**base, "choices": [_choice({}, "stop")]},
        ]
        if with_usage:
            chunks.append({**base, "choices": [], "usage": usage(body, behaviour.reply)})
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for i, chunk in enumerate(chunks):
            if behaviour.drop_after_chunks is not None and i == behaviour.drop_after_chunks:
                assert request.transport is not None
                request.transport.abort()  # no terminating chunk, no [DONE]
                return response
            if behaviour.end_after_chunks is not None and i == behaviour.end_after_chunks:
                await response.write_eof()  # a well-formed HTTP ending, but no [DONE]
                return response
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.json_response(
        body, status=status, headers=headers, dumps=lambda obj: orjson.dumps(obj).decode()
    )
