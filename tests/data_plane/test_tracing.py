"""Traces of the data plane (data_plane/tracing.py), read from the SDK's in-memory exporter:
one server span per request with a child per pipeline step and per upstream attempt (so a
fallback shows), GenAI attributes, no conversation text unless the tenant consents, the
caller's ``traceparent`` joined, a lease ask made on a request's behalf carrying its trace,
and nothing at all when tracing is off."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web
from openai import AsyncOpenAI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from data_plane import tracing
from data_plane.app import create_app
from data_plane.http.traced import TRACER
from data_plane.limits.client import LeaseSource
from data_plane.settings import Settings, traces_endpoint
from data_plane.snapshots.store import SnapshotStore
from data_plane.types import Event, Prices, Target, Usage
from data_plane.usage.reporter import MemoryUsageClient
from shared.pb import control_pb2, snapshot_pb2
from tests.data_plane import snapshots
from tests.data_plane.budgets import GrantAll, hard_budgets
from tests.data_plane.snapshots import ACME_KEY, ACME_UPSTREAM
from tests.data_plane.test_proxy_openai import (
    BACKUP_MODEL,
    BACKUP_REPLY,
    BACKUP_UPSTREAM,
    MESSAGES,
    PRIMARY_MODEL,
    gateway_snapshot,
)
from tests.data_plane.waiting import eventually
from tests.fakes.openai_server import Behaviour, FakeOpenAI

PROMPT = "Say hello to the gateway"  # the user's text in MESSAGES
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@dataclass
class Traced:
    url: str
    app: web.Application
    spans: InMemorySpanExporter
    usage: MemoryUsageClient

    def client(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=f"{self.url}/v1", api_key=ACME_KEY, max_retries=0, timeout=30)

    def finished(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.spans.get_finished_spans())


@asynccontextmanager
async def gateway(
    state_dir: Path,
    snapshot: snapshot_pb2.Snapshot,
    *,
    exporter: InMemorySpanExporter | None,
    lease_source: LeaseSource | None = None,
) -> AsyncIterator[Traced]:
    settings = Settings(
        port=0,
        control_plane="",
        node_id="dp-trace",
        region="eu",
        state_dir=state_dir,
        seal_key=snapshots.SEAL_KEY,
        usage_flush_interval_s=0.02,
    )
    store = SnapshotStore(settings.snapshot_path, snapshots.keyring())
    await asyncio.to_thread(store.persist, snapshot)  # before the app: off the loop all the same
    usage = MemoryUsageClient()
    app = create_app(
        settings,
        usage_client=usage,
        lease_source=lease_source,
        rand=random.Random(0),
        span_exporter=exporter,
    )
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield Traced(f"http://{host}:{port}", app, exporter or InMemorySpanExporter(), usage)
    finally:
        await runner.cleanup()


@pytest.fixture
async def primary() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=ACME_UPSTREAM, model=PRIMARY_MODEL) as fake:
        yield fake


@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    default = Behaviour(reply=BACKUP_REPLY)
    async with FakeOpenAI(api_key=BACKUP_UPSTREAM, model=BACKUP_MODEL, default=default) as fake:
        yield fake


def consenting(snapshot: snapshot_pb2.Snapshot) -> snapshot_pb2.Snapshot:
    """The same policy with tenant acme's consent to prompt text in its traces."""
    policy = snapshot_pb2.Policy()
    policy.CopyFrom(snapshot.policy)
    policy.tenants[0].trace_prompts = True
    return snapshots.snapshot_of(policy, snapshot.version + 1)


@pytest.fixture
async def traced(tmp_path: Path, primary: FakeOpenAI, backup: FakeOpenAI) -> AsyncIterator[Traced]:
    snapshot = gateway_snapshot(primary.base_url, backup.base_url)
    async with gateway(tmp_path / "dp", snapshot, exporter=InMemorySpanExporter()) as gw:
        yield gw


