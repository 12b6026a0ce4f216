"""Streamed answers: throughput, CPU per request and added time to first token.

The same fixed fake upstream as the gateway benchmark (``bench.upstream``) answers a request
that asks for a stream with a 256-token answer, one token a ``chat.completion.chunk`` (then the
finish reason and the usage). Measured one at a time with the same streamed request, as in
``bench.gateway_bench``: the upstream called directly; the bare aiohttp + uvloop pass-through
relaying the stream's bytes; ASC's data plane (one process, every policy on: virtual key,
budget and rate limit through leases from a real control plane, input guardrail, usage and
audit reporting) without an output guardrail, and with one (e-mail redacted, payment cards
blocked, on the streamed output); and the LiteLLM proxy, one worker.

"first" is the time to the response's first body chunk: for a gateway, when the first token
reached the client; the upstream sends its whole answer at once, so its own figure is the
floor. Added = gateway minus upstream direct, at the same fixed rate.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench import gateway_bench, profile
from bench.gateway_bench import Row, measure
from bench.loadgen import Request
from bench.report import Report, ms
from bench.system import AscSystem, Provisioned, asc_system, wait_serving
from bench.workload import BODY

TITLE = "streamed answers (256 tokens in 1-token chunks): throughput, CPU, time to first token"

STREAM_BODY = json.dumps(
    {
        **json.loads(BODY),
        "max_tokens": 300,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
).encode()
PLAIN_ROUTE = "bench-no-output-guard"


def run() -> Report:
    report = Report()
    rows: list[Row] = []
    skipped: list[str] = []
    profiles: list[str] = []
    with tempfile.TemporaryDirectory(prefix="asc-bench-stream-") as tmp:
        work = Path(tmp)
        logs = work / "logs"
        with gateway_bench.fake_upstream(logs) as (upstream_base, upstream):
            request = Request(f"{upstream_base}/chat/completions", STREAM_BODY)
            direct = measure("upstream, called directly", request, 0, work, upstream.pid)
            rows.append(direct)
            relaying = "bare aiohttp+uvloop pass-through, relaying"
            rows.append(gateway_bench.passthrough(upstream_base, logs, work, STREAM_BODY, relaying))
            rows += _asc(upstream_base, work, profiles)
            litellm = gateway_bench.litellm_row(upstream_base, logs, work, STREAM_BODY)
            if isinstance(litellm, Row):
                rows.append(litellm)
            else:
                skipped.append(litellm)
    _tabulate(report, rows, direct)
    for note in skipped:
        report.note(note)
    report.lines += profiles
    return report


def _asc(upstream_base: str, work: Path, profiles: list[str]) -> list[Row]:
    rows = []
    with asc_system() as system:
        provisioned = system.provision(upstream_base)
        plain_key = _route_without_output_guard(system, provisioned)
        version = system.latest_version()
        dp = system.start_data_plane("dp-bench-stream")
        wait_serving(dp, version)
        control_plane = [proc.pid for proc in system.stack.procs.values()]
        cases = (
            ("ASC, 1 worker, no output guardrail", PLAIN_ROUTE, plain_key),
            ("ASC, 1 worker, output guardrail on the stream", provisioned.route_name, None),
        )
        for label, route, key in cases:
            body = json.loads(STREAM_BODY)
            body["model"] = route
            auth = {"Authorization": f"Bearer {key or provisioned.key_secret}"}
            request = Request(f"{dp.url}/v1/chat/completions", json.dumps(body).encode(), auth)
            rows.append(measure(label, request, 1, work, dp.pid, control_plane))
            if profile.enabled():  # ASC_BENCH_PROFILE=1: where each case's CPU goes
                seconds = gateway_bench.MAX_SECONDS
                recording = profile.record(dp.pid, seconds, work / f"dp-{route}.prof")
                gateway_bench.max_throughput(request, seconds, work)
                profiles += profile.lines(label, recording, 25)
        system.stop_data_planes()
    return rows


def _route_without_output_guard(system: AscSystem, provisioned: Provisioned) -> str:
    """A second route on the same model with its own guardrail policy, on input only (a
    route's policy replaces its tenant's), and a key for it with the same budget and rate
    limit as the benchmark's key. Returns the key's secret."""
    tenant = provisioned.tenant_id
    route = system.add_route(tenant, PLAIN_ROUTE, provisioned.model_id, provisioned.credential_id)
    system.api.call(
        "POST",
        "guardrails/",
        {
            "tenant": tenant,
            "route": route,
            "name": "pii-input-only",
            "categories": ["email", "payment_card"],
            "actions": {"email": "redact", "payment_card": "block"},
            "on_input": True,
            "on_output": False,
        },
    )
    return system.add_key(tenant, "bench-plain", route)


def _tabulate(report: Report, rows: list[Row], direct: Row) -> None:
    headers = ["", "max req/s", "CPU/req", "first at", "first p50", "first p99", "added first p50"]
    headers += ["added first p99", "errors"]
    base = direct.latency
    table = []
    for row in rows:
        lat, is_direct = row.latency, row is direct
        table.append(
            [
                row.name,
                row.max_rps,
                f"{row.cpu_us:,.0f} us",
                f"{row.rate:.0f} req/s",
                ms(lat["first_p50_us"]),
                ms(lat["first_p99_us"]),
                None if is_direct else ms(lat["first_p50_us"] - base["first_p50_us"]),
                None if is_direct else ms(lat["first_p99_us"] - base["first_p99_us"]),
                row.max_errors + lat["sent"] - lat["ok"],
            ]
        )
    report.table(headers, table)
    ceiling = gateway_bench.find(rows, "pass-through")
    litellm = gateway_bench.find(rows, "LiteLLM")
    for row in rows:
        if not row.name.startswith("ASC"):
            continue
        if ceiling:
            report.note(
                f"{row.name}: {row.max_rps / ceiling.max_rps:.0%} of the relaying pass-through's "
                f"req/s, {row.cpu_us / ceiling.cpu_us:.1f}x its CPU per request; the control "
                f"plane spent {row.side_cpu_us:,.0f} us CPU per request meanwhile."
            )
        if litellm and litellm.max_rps:
            report.note(
                f"{row.name}: {row.max_rps / litellm.max_rps:.1f}x LiteLLM's req/s, "
                f"{litellm.cpu_us / row.cpu_us:.1f}x less CPU per request."
            )
        elif litellm:
            report.note(f"{row.name}: LiteLLM completed no streamed request in its run.")
