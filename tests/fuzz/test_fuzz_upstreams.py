"""Fuzzing every provider adapter's parser in process, through the gateway: an upstream
answers each request with whatever hypothesis makes of it (a valid answer, event stream or
embeddings list of that provider mutated at random, random JSON, random bytes, any status and
content type, SSE events cut anywhere). A broken upstream may make the gateway answer 502 or
end a stream with an error event; it must never make it crash (500, or ``internal_error`` in
a stream) or hang."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.fuzz.harness import FUZZ, Served, serving
from tests.fuzz.test_fuzz_endpoints import JSON, QUESTION, encode

KINDS = {
    "openai": snapshot_pb2.PROVIDER_KIND_OPENAI,
    "compatible": snapshot_pb2.PROVIDER_KIND_OPENAI_COMPATIBLE,
    "azure": snapshot_pb2.PROVIDER_KIND_AZURE_OPENAI,
    "mistral": snapshot_pb2.PROVIDER_KIND_MISTRAL,
    "anthropic": snapshot_pb2.PROVIDER_KIND_ANTHROPIC,
    "gemini": snapshot_pb2.PROVIDER_KIND_GEMINI,
}
KEY = "sk-asc-fuzz-upstreams"
# Breakers that never open: every example reaches the parser.
OPTIONS = {"breaker_failures": "1000000000"}

OPENAI_ANSWER = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
OPENAI_CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
}
OPENAI_EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
    "model": "m",
    "usage": {"prompt_tokens": 1, "total_tokens": 1},
}
ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [{"type": "text", "text": "Hi"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 3, "output_tokens": 1},
}
ANTHROPIC_EVENTS = [
    {"type": "message_start", "message": {**ANTHROPIC_MESSAGE, "content": []}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
    {"type": "message_stop"},
]
GEMINI_ANSWER = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1},
}
GEMINI_EMBEDDINGS = {"embeddings": [{"values": [0.1, 0.2]}]}


@dataclass
class Reply:
    status: int = 200
    content_type: str = "application/json"
    chunks: list[bytes] = field(default_factory=lambda: [b"{}"])


class RawUpstream:
    """Answers every request with ``reply``, chunk by chunk."""

    def __init__(self) -> None:
        self.reply = Reply()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(
            status=self.reply.status, headers={"Content-Type": self.reply.content_type}
        )
        await response.prepare(request)
        for chunk in self.reply.chunks:
            await response.write(chunk)
        await response.write_eof()
        return response

    @asynccontextmanager
    async def running(self) -> AsyncIterator[RawUpstream]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            yield self
        finally:
            await runner.cleanup()


def policy(base_url: str) -> snapshot_pb2.Snapshot:
    builder = snapshots.PolicyBuilder().tenant("t-fuzz")
    for name, kind in KINDS.items():
        builder.provider(f"p-{name}", kind=kind, base_url=base_url, options=OPTIONS)
        builder.credential(f"c-{name}", "t-fuzz", f"p-{name}", "sk-upstream-fuzz")
        builder.model(f"m-{name}", f"p-{name}", "upstream-model")
        builder.route(f"r-{name}", "t-fuzz", name, [(f"m-{name}", f"c-{name}")])
    for route in builder.policy.routes:  # an upstream that stalls is a 504 well within a test
        route.first_token_timeout_ms = route.total_timeout_ms = 3000
    return builder.key("k-fuzz", "t-fuzz", KEY, [f"r-{n}" for n in KINDS]).snapshot()


@dataclass
class Upstreams:
    served: Served
    upstream: RawUpstream


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    """The upstream and the gateway on one loop (the snapshot names the upstream's port)."""
    loop = asyncio.new_event_loop()
    upstream = RawUpstream()
    context = upstream.running()
    loop.run_until_complete(context.__aenter__())
    try:
        state = tmp_path_factory.mktemp("fuzz-upstreams")
        with serving(state, policy(upstream.url), loop=loop) as served:
            yield Upstreams(served, upstream)
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


@st.composite
def mutation_of(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with some of its parts replaced by random JSON, removed or duplicated."""
    roll = draw(st.integers(0, 9))
    if roll == 0 or depth > 5:
        return draw(JSON) if roll == 0 else value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            choice = draw(st.integers(0, 9))
            if choice == 0:
                continue  # removed
            out[key] = draw(mutation_of(item, depth + 1)) if choice < 4 else item
        return out
    if isinstance(value, list):
        items = [draw(mutation_of(item, depth + 1)) for item in value]
        return items + items if draw(st.integers(0, 9)) == 0 else items
    return draw(st.one_of(st.just(value), JSON))


def sse(events: list[Any], *, named: bool, done: bool) -> list[bytes]:
    out = []
    for event in events:
        data = event if isinstance(event, bytes) else encode(event)
        name = event.get("type") if named and isinstance(event, dict) else None
        head = f"event: {name}\n".encode() if isinstance(name, str) else b""
        out.append(head + b"data: " + data + b"\n\n")
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


@st.composite
def replies(draw: st.DrawFn, kind: str, operation: str) -> Reply:
    status = draw(st.one_of(st.just(200), st.integers(200, 599)))  # 1xx: never final
    content_type = draw(
        st.sampled_from(["application/json", "text/event-stream", "text/plain", "text/html"])
    )
    shape = draw(st.sampled_from(["valid", "valid", "json", "bytes"]))
    if shape == "bytes":
        return Reply(status, content_type, draw(st.lists(st.binary(max_size=80), max_size=4)))
    if shape == "json":
        return Reply(status, content_type, [encode(draw(JSON))])
    if operation == "stream":
        if kind == "anthropic":
            events: list[Any] = [draw(mutation_of(e)) for e in ANTHROPIC_EVENTS]
        elif kind == "gemini":
            events = [draw(mutation_of(GEMINI_ANSWER)) for _ in range(draw(st.integers(0, 3)))]
        else:
            events = [draw(mutation_of(OPENAI_CHUNK)) for _ in range(draw(st.integers(0, 3)))]
            events.append(draw(mutation_of({**OPENAI_CHUNK, "usage": OPENAI_ANSWER["usage"]})))
        if draw(st.booleans()):
            events.insert(draw(st.integers(0, len(events))), draw(st.binary(max_size=40)))
        chunks = sse(events, named=kind == "anthropic", done=draw(st.booleans()))
        cut = draw(st.integers(0, sum(map(len, chunks))))
        whole = b"".join(chunks)
        whole = whole if draw(st.booleans()) else whole[:cut]
        split = draw(st.integers(1, max(1, len(whole))))
        pieces = [whole[i : i + split] for i in range(0, len(whole), split)] or [b""]
        return Reply(status, "text/event-stream", pieces)
    seed: dict[str, Any]
    if operation == "embeddings":
        seed = GEMINI_EMBEDDINGS if kind == "gemini" else OPENAI_EMBEDDINGS
    else:
        seed = {"anthropic": ANTHROPIC_MESSAGE, "gemini": GEMINI_ANSWER}.get(kind, OPENAI_ANSWER)
    return Reply(status, content_type, [encode(draw(mutation_of(seed)))])


def request_of(operation: str, kind: str) -> tuple[str, dict[str, Any]]:
    if operation == "embeddings":
        return "/v1/embeddings", {"model": kind, "input": ["Hello", "there"]}
    if operation == "messages":
        return "/v1/messages", {"model": kind, "max_tokens": 20, "messages": QUESTION}
    body = {"model": kind, "messages": QUESTION, "stream": operation == "stream"}
    return "/v1/chat/completions", body


@FUZZ
@given(data=st.data())
def test_any_upstream_answer(upstreams: Upstreams, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(sorted(KINDS)))
    operation = data.draw(st.sampled_from(["chat", "stream", "messages", "embeddings"]))
    upstreams.upstream.reply = data.draw(replies(kind, operation))
    path, body = request_of(operation, kind)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    answer = upstreams.served.send("POST", path, headers, json.dumps(body).encode())
    assert answer.status != 500, answer.body[:500]
    assert b"internal_error" not in answer.body, answer.body[-500:]


@pytest.mark.parametrize(
    ("kind", "operation", "answer"),
    [
        ("gemini", "chat", {"candidates": [None]}),  # found by the fuzz target: was a 500
        ("gemini", "embeddings", {"embeddings": [None]}),
        ("anthropic", "chat", {"content": [None], "usage": []}),
        ("openai", "chat", {"choices": [None]}),
        ("mistral", "chat", {"choices": [{"message": []}]}),
        ("openai", "embeddings", {"data": [None]}),
        ("azure", "messages", {"choices": [{"message": 1}]}),  # found by the fuzz target too
        ("openai", "stream", {"choices": [{"delta": "x"}]}),
    ],
)
def test_a_malformed_answer_is_a_bad_gateway_not_a_crash(
    upstreams: Upstreams, kind: str, operation: str, answer: Any
) -> None:
    if operation == "stream":
        reply = Reply(200, "text/event-stream", sse([answer], named=False, done=True))
    else:
        reply = Reply(chunks=[encode(answer)])
    upstreams.upstream.reply = reply
    path, body = request_of(operation, kind)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    sent = upstreams.served.send("POST", path, headers, json.dumps(body).encode())
    assert sent.status in (200, 502), sent.body[:300]
    assert b"internal_error" not in sent.body, sent.body[-300:]