def server_span(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    return server


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    """The direct children of ``parent``, in the order they started."""
    found = [
        s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def all_text(spans: Sequence[ReadableSpan]) -> str:
    """Every attribute value and event of every span, as one string."""
    parts: list[str] = []
    for span in spans:
        parts.extend(str(v) for v in (span.attributes or {}).values())
        parts.extend(f"{e.name} {dict(e.attributes or {})}" for e in span.events)
        parts.append(span.name)
    return "\n".join(parts)


async def test_a_fallback_is_one_trace_with_one_client_span_per_upstream_attempt(
    traced: Traced, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(status=503))
    async with traced.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat-ha", messages=MESSAGES
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == BACKUP_REPLY
    (event,) = await _events(traced, 1)

    spans = traced.finished()
    server = server_span(spans)
    assert server.name == "POST /v1/chat/completions"
    assert server.parent is None, "no traceparent sent: the gateway starts the trace"
    assert {s.context.trace_id for s in spans} == {server.context.trace_id}
    steps = children(spans, server)
    assert [s.name for s in steps] == [
        "asc.admission",
        f"chat {PRIMARY_MODEL}",
        f"chat {BACKUP_MODEL}",
        "asc.relay",
    ]
    failed, answered = steps[1], steps[2]
    assert failed.kind is answered.kind is SpanKind.CLIENT
    assert attributes(failed) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai_compatible",
        "gen_ai.request.model": PRIMARY_MODEL,
        "asc.provider_id": "p-primary",
        "asc.model_id": "m-primary",
        "asc.attempt.outcome": "status_503",
        "error.type": "status_503",
    }
    assert failed.status.status_code is StatusCode.ERROR
    assert attributes(answered)["asc.attempt.outcome"] == "ok"
    assert attributes(answered)["gen_ai.response.model"] == BACKUP_MODEL
    assert attributes(answered)["gen_ai.usage.output_tokens"] == event.completion_tokens
    assert answered.status.status_code is not StatusCode.ERROR

    top = attributes(server)
    assert top["asc.request_id"] == raw.headers["x-request-id"] == event.request_id
    assert top["asc.tenant"] == "acme"
    assert top["asc.route"] == top["gen_ai.request.model"] == "chat-ha"
    assert top["http.response.status_code"] == 200
    assert top["asc.fallbacks"] == 1
    assert "asc.error_code" not in top
    assert top["gen_ai.operation.name"] == "chat"
    assert top["gen_ai.provider.name"] == "openai_compatible"
    assert top["gen_ai.response.model"] == BACKUP_MODEL
    assert top["gen_ai.usage.input_tokens"] == event.prompt_tokens > 0
    assert top["gen_ai.usage.output_tokens"] == event.completion_tokens > 0
    assert top["gen_ai.response.finish_reasons"] == ("stop",)


async def test_a_streamed_fallback_shows_both_attempts_and_the_relay(
    traced: Traced, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(drop_after_chunks=0))
    async with traced.client() as client:
        stream = await client.chat.completions.create(
            model="chat-ha", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == BACKUP_REPLY
    (event,) = await _events(traced, 1)
    spans = traced.finished()
    server = server_span(spans)
    steps = children(spans, server)
    assert [s.name for s in steps] == [
        "asc.admission",
        f"chat {PRIMARY_MODEL}",
        f"chat {BACKUP_MODEL}",
        "asc.relay",
    ]
    assert attributes(steps[1])["asc.attempt.outcome"] != "ok"
    assert attributes(steps[2])["asc.attempt.outcome"] == "ok"
    top = attributes(server)
    assert top["gen_ai.response.finish_reasons"] == ("stop",)
    assert top["gen_ai.usage.output_tokens"] == event.completion_tokens > 0
    assert top["asc.fallbacks"] == 1


async def test_no_prompt_or_completion_text_without_the_tenants_consent(
    traced: Traced,
) -> None:
    async with traced.client() as client:
        await client.chat.completions.create(model="chat-ha", messages=MESSAGES)
        stream = await client.chat.completions.create(
            model="chat-ha", messages=MESSAGES, stream=True
        )
        _ = [chunk async for chunk in stream]
    await _events(traced, 2)
    text = all_text(traced.finished())
    assert "asc.relay" in text, "the spans were there to search"
    assert PROMPT not in text
    assert "Be brief" not in text
    assert BACKUP_REPLY not in text
    assert "Hello" not in text


async def test_with_the_tenants_consent_the_messages_are_in_the_trace(
    tmp_path: Path, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    snapshot = consenting(gateway_snapshot(primary.base_url, backup.base_url))
    async with gateway(tmp_path / "dp", snapshot, exporter=InMemorySpanExporter()) as gw:
        async with gw.client() as client:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
            stream = await client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True
            )
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream])
        await _events(gw, 2)
        spans = gw.finished()
    servers = sorted(
        (s for s in spans if s.kind is SpanKind.SERVER), key=lambda s: s.start_time or 0
    )
    assert len(servers) == 2
    for server in servers:
        top = attributes(server)
        assert tracing_json(top["gen_ai.input.messages"]) == [
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": PROMPT}]},
        ]
        (output,) = tracing_json(top["gen_ai.output.messages"])
        assert output["role"] == "assistant"
        assert output["parts"] == [{"type": "text", "content": streamed}]


