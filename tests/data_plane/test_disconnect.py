"""A streamed request whose client goes away after a few chunks is charged for what the
provider produced until then: the tokens the gateway received, at the model's prices."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from data_plane.types import ChatRequest
from data_plane.upstream.providers.mock import reply_words
from shared.pricing import cost_nano_usd
from tests.data_plane import snapshots
from tests.data_plane.test_proxy_openai import Gateway, running_gateway

PRICES = (150_000, 600_000, 75_000)
PROMPT = "please tell me a long story about gateways"


def snapshot() -> snapshots.snapshot_pb2.Snapshot:
    b = snapshots.two_tenants()
    b.policy.providers[0].options["token_latency_ms"] = "40"  # one word every 40 ms
    return b.snapshot()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, snapshot()) as gw:
        yield gw


async def test_a_client_gone_mid_stream_is_charged_for_what_was_produced(gateway: Gateway) -> None:
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"Authorization": f"Bearer {snapshots.ACME_KEY}"}
    received = 0
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{gateway.url}/v1/chat/completions", json=body, headers=headers
        )
        async for line in response.content:
            if line.startswith(b"data: {") and b'"content":"' in line.replace(b" ", b""):
                received += 1
            if received == 4:
                break
        response.close()  # the client goes away mid-stream
    total_words = len(reply_words(ChatRequest("x", body, True)))
    event = (await gateway.events(1))[0]
    assert event.error_code == "client_disconnected"
    assert event.stream
    assert received <= event.completion_tokens < total_words, "charged for what was produced"
    assert event.prompt_tokens > 0
    assert event.cost_nano_usd == cost_nano_usd(
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        cached_prompt_tokens=0,
        input_price=PRICES[0],
        output_price=PRICES[1],
        cached_input_price=PRICES[2],
    )


async def test_a_client_gone_before_the_streams_end_is_written_is_no_error(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The client reads the last event and hangs up before the chunked body's end is
    written: a disconnect like any other, not an unexpected error logged with its
    traceback (a load generator ending its run did this to every stream in flight)."""
    write_eof = web.StreamResponse.write_eof

    async def hung_up(self: web.StreamResponse, data: bytes = b"") -> None:
        if self.content_type == "text/event-stream":
            raise ConnectionResetError("Cannot write to closing transport")
        await write_eof(self, data)

    monkeypatch.setattr(web.StreamResponse, "write_eof", hung_up)
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {snapshots.ACME_KEY}"}
    received = b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers) as r,
    ):
        with contextlib.suppress(aiohttp.ClientPayloadError):
            async for data in r.content.iter_any():
                received += data
    assert b"data: [DONE]" in received, "every event was written before the end"
    (event,) = await gateway.events(1)
    assert event.error_code == "client_disconnected"
    assert event.completion_tokens > 0
    assert "unexpected error" not in caplog.text
