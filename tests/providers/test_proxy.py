"""``proxy.Call``'s decisions with in-memory providers (no sockets): which target serves,
what each failed or skipped attempt records, and which error the client gets when none
serves."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from data_plane.errors import ApiError
from data_plane.policy.health import HealthBook
from data_plane.types import (
    DEFAULT_ROUTE_OPTIONS,
    ChatRequest,
    ChatResult,
    EmbeddingsRequest,
    EmbeddingsResult,
    Prices,
    Target,
    Usage,
)
from data_plane.upstream.failover import Call, Stream
from data_plane.upstream.providers.base import ProviderError, Unsupported, status_error

REQUEST = ChatRequest("req-1", {"model": "chat", "messages": []})
ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
TOKEN = {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}


class Stub:
    """A provider that answers ``reply`` or raises ``error`` (streams: after ``chunks``)."""

    def __init__(
        self,
        reply: str = "ok",
        error: ProviderError | None = None,
        chunks: tuple[dict[str, Any], ...] = (),
    ) -> None:
        self.reply, self.error, self.chunks = reply, error, chunks
        self.calls = 0

    async def complete(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> ChatResult:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return ChatResult({"choices": [], "reply": self.reply}, Usage(1, 1))

    async def stream(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls += 1
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error

    async def embed(
        self, target: Target, request: EmbeddingsRequest, *, connect_timeout_s: float | None = None
    ) -> EmbeddingsResult:
        raise Unsupported("stub", "embeddings")


def target(kind: int, options: dict[str, str] | None = None) -> Target:
    return Target(
        kind=kind,
        base_url="",
        options=options or {},
        api_key="",
        provider_model=f"model-{kind}",
        model_id=f"m-{kind}",
        provider_id=f"p-{kind}",
        credential_id="c",
        region="eu",
        prices=Prices(),
    )


def call(providers: dict[int, Stub], *kinds: int, health: HealthBook | None = None) -> Call:
    targets = [target(k, {"breaker_failures": "1"}) for k in kinds]
    return Call(
        providers,  # type: ignore[arg-type]
        health or HealthBook(),
        random.Random(0),
        DEFAULT_ROUTE_OPTIONS,
        targets,
        started=time.monotonic(),
        route_name="chat",
    )


def outcomes(c: Call) -> list[tuple[str, str]]:
    return [(t.model_id, outcome) for t, outcome in c.tried.failed]


async def test_a_target_that_cannot_do_the_request_is_passed_over() -> None:
    c = call({1: Stub(error=Unsupported("anthropic", "JSON mode")), 2: Stub("second")}, 1, 2)
    body = await c.complete(REQUEST)
    assert not isinstance(body, ApiError)
    assert body["reply"] == "second"
    assert outcomes(c) == [("m-1", "unsupported")]
    assert c.tried.target is not None
    assert c.tried.target.model_id == "m-2"


async def test_when_no_target_can_do_it_the_client_gets_a_400_naming_what() -> None:
    c = call({1: Stub(error=Unsupported("anthropic", "JSON mode"))}, 1)
    error = await c.complete(REQUEST)
    assert isinstance(error, ApiError)
    assert (error.status, error.code) == (400, "unsupported_by_provider")
    assert "anthropic does not support JSON mode" in error.message


async def test_a_refusal_of_the_request_itself_ends_it_without_harming_the_target() -> None:
    second = Stub("second")
    health = HealthBook()
    c = call({1: Stub(error=status_error(400, "bad messages")), 2: second}, 1, 2, health=health)
    error = await c.complete(REQUEST)
    assert isinstance(error, ApiError)
    assert (error.status, error.code) == (400, "upstream_rejected")
    assert second.calls == 0
    assert health.blocked(c.targets[0], time.monotonic()) is None


async def test_open_circuits_everywhere_are_a_503_with_retry_after() -> None:
    health = HealthBook()
    failing = {1: Stub(error=status_error(500)), 2: Stub(error=status_error(503))}
    assert isinstance(await call(failing, 1, 2, health=health).complete(REQUEST), ApiError)
    c = call(failing, 1, 2, health=health)
    error = await c.complete(REQUEST)
    assert isinstance(error, ApiError)
    assert (error.status, error.code, error.retry_after) == (503, "no_healthy_target", 10)
    assert outcomes(c) == [("m-1", "circuit_open"), ("m-2", "circuit_open")]
    assert failing[1].calls == failing[2].calls == 1


async def test_429s_and_open_circuits_are_a_429() -> None:
    health = HealthBook()
    assert isinstance(
        await call({1: Stub(error=status_error(500))}, 1, health=health).complete(REQUEST), ApiError
    )
    c = call({1: Stub(), 2: Stub(error=status_error(429, retry_after=3))}, 1, 2, health=health)
    error = await c.complete(REQUEST)
    assert isinstance(error, ApiError)
    assert (error.status, error.code, error.retry_after) == (429, "upstream_rate_limited", 3)


async def test_an_unknown_provider_kind_is_skipped() -> None:
    c = call({2: Stub("second")}, 1, 2)
    assert not isinstance(await c.complete(REQUEST), ApiError)
    assert outcomes(c) == [("m-1", "unsupported_provider")]


async def test_a_stream_failing_after_its_role_chunk_but_before_a_token_falls_back() -> None:
    broken = Stub(chunks=(ROLE,), error=ProviderError("connect_error", retryable=True))
    c = call({1: broken, 2: Stub(chunks=(ROLE, TOKEN))}, 1, 2)
    stream = await c.open_stream(REQUEST)
    assert isinstance(stream, Stream)
    assert [chunk async for chunk in stream] == [ROLE, TOKEN], "only the second's chunks"
    assert outcomes(c) == [("m-1", "connect_error")]


async def test_an_empty_stream_falls_back() -> None:
    c = call({1: Stub(), 2: Stub(chunks=(TOKEN,))}, 1, 2)
    assert isinstance(await c.open_stream(REQUEST), Stream)
    assert outcomes(c) == [("m-1", "empty_stream")]


async def test_a_stream_failing_after_its_first_token_counts_against_the_target() -> None:
    health = HealthBook()
    broken = Stub(chunks=(TOKEN,), error=ProviderError("connect_error", retryable=True))
    c = call({1: broken}, 1, health=health)
    stream = await c.open_stream(REQUEST)
    assert isinstance(stream, Stream)
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        async for chunk in stream:
            seen.append(chunk)  # keeps what came before the error

    with pytest.raises(ProviderError) as info:
        await read()
    assert info.value.outcome == "connect_error"
    assert seen == [TOKEN]
    assert health.blocked(c.targets[0], time.monotonic()) == "circuit_open"