async def test_the_callers_traceparent_is_joined(traced: Traced) -> None:
    async with traced.client() as client:
        await client.chat.completions.create(
            model="chat",
            messages=MESSAGES,
            extra_headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
        )
    await _events(traced, 1)
    spans = traced.finished()
    server = server_span(spans)
    assert server.parent is not None
    assert server.parent.is_remote
    assert format(server.parent.span_id, "016x") == CALLER_SPAN
    assert {format(s.context.trace_id, "032x") for s in spans} == {CALLER_TRACE}


async def test_a_malformed_traceparent_starts_a_trace_of_its_own(traced: Traced) -> None:
    async with traced.client() as client:
        await client.chat.completions.create(
            model="chat", messages=MESSAGES, extra_headers={"traceparent": "00-zz-yy-01"}
        )
    await _events(traced, 1)
    server = server_span(traced.finished())
    assert server.parent is None


async def test_a_refusal_is_traced_with_its_error_code(traced: Traced) -> None:
    url = f"{traced.url}/v1"
    async with AsyncOpenAI(base_url=url, api_key="sk-asc-nobody", max_retries=0) as stranger:
        with pytest.raises(openai.AuthenticationError):
            await stranger.chat.completions.create(model="chat", messages=MESSAGES)
    async with traced.client() as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="no-such-route", messages=MESSAGES)
    spans = traced.finished()
    codes = sorted(
        (attributes(s)["http.response.status_code"], attributes(s)["asc.error_code"])
        for s in spans
        if s.kind is SpanKind.SERVER
    )
    assert [status for status, _ in codes] == [401, 404]
    assert all(code for _, code in codes)
    assert all(s.status.status_code is not StatusCode.ERROR for s in spans), "4xx: the caller's"


