"""What tracing costs a request: CPU seconds per request (``time.process_time``) of the data
plane in process, tracing off and on, and the cost of the hooks the request path runs when
tracing is off (``data_plane/tracing.py``: a ``None`` check per hook).

The gateway runs in this process with the benchmark workload's policy (one tenant, budget and
guardrails on) in front of the fast fake upstream in its own process; an aiohttp client in
this process sends the chat requests one after another, so the CPU figure is the gateway's
plus the client's (the same in both modes). "On" exports to an exporter that drops the spans:
it measures making them, not sending them. Rounds alternate off and on; medians are shown.

    .venv/bin/python -m bench.tracing_bench [requests per round] [rounds]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from bench.gateway_bench import fake_upstream
from bench.workload import BODY, ROUTE_NAME, SEAL_KEY, Shape, build_snapshot, key_secret
from data_plane import tracing
from data_plane.app import create_app
from data_plane.http import traced
from data_plane.settings import Settings
from data_plane.snapshots.store import SnapshotStore
from data_plane.types import Prices, Target, Usage
from data_plane.usage.reporter import MemoryUsageClient
from shared.crypto import Keyring
from shared.pb import control_pb2, snapshot_pb2


class DropSpans(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class GrantAll:
    async def acquire(self, request: control_pb2.LeaseRequest) -> control_pb2.LeaseResponse:
        grants = [
            control_pb2.LeaseGrant(
                limit_id=a.limit_id,
                window=a.window,
                granted=10**17,
                remaining=10**17,
                ttl_ms=600_000,
                nodes=1,
            )
            for a in request.asks
        ]
        return control_pb2.LeaseResponse(grants=grants)


async def cpu_per_request(state: Path, upstream: str, traced_on: bool, count: int) -> float:
    settings = Settings(
        port=0, control_plane="", node_id="bench-trace", state_dir=state, seal_key=SEAL_KEY
    )
    store = SnapshotStore(settings.snapshot_path, Keyring(SEAL_KEY))
    await asyncio.to_thread(store.persist, build_snapshot(Shape(), upstream_base_url=upstream))
    app = create_app(
        settings,
        usage_client=MemoryUsageClient(),
        lease_source=GrantAll(),
        span_exporter=DropSpans() if traced_on else None,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key_secret(0, 0)}", "Content-Type": "application/json"}
    try:
        async with aiohttp.ClientSession() as session:

            async def once() -> None:
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status

            for _ in range(200):  # warm up: connections, leases, caches
                await once()
            start = time.process_time()
            for _ in range(count):
                await once()
            return (time.process_time() - start) / count
    finally:
        await runner.cleanup()


def hooks_off_ns() -> float:
    """Nanoseconds of the hooks one request runs with tracing off: begin, authenticated,
    three steps (guardrails, admission, relay) with an annotation, the prompt check, one
    attempt check in the failover loop, a stream observer check on 20 chunks, end."""
    tracer: dict[str, object] = {"tracer": None}

    def request_hooks() -> None:
        trace = tracer["tracer"]  # traced.begin: the app's tracer, None
        assert trace is None
        traced.authenticated(None, None)  # type: ignore[arg-type]  # never read when off
        with tracing.step(None, "asc.guardrails.input") as span:
            tracing.annotate(span, "asc.guardrails.decision", "allow")
        if trace is not None:  # the prompt
            pass
        with tracing.step(None, "asc.admission", current=True):
            pass
        attempt = None if trace is None else trace  # the failover loop
        if attempt is not None:
            pass
        with tracing.step(None, "asc.relay"):
            for _ in range(20):
                if trace is not None:
                    pass
        traced.end(None, None)  # type: ignore[arg-type]  # never read when off

    loops = 200_000
    return min(timeit.repeat(request_hooks, number=loops, repeat=5)) / loops * 1e9


def spans_on_us() -> float:
    """Microseconds of CPU to make one request's spans with tracing on (server span, three
    steps, one attempt with a complete answer), exported to nowhere."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DropSpans()))
    tracer = provider.get_tracer("bench")
    target = Target(
        kind=snapshot_pb2.PROVIDER_KIND_OPENAI,
        base_url="",
        options={},
        api_key="",
        provider_model="bench-model-0",
        model_id="m",
        provider_id="p",
        credential_id="c",
        region="local",
        prices=Prices(),
    )
    answer = {"model": "bench-model-0", "choices": [{"finish_reason": "stop", "message": {}}]}
    usage = Usage(12, 20)

    def request_spans() -> None:
        trace = tracing.RequestTrace(tracer, "POST", "/v1/chat/completions", {}, "rid")
        trace.authenticated("tenant-0", False)
        with trace.step("asc.guardrails.input"):
            pass
        with trace.step("asc.admission", current=True):
            pass
        trace.attempt(target, ROUTE_NAME).succeeded(answer, usage)
        with trace.step("asc.relay"):
            pass
        trace.finish(
            status=200,
            error_code="",
            route_name=ROUTE_NAME,
            target=target,
            usage=usage,
            fallbacks=0,
        )

    loops = 2_000
    best = min(timeit.repeat(request_spans, number=loops, repeat=5)) / loops * 1e6
    provider.shutdown()
    return best


async def main(count: int, rounds: int) -> None:
    results: dict[bool, list[float]] = {False: [], True: []}
    with (
        tempfile.TemporaryDirectory(prefix="asc-bench-trace-") as tmp,
        fake_upstream(Path(tmp) / "logs") as (upstream, _),
    ):
        for r in range(rounds):
            for mode in (False, True):
                state = Path(tmp) / f"dp-{r}-{mode}"
                results[mode].append(await cpu_per_request(state, upstream, mode, count))
    off, on = statistics.median(results[False]), statistics.median(results[True])
    hooks = hooks_off_ns()
    print(f"requests per round: {count}, rounds: {rounds} (alternating)")
    print(f"tracing off: {off * 1e6:8.1f} us CPU per request (gateway + client)")
    print(f"tracing on:  {on * 1e6:8.1f} us CPU per request ({(on / off - 1) * 100:+.1f}%)")
    share = hooks / (off * 1e9) * 100
    print(f"hooks with tracing off: {hooks:6.0f} ns per request ({share:.2f}% of the request)")
    print(f"spans of one request with tracing on: {spans_on_us():.0f} us (microbenchmark)")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    asyncio.run(main(count, rounds))
