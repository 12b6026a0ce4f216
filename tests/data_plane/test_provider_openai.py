"""The OpenAI-compatible adapter against the fake provider over real HTTP: what it sends,
how it reads answers and streams, and which ProviderError (outcome, retryable) each failure
becomes, since that decides between falling back and answering the client."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pytest

from data_plane.types import ChatRequest, Prices, Target
from data_plane.upstream.client import UpstreamClient
from data_plane.upstream.providers.base import ProviderError
from data_plane.upstream.providers.openai import OpenAIProvider
from shared.pb import snapshot_pb2
from tests.fakes.openai_server import Behaviour, FakeOpenAI

KEY = "sk-upstream-test-1"
MODEL = "upstream-model-1"
BODY: dict[str, Any] = {
    "model": "route-name",
    "messages": [{"role": "user", "content": "one two three"}],
    "max_tokens": 50,
}


def target(base_url: str, options: Mapping[str, str] | None = None) -> Target:
    return Target(
        kind=snapshot_pb2.PROVIDER_KIND_OPENAI_COMPATIBLE,
        base_url=base_url,
        options=options or {},
        api_key=KEY,
        provider_model=MODEL,
        model_id="m",
        provider_id="p",
        credential_id="c",
        region="eu",
        prices=Prices(),
    )


def chat(**extra: Any) -> ChatRequest:
    body = {**BODY, **extra}
    return ChatRequest(request_id="req-1", body=body, stream=body.get("stream") is True)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY, model=MODEL) as server:
        yield server
    assert not server.problems


@pytest.fixture
async def provider() -> AsyncIterator[OpenAIProvider]:
    async with UpstreamClient() as client:
        yield OpenAIProvider(client)


async def collect(
    provider: OpenAIProvider, t: Target, request: ChatRequest, into: list[Any] | None = None
) -> list[Any]:
    """The stream's chunks; ``into`` keeps those that came before an error."""
    chunks = [] if into is None else into
    async for chunk in provider.stream(t, request):
        chunks.append(chunk)
    return chunks