async def test_a_lease_ask_on_a_requests_path_carries_its_trace(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    """The first request under a budget waits for a lease round: the ask runs with the
    request's admission span as its parent, which the gRPC client sends as ``traceparent``."""

    class Recording(GrantAll):
        def __init__(self) -> None:
            super().__init__()
            self.carriers: list[dict[str, str] | None] = []

        async def acquire(self, request: control_pb2.LeaseRequest) -> control_pb2.LeaseResponse:
            self.carriers.append(tracing.carrier())
            return await super().acquire(request)

    source = Recording()
    snapshot = hard_budgets(upstream.base_url, ["t-acme"])
    async with gateway(
        tmp_path / "dp", snapshot, exporter=InMemorySpanExporter(), lease_source=source
    ) as gw:
        async with gw.client() as client:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        await _events(gw, 1)
        spans = gw.finished()
    (admission,) = [s for s in spans if s.name == "asc.admission"]
    asked = [c for c in source.carriers if c is not None]
    assert asked, "the round the request waited for ran inside its trace"
    trace_id = format(admission.context.trace_id, "032x")
    span_id = format(admission.context.span_id, "016x")
    version, asked_trace, parent, _flags = asked[0]["traceparent"].split("-")
    assert (version, asked_trace, parent) == ("00", trace_id, span_id)


async def test_off_by_default_no_tracer_and_no_spans(
    tmp_path: Path, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    assert Settings.from_env({}).otlp_endpoint == ""
    snapshot = gateway_snapshot(primary.base_url, backup.base_url)
    async with gateway(tmp_path / "dp", snapshot, exporter=None) as gw:
        assert gw.app[TRACER] is None
        async with gw.client() as client:
            completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
        assert completion.choices[0].message.content
        await _events(gw, 1)


def test_the_endpoint_comes_from_the_asc_or_the_standard_otel_variables() -> None:
    assert traces_endpoint({}) == ""
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    assert (
        traces_endpoint(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/x",
            }
        )
        == "http://t:4318/x"
    )
    assert (
        traces_endpoint(
            {"ASC_DP_OTLP_ENDPOINT": "http://a:1/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}
        )
        == "http://a:1/v1/traces"
    )
    assert Settings.from_env({"ASC_DP_OTLP_ENDPOINT": "http://a:1/v1/traces"}).otlp_endpoint


def test_finish_reasons_and_messages_of_each_answer_format() -> None:
    assert tracing.finish_reasons({"choices": [{"finish_reason": "length"}]}) == ["length"]
    assert tracing.finish_reasons({"stop_reason": "end_turn"}) == ["end_turn"]
    assert tracing.finish_reasons({"object": "response", "status": "completed"}) == ["completed"]
    assert tracing.finish_reasons({"data": []}) == []
    anthropic = {
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image"}]}
        ],
    }
    assert tracing.input_messages(anthropic) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}, {"type": "image"}]},
    ]
    assert tracing.input_messages({"input": "Hi", "instructions": "Be brief."}) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
    ]
    assert tracing.output_text({"content": [{"type": "text", "text": "Yes"}]}) == ["Yes"]
    assert tracing.output_text(
        {"output": [{"content": [{"type": "output_text", "text": "Yes"}]}]}
    ) == ["Yes"]


def tracing_json(value: Any) -> Any:
    return orjson.loads(value)


async def _events(gw: Traced, count: int) -> list[control_pb2.UsageEvent]:
    await eventually(lambda: len(gw.usage.events) >= count, f"{count} usage event(s)")
    return gw.usage.events


async def test_the_input_guardrails_are_a_step_and_only_redacted_text_is_traced(
    tmp_path: Path, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    snapshot = consenting(gateway_snapshot(primary.base_url, backup.base_url))
    snapshot.policy.guardrails.add(
        id="g-acme",
        tenant_id="t-acme",
        on_input=True,
        categories=["email"],
        actions={"email": "redact"},
    )
    snapshot = snapshots.snapshot_of(snapshot.policy, snapshot.version + 1)
    secret = "jane.doe@example.com"
    async with gateway(tmp_path / "dp", snapshot, exporter=InMemorySpanExporter()) as gw:
        async with gw.client() as client:
            await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"Mail {secret} now"}]
            )
        await _events(gw, 1)
        spans = gw.finished()
    server = server_span(spans)
    steps = children(spans, server)
    assert [s.name for s in steps][:2] == ["asc.guardrails.input", "asc.admission"]
    assert attributes(steps[0])["asc.guardrails.decision"] == "redact"
    assert secret not in all_text(spans)
    (message,) = tracing_json(attributes(server)["gen_ai.input.messages"])
    assert message["parts"][0]["content"].startswith("Mail ")


