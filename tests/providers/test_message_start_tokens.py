"""The input tokens a translated Anthropic stream reports in ``message_start`` (Claude Code
reads its context size there): the upstream's real count when its first chunk gives one; the
shipped tokenizer's estimate when the client asked for it (``x-asc-input-tokens: estimate``);
otherwise 0. The real count always follows in ``message_delta``."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from data_plane.dialects.anthropic import ESTIMATE_ASK, error_body
from data_plane.dialects.anthropic_stream import AnthropicEncoder
from data_plane.tokens import encoding
from shared.pb import snapshot_pb2
from tests.fakes.openai_server import FakeOpenAI
from tests.providers import upstreams
from tests.providers.gateway import Gateway

# The shared fixtures this module uses (tests.providers.upstreams).
gpt, claude, gateway = upstreams.gpt, upstreams.claude, upstreams.gateway

KEY = "sk-asc-acme-start"
OPENAI_UPSTREAM = "sk-upstream-openai-start"
ANTHROPIC_UPSTREAM = "sk-upstream-anthropic-start"
QUESTION = "How many tokens is this question, roughly?"


def make_snapshot(openai_url: str, anthropic_url: str) -> snapshot_pb2.Snapshot:
    return (
        upstreams.three_routes(openai_url, anthropic_url, OPENAI_UPSTREAM, ANTHROPIC_UPSTREAM)
        .key("k-acme", "t-acme", KEY, ["r-gpt", "r-claude", "r-mock"])
        .snapshot(version=2)
    )


def events(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


def start_usage(encoder: AnthropicEncoder, chunk: dict[str, Any]) -> Any:
    (start, *_) = events(encoder.chunk(chunk))
    return start["message"]["usage"]


TEXT_CHUNK = {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}


def test_the_first_chunks_real_count_wins_over_an_estimate() -> None:
    encoder = AnthropicEncoder("msg_1", "gpt", error_body, input_estimate=99)
    usage = {
        "prompt_tokens": 42,
        "completion_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    assert start_usage(encoder, {**TEXT_CHUNK, "usage": usage}) == {
        "input_tokens": 40,
        "output_tokens": 0,
        "cache_read_input_tokens": 2,
    }


def test_without_a_real_count_the_estimate_asked_for_or_zero() -> None:
    estimated = AnthropicEncoder("msg_1", "gpt", error_body, input_estimate=17)
    assert start_usage(estimated, TEXT_CHUNK) == {"input_tokens": 17, "output_tokens": 0}
    plain = AnthropicEncoder("msg_1", "gpt", error_body)
    assert start_usage(plain, TEXT_CHUNK) == {"input_tokens": 0, "output_tokens": 0}


@pytest.mark.parametrize("asked", [True, False], ids=["estimate asked", "not asked"])
async def test_a_translated_stream_starts_with_the_estimate_only_when_asked(
    gateway: Gateway, gpt: FakeOpenAI, asked: bool
) -> None:
    body = {
        "model": "gpt",
        "max_tokens": 32,
        "stream": True,
        "messages": [{"role": "user", "content": QUESTION}],
    }
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    if asked:
        headers[ESTIMATE_ASK] = "estimate"
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as response,
    ):
        assert response.status == 200
        raw = await response.read()

    found = events(raw)
    start = found[0]["message"]["usage"]
    count = encoding.load()
    assert count is not None
    expected = count(QUESTION) + 3  # the message's tokens and its framing
    assert start == {"input_tokens": expected if asked else 0, "output_tokens": 0}
    (delta,) = [e for e in found if e["type"] == "message_delta"]
    assert delta["usage"]["input_tokens"] > 0, "the upstream's real count follows"
    (sent,) = gpt.received
    assert ESTIMATE_ASK not in sent.headers, "the gateway's own header is not forwarded"
