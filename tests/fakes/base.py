"""What every fake provider shares: a real aiohttp HTTP server on port 0 that records each
request, refuses (and notes in ``problems``) any request the real provider would refuse, and
answers with an injectable ``Behaviour``: latency, an error status with Retry-After, a cut
connection, a stream cut or ended early or failing mid-way, exact bytes, tool calls, cached
tokens. ``script`` holds behaviours for the next requests, in order; ``default`` serves the
rest. Subclasses say how requests are checked and answers shaped in their wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

CREATED = 1_700_000_000


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Behaviour:
    status: int = 200
    # Sent with an error status, e.g. "2" for a 429.
    retry_after: str | None = None
    # Delay before the response starts (cut short when the server closes).
    latency_s: float = 0.0
    # Streams: delay between two events.
    chunk_latency_s: float = 0.0
    # Close the connection without answering.
    cut: bool = False
    # Streams only: cut the connection after this many events (no proper ending).
    drop_after_chunks: int | None = None
    # Streams only: end the response cleanly after this many events, but without the
    # provider's end-of-stream marker.
    end_after_chunks: int | None = None
    # Streams only: send the provider's in-stream error event after this many events.
    error_after_chunks: int | None = None
    reply: str = "Hello from the fake provider."
    # Answer with these tool calls instead of text.
    tool_calls: tuple[ToolCall, ...] = ()
    # Anthropic: a thinking block (with its signature) ahead of the answer.
    thinking: str = ""
    # "stop" or "length" (OpenAI's terms; each fake says it its own way).
    finish: str = "stop"
    # Prompt tokens reported as served from the provider's cache.
    cached_tokens: int = 0
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
    query: dict[str, str] = field(default_factory=dict)
    at: float = 0.0  # time.monotonic() on arrival
    raw: bytes = b""  # the body's bytes as they arrived


def words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


class FakeServer:
    """``async with Fake(api_key=..., model=...) as fake``; ``fake.base_url`` is what the
    provider's base URL would be."""

    prefix = ""  # the API's path prefix, part of base_url

    def __init__(self, *, api_key: str, model: str, default: Behaviour | None = None) -> None:
        self.api_key = api_key
        self.model = model
        self.default = default or Behaviour()
        self.script: deque[Behaviour] = deque()
        self.received: list[Received] = []
        self.problems: list[str] = []
        self.port = 0
        self.served = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

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
        self.received.append(
            Received(
                request.method,
                request.path,
                dict(request.headers),
                body,
                dict(request.query),
                time.monotonic(),
                raw,
            )
        )
        refusal = self.check(request, body)
        if refusal is not None:
            self.problems.append(refusal[1])
            return self.error(refusal[0], refusal[1], {})
        behaviour = self.script.popleft() if self.script else self.default
        if behaviour.latency_s:
            await self.pause(behaviour.latency_s)
        if behaviour.cut:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()  # never sent: the connection is gone
        if behaviour.raw is not None:
            return web.Response(
                body=behaviour.raw, status=behaviour.status, content_type=behaviour.content_type
            )
        if behaviour.status != 200:
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            return self.error(behaviour.status, behaviour.error_message, headers)
        self.served += 1
        return await self.answer(request, body, behaviour)

    async def pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def send_events(
        self,
        request: web.Request,
        events: Sequence[bytes],
        behaviour: Behaviour,
        ending: bytes,
        error_event: bytes,
    ) -> web.StreamResponse:
        """Stream ``events`` then ``ending``, with the behaviour's faults."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for i, data in enumerate(events):
            if behaviour.drop_after_chunks is not None and i == behaviour.drop_after_chunks:
                assert request.transport is not None
                request.transport.abort()  # no proper ending
                return response
            if behaviour.end_after_chunks is not None and i == behaviour.end_after_chunks:
                await response.write_eof()  # a well-formed HTTP ending, but no end marker
                return response
            if behaviour.error_after_chunks is not None and i == behaviour.error_after_chunks:
                await response.write(error_event)
                await response.write_eof()
                return response
            if behaviour.chunk_latency_s and i:
                await self.pause(behaviour.chunk_latency_s)
            await response.write(data)
        if ending:
            await response.write(ending)
        await response.write_eof()
        return response

    # Wire-format specifics.
    def check(self, request: web.Request, body: Any) -> tuple[int, str] | None:
        """The refusal (status, reason) for a request the gateway should not have sent."""
        raise NotImplementedError

    def error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        raise NotImplementedError

    async def answer(
        self, request: web.Request, body: Any, behaviour: Behaviour
    ) -> web.StreamResponse:
        raise NotImplementedError


def pieces(text: str, count: int = 3) -> list[str]:
    """``text`` in up to ``count`` consecutive pieces (tool arguments arrive like this)."""
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)]


def check_keys(value: Any, allowed: frozenset[str], what: str) -> str | None:
    if not isinstance(value, dict):
        return f"{what} is not an object"
    unknown = sorted(set(value) - allowed)
    return f"unknown {what} field(s) {unknown}" if unknown else None