async def test_complete_sends_the_body_with_the_provider_model(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    result = await provider.complete(
        target(fake.base_url), chat(stream_options={"include_usage": True})
    )
    assert result.body["choices"][0]["message"]["content"] == Behaviour().reply
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (3, 5)
    (sent,) = fake.received
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {**BODY, "model": MODEL, "stream": False}, "no stream_options"


async def test_stream_yields_chunks_and_the_usage_chunk(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    chunks = await collect(provider, target(fake.base_url), chat(stream=True))
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * len(chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == Behaviour().reply
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    (sent,) = fake.received
    assert sent.body["stream_options"] == {"include_usage": True}


async def test_hand_written_sse_with_comments_crlf_and_multiline_data(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    first = orjson.dumps({"choices": [{"index": 0, "delta": {"content": "a"}}]})
    fake.script.append(
        Behaviour(
            content_type="text/event-stream",
            raw=b": keep-alive comment\r\n\r\n"
            + b"event: message\r\nid: 1\r\ndata: "
            + first
            + b"\r\n\r\n"
            + b'data: {"choices": [{"index": 0,\ndata: "delta": {"content": "b"}}]}\n\n'
            + b"data: [DONE]\n\n"
            + b'data: {"after": "done is ignored"}\n\n',
        )
    )
    chunks = await collect(provider, target(fake.base_url), chat(stream=True))
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["a", "b"]


def provider_error(exc_info: pytest.ExceptionInfo[ProviderError]) -> tuple[str, int, bool]:
    return exc_info.value.outcome, exc_info.value.status, exc_info.value.retryable


async def test_a_429_is_retryable_with_retry_after_and_the_upstream_message(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake.script.append(Behaviour(status=429, retry_after="2", error_message="slow down"))
    with pytest.raises(ProviderError) as info:
        await provider.complete(target(fake.base_url), chat())
    assert provider_error(info) == ("status_429", 429, True)
    assert info.value.retry_after == 2.0
    assert info.value.message == "slow down"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (404, False), (422, False), (401, True), (403, True), (408, True), (500, True)],
)
async def test_which_statuses_fall_back(
    fake: FakeOpenAI, provider: OpenAIProvider, status: int, retryable: bool
) -> None:
    fake.script.append(Behaviour(status=status))
    with pytest.raises(ProviderError) as info:
        await provider.complete(target(fake.base_url), chat())
    assert provider_error(info) == (f"status_{status}", status, retryable)


async def test_an_error_status_before_a_stream_starts(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake.script.append(Behaviour(status=400, error_message="bad messages"))
    with pytest.raises(ProviderError) as info:
        await collect(provider, target(fake.base_url), chat(stream=True))
    assert provider_error(info) == ("status_400", 400, False)
    assert info.value.message == "bad messages"


async def test_a_non_json_error_body_is_kept_as_the_message(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake.script.append(
        Behaviour(status=502, raw=b"<html>Bad Gateway</html>", content_type="text/html")
    )
    with pytest.raises(ProviderError) as info:
        await provider.complete(target(fake.base_url), chat())
    assert provider_error(info) == ("status_502", 502, True)
    assert info.value.message == "<html>Bad Gateway</html>"


@pytest.mark.parametrize(
    "raw", [b"not json", b"[]", b'{"object": "chat.completion"}', b'{"choices": "none"}']
)
async def test_a_malformed_answer_is_a_retryable_bad_response(
    fake: FakeOpenAI, provider: OpenAIProvider, raw: bytes
) -> None:
    fake.script.append(Behaviour(raw=raw))
    with pytest.raises(ProviderError) as info:
        await provider.complete(target(fake.base_url), chat())
    assert provider_error(info) == ("bad_response", 502, True)


@pytest.mark.parametrize(
    ("raw", "outcome"),
    [
        (b"data: not json\n\n", "bad_response"),
        (b"data: [1, 2]\n\n", "bad_response"),
        (b'data: {"error": {"message": "overloaded"}}\n\n', "stream_error"),
        (b"", "stream_truncated"),
    ],
)
async def test_a_malformed_stream_is_a_retryable_error(
    fake: FakeOpenAI, provider: OpenAIProvider, raw: bytes, outcome: str
) -> None:
    fake.script.append(Behaviour(raw=raw, content_type="text/event-stream"))
    with pytest.raises(ProviderError) as info:
        await collect(provider, target(fake.base_url), chat(stream=True))
    assert (info.value.outcome, info.value.retryable) == (outcome, True)


async def test_a_stream_cut_mid_way_raises_after_the_chunks_that_arrived(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake.script.append(Behaviour(drop_after_chunks=2))
    seen: list[Any] = []
    with pytest.raises(ProviderError) as info:
        await collect(provider, target(fake.base_url), chat(stream=True), seen)
    assert len(seen) == 2
    assert info.value.retryable


async def test_a_stream_ending_without_done_is_truncated(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake.script.append(Behaviour(end_after_chunks=2))
    seen: list[Any] = []
    with pytest.raises(ProviderError) as info:
        await collect(provider, target(fake.base_url), chat(stream=True), seen)
    assert len(seen) == 2
    assert (info.value.outcome, info.value.retryable) == ("stream_truncated", True)


async def test_a_read_timeout_is_a_timeout(fake: FakeOpenAI, provider: OpenAIProvider) -> None:
    fake.script.append(Behaviour(latency_s=60))
    with pytest.raises(ProviderError) as info:
        await provider.complete(target(fake.base_url, {"timeout_s": "0.2"}), chat())
    assert provider_error(info) == ("timeout", 0, True)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("stream", [False, True])
async def test_a_refused_connection_is_a_connect_error(
    provider: OpenAIProvider, stream: bool
) -> None:
    dead = target(f"http://127.0.0.1:{closed_port()}/v1")
    call = collect(provider, dead, chat(stream=True)) if stream else provider.complete(dead, chat())
    with pytest.raises(ProviderError) as info:
        await call
    assert provider_error(info) == ("connect_error", 0, True)