async def test_an_answer_from_the_response_cache_has_no_attempt_spans(
    tmp_path: Path, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    snapshot = gateway_snapshot(primary.base_url, backup.base_url)
    (route,) = [r for r in snapshot.policy.routes if r.name == "chat"]
    route.cache_ttl_s = 60
    snapshot = snapshots.snapshot_of(snapshot.policy, snapshot.version + 1)
    async with gateway(tmp_path / "dp", snapshot, exporter=InMemorySpanExporter()) as gw:
        async with gw.client() as client:
            for _ in range(2):
                await client.chat.completions.create(model="chat", messages=MESSAGES)
        await _events(gw, 2)
        spans = gw.finished()
    paid, hit = sorted((s for s in spans if s.kind is SpanKind.SERVER), key=_started)
    assert len(primary.received) == 1
    assert "asc.cache_hit" not in attributes(paid)
    assert attributes(hit)["asc.cache_hit"] is True
    assert [s.kind for s in children(spans, paid)].count(SpanKind.CLIENT) == 1
    assert [s.kind for s in children(spans, hit)].count(SpanKind.CLIENT) == 0


def _started(span: ReadableSpan) -> int:
    return span.start_time or 0


def _stream_trace(
    path: str, items: Sequence[Any], target_kind: int, prompts: bool = True
) -> dict[str, Any]:
    """The server span's attributes after ``items`` of a stream passed the observer."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace = tracing.RequestTrace(provider.get_tracer("test"), "POST", path, {}, "rid-1")
    trace.authenticated("acme", prompts)
    for item in items:
        trace.observe(item)
    target = Target(
        kind=target_kind,
        base_url="",
        options={},
        api_key="",
        provider_model="upstream-model",
        model_id="m",
        provider_id="p",
        credential_id="c",
        region="eu",
        prices=Prices(),
    )
    trace.finish(
        status=200, error_code="", route_name="chat", target=target, usage=Usage(3, 4), fallbacks=0
    )
    (span,) = exporter.get_finished_spans()
    return attributes(span)


def test_anthropic_stream_events_give_the_model_stop_reason_and_text() -> None:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"model": "claude-upstream", "stop_reason": None}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "lo"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
        {"type": "message_stop"},
    ]
    items = [Event(b"", b"", body) for body in events]
    top = _stream_trace("/v1/messages", items, snapshot_pb2.PROVIDER_KIND_ANTHROPIC)
    assert top["gen_ai.provider.name"] == "anthropic"
    assert top["gen_ai.response.model"] == "claude-upstream"
    assert top["gen_ai.response.finish_reasons"] == ("end_turn",)
    (output,) = tracing_json(top["gen_ai.output.messages"])
    assert output["parts"] == [{"type": "text", "content": "Hello"}]
    quiet = _stream_trace("/v1/messages", items, snapshot_pb2.PROVIDER_KIND_ANTHROPIC, False)
    assert "gen_ai.output.messages" not in quiet


def test_responses_stream_events_give_the_status_and_text() -> None:
    completed = {"object": "response", "model": "gpt-upstream", "status": "completed"}
    items = [
        Event(b"", b"", {"type": "response.output_text.delta", "delta": "Hi"}),
        Event(b"", b"", {"type": "response.completed", "response": completed}),
        Event(b"", b"", None),
    ]
    top = _stream_trace("/v1/responses", items, snapshot_pb2.PROVIDER_KIND_OPENAI)
    assert top["gen_ai.response.model"] == "gpt-upstream"
    assert top["gen_ai.response.finish_reasons"] == ("completed",)
    assert tracing_json(top["gen_ai.output.messages"])[0]["parts"][0]["content"] == "Hi"


def test_an_answer_renamed_to_the_route_reports_the_providers_model() -> None:
    chunks = [{"model": "chat", "choices": [{"delta": {}, "finish_reason": "length"}]}]
    top = _stream_trace("/v1/chat/completions", chunks, snapshot_pb2.PROVIDER_KIND_OPENAI)
    assert top["gen_ai.response.model"] == "upstream-model"
    assert top["gen_ai.response.finish_reasons"] == ("length",)


async def test_a_caller_that_does_not_sample_gets_its_answer_and_no_spans(
    traced: Traced, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(status=503))
    async with traced.client() as client:
        completion = await client.chat.completions.create(
            model="chat-ha",
            messages=MESSAGES,
            extra_headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"},
        )
    assert completion.choices[0].message.content == BACKUP_REPLY
    await _events(traced, 1)
    assert traced.finished() == ()
