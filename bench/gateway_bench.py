"""Gateway throughput and added latency, end to end on this machine.

One fixed fast fake upstream (``bench.upstream``, its own process) answers every chat request
with the same small completion. In front of it, measured one at a time with the same request:
(a) nothing (the upstream called directly), (b) a bare aiohttp + uvloop pass-through (the
ceiling for a Python gateway), (c) ASC's data plane, one process and then ASC_DP_WORKERS=2,
with every policy on: a virtual key, a budget and a rate limit held through leases from a real
control plane, a guardrail policy on input and output (e-mail redacted, payment cards
blocked), and usage and audit reporting to that control plane, and (d) the LiteLLM proxy,
one worker. For each: the most requests per second (wrk, 32 connections, closed loop), the
CPU time the gateway's processes spent per request meanwhile, and the latency at a fixed 500
requests per second (open loop; a gateway that cannot sustain that, LiteLLM, at half its
maximum instead), the added latency being the difference from the upstream's own. ASC with
one worker is measured twice more with the same exchange in the other dialects, each forwarded
as it is to an upstream that speaks it: Anthropic's ``/v1/messages`` to an Anthropic provider
and OpenAI's ``/v1/responses`` to the OpenAI-compatible one, and once more on a route with
the response cache on, the same request repeated: every answer after the first is a cache hit
(authenticated, authorised, guarded, admitted and recorded, the upstream not called).

Everything shares this machine's CPUs (the load generator, the upstream, the gateway and, for
ASC, the control plane ingesting usage), so figures compare gateways with each other on the
same box; they are not what each would do alone. CPU per request is the figure least moved by
other work on the machine.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import litellm_proxy, loadgen, profile
from bench.loadgen import Request, WrkResult
from bench.procs import Proc, cpu_seconds, free_port, python_module, running
from bench.report import Report, ms
from bench.system import AscSystem, Provisioned, asc_system, wait_serving
from bench.workload import ANTHROPIC_ROUTE_NAME, BODY, MESSAGES_BODY, RESPONSES_BODY

TITLE = "gateway throughput and added latency (fake upstream, small non-streamed chat request)"

RATE = 500.0  # requests per second for the latency measurement
CONNECTIONS = 32
MAX_SECONDS = float(os.environ.get("ASC_BENCH_SECONDS", "5"))
LATENCY_SECONDS = 2 * MAX_SECONDS


@dataclass
class Row:
    name: str
    processes: int
    max_rps: float
    max_errors: int
    rate: float
    latency: dict[str, Any]
    cpu_us: float  # CPU time of the measured process(es) per request at maximum throughput
    side_cpu_us: float = 0.0  # the same for its helpers (ASC: the control plane's processes)

    @property
    def rps_per_process(self) -> float:
        return self.max_rps / self.processes if self.processes else 0.0


def measure(
    name: str, request: Request, processes: int, work_dir: Path, pid: int, side: Sequence[int] = ()
) -> Row:
    """Warm up, find the maximum throughput (and the CPU time process ``pid`` and its children
    spent per request meanwhile), then the latency at ``RATE`` (or, for a gateway that cannot
    sustain it, at half its maximum)."""
    max_throughput(request, 1.0, work_dir)  # warm-up: pools, leases, caches
    cpu_before = cpu_seconds(pid)
    side_before = sum(cpu_seconds(p) for p in side)
    throughput = max_throughput(request, MAX_SECONDS, work_dir)
    cpu = cpu_seconds(pid) - cpu_before
    side_cpu = sum(cpu_seconds(p) for p in side) - side_before
    rate = RATE if throughput.rps >= RATE * 1.25 else max(5.0, round(throughput.rps / 2))
    latency = loadgen.run_open_loop(request, rate, LATENCY_SECONDS, warmup=1.0)
    cpu_us = cpu / max(1, throughput.requests) * 1e6
    side_us = side_cpu / max(1, throughput.requests) * 1e6
    row = Row(name, processes, throughput.rps, throughput.errors, rate, latency, cpu_us, side_us)
    print(
        f"  {name}: {row.max_rps:,.0f} req/s ({cpu_us:,.0f} us CPU each); at {rate:.0f} req/s "
        f"p50 {ms(latency['p50_us'])}, p99 {ms(latency['p99_us'])}",
        flush=True,
    )
    return row


def max_throughput(request: Request, seconds: float, work_dir: Path) -> WrkResult:
    if loadgen.wrk_available():
        return loadgen.run_wrk(request, seconds, CONNECTIONS, work_dir)
    return loadgen.run_closed_loop(request, seconds, CONNECTIONS)


def _all_workers_serve(request: Request, attempts: int = 40) -> None:
    """Each new connection may land on another worker: wait until a run of fresh
    connections is served, so every worker has the latest snapshot."""
    served = 0
    deadline = time.monotonic() + 30
    while served < attempts and time.monotonic() < deadline:
        status = loadgen.send_once(request)
        served = served + 1 if status == 200 else 0
        if status != 200:
            time.sleep(0.05)
    if served < attempts:
        raise RuntimeError(f"the data plane does not serve the benchmark request (status {status})")


@contextmanager
def fake_upstream(logs: Path) -> Iterator[tuple[str, Proc]]:
    """The fixed fast fake upstream (``bench.upstream``) in its own process: its base URL
    and process."""
    port = free_port()
    with running(
        "upstream",
        python_module("bench.upstream", "--port", str(port)),
        logs,
        ready_url=f"http://127.0.0.1:{port}/health",
    ) as upstream:
        yield f"http://127.0.0.1:{port}/v1", upstream


def run() -> Report:
    report = Report()
    rows: list[Row] = []
    skipped: list[str] = []
    profiles: list[str] = []
    with tempfile.TemporaryDirectory(prefix="asc-bench-gw-") as tmp:
        work = Path(tmp)
        logs = work / "logs"
        with fake_upstream(logs) as (upstream_base, upstream):
            direct = measure(
                "upstream, called directly",
                Request(f"{upstream_base}/chat/completions", BODY),
                0,
                work,
                upstream.pid,
            )
            rows.append(direct)
            rows.append(passthrough(upstream_base, logs, work))
            rows += _asc(upstream_base, work, profiles)
            litellm = litellm_row(upstream_base, logs, work)
            if isinstance(litellm, Row):
                rows.append(litellm)
            else:
                skipped.append(litellm)
    _tabulate(report, rows, direct)
    for note in skipped:
        report.note(note)
    _check(report, rows, direct)
    report.lines += profiles
    return report


def passthrough(
    upstream_base: str,
    logs: Path,
    work: Path,
    body: bytes = BODY,
    name: str = "bare aiohttp+uvloop pass-through",
) -> Row:
    port = free_port()
    argv = python_module("bench.passthrough", "--port", str(port), "--upstream", upstream_base)
    with running("passthrough", argv, logs, ready_url=f"http://127.0.0.1:{port}/health") as proc:
        request = Request(f"http://127.0.0.1:{port}/v1/chat/completions", body)
        return measure(name, request, 1, work, proc.pid)


def _asc(upstream_base: str, work: Path, profiles: list[str]) -> list[Row]:
    rows = []
    with asc_system() as system:
        provisioned = system.provision(upstream_base)
        claude_key = _provision_anthropic(system, provisioned.tenant_id, upstream_base)
        cached_key = _provision_cached(system, provisioned)
        version = system.latest_version()
        auth = {"Authorization": f"Bearer {provisioned.key_secret}"}
        for workers in (1, 2):
            dp = system.start_data_plane(f"dp-bench-{workers}w", workers=workers)
            wait_serving(dp, version)
            request = Request(f"{dp.url}/v1/chat/completions", BODY, auth)
            _all_workers_serve(request)
            label = f"ASC data plane, {workers} worker{'s' if workers > 1 else ''}, all policy on"
            control_plane = [proc.pid for proc in system.stack.procs.values()]
            rows.append(measure(label, request, workers, work, dp.pid, control_plane))
            if workers == 1:
                rows += _other_dialects(dp.url, auth, {"x-api-key": claude_key}, work, dp.pid)
                rows.append(_cache_hits(dp.url, cached_key, work, dp.pid))
            if workers == 1 and profile.enabled():
                recording = profile.record(dp.pid, MAX_SECONDS, work / "dp-max.prof")
                max_throughput(request, MAX_SECONDS, work)
                profiles += profile.lines("ASC data plane at maximum throughput", recording, 25)
            _require_alive(dp)
            system.stop_data_planes()
    return rows


def _provision_anthropic(system: AscSystem, tenant: str, upstream_base: str) -> str:
    """An Anthropic provider at the same upstream, its route and a key for it (the tenant's
    guardrail policy applies to it too); the key's secret."""
    model, credential = system.add_model(tenant, "bench-a", "anthropic", upstream_base)
    route = system.add_route(tenant, ANTHROPIC_ROUTE_NAME, model, credential)
    return system.add_key(tenant, "bench-a", route)


CACHED_ROUTE_NAME = "bench-cached"


def _provision_cached(system: AscSystem, provisioned: Provisioned) -> str:
    """A route to the same model with the response cache on (an hour) and a key for it (the
    tenant's guardrail policy, a budget and a rate limit apply too); the key's secret."""
    tenant = provisioned.tenant_id
    route = system.add_route(
        tenant, CACHED_ROUTE_NAME, provisioned.model_id, provisioned.credential_id
    )
    system.api.call("PATCH", f"routes/{route}/", {"cache_ttl_s": 3600})
    return system.add_key(tenant, "bench-cached", route)


def _cache_hits(url: str, secret: str, work: Path, pid: int) -> Row:
    """The benchmark's request, repeated on the caching route: all hits after the first."""
    body = json.dumps({**json.loads(BODY), "model": CACHED_ROUTE_NAME}).encode()
    auth = {"Authorization": f"Bearer {secret}"}
    request = Request(f"{url}/v1/chat/completions", body, auth)
    _all_workers_serve(request)
    return measure("ASC, 1 worker, response cache hit", request, 1, work, pid)


def _other_dialects(
    url: str, auth: dict[str, str], claude_auth: dict[str, str], work: Path, pid: int
) -> list[Row]:
    messages = Request(f"{url}/v1/messages", MESSAGES_BODY, claude_auth)
    responses = Request(f"{url}/v1/responses", RESPONSES_BODY, auth)
    _all_workers_serve(messages)
    return [
        measure("ASC, 1 worker, /v1/messages native to Anthropic", messages, 1, work, pid),
        measure("ASC, 1 worker, /v1/responses native to OpenAI", responses, 1, work, pid),
    ]


def _require_alive(proc: Proc) -> None:
    if not proc.alive():
        raise RuntimeError(f"{proc.name} died during the benchmark:\n{proc.tail()}")


def litellm_row(upstream_base: str, logs: Path, work: Path, body: bytes = BODY) -> Row | str:
    try:
        version = litellm_proxy.ensure_venv()
    except Exception as exc:  # no network, no wheel: report it and go on with the rest
        return f"LiteLLM not measured: installing it failed ({exc})."
    config, log_config = litellm_proxy.write_config(work, upstream_base)
    port = free_port()
    with running(
        "litellm",
        litellm_proxy.argv(config, log_config, port),
        logs,
        env=litellm_proxy.ENV,
        ready_url=f"http://127.0.0.1:{port}{litellm_proxy.READY_PATH}",
        timeout=120,
    ) as proc:
        auth = {"Authorization": f"Bearer {litellm_proxy.MASTER_KEY}"}
        request = Request(f"http://127.0.0.1:{port}/v1/chat/completions", body, auth)
        return measure(f"LiteLLM proxy {version}, 1 worker", request, 1, work, proc.pid)


def _tabulate(report: Report, rows: list[Row], direct: Row) -> None:
    headers = [
        "",
        "procs",
        "max req/s",
        "req/s per proc",
        "CPU/req",
        "latency at",
        "p50",
        "p99",
        "added p50",
        "added p99",
        "errors",
    ]
    table = []
    for row in rows:
        lat, base = row.latency, direct.latency
        is_direct = row is direct
        errors = row.max_errors + lat["sent"] - lat["ok"]
        table.append(
            [
                row.name,
                row.processes or "-",
                row.max_rps,
                None if is_direct else row.rps_per_process,
                f"{row.cpu_us:,.0f} us",
                f"{row.rate:.0f} req/s",
                ms(lat["p50_us"]),
                ms(lat["p99_us"]),
                None if is_direct else ms(lat["p50_us"] - base["p50_us"]),
                None if is_direct else ms(lat["p99_us"] - base["p99_us"]),
                errors,
            ]
        )
    report.table(headers, table)
    report.note(
        f"max req/s: wrk, {CONNECTIONS} connections, {MAX_SECONDS:.0f} s; latency: open loop, "
        f"{LATENCY_SECONDS:.0f} s after 1 s of warm-up; added = gateway minus upstream direct; "
        f"CPU/req: CPU time of the measured processes during the max run, per request "
        f"(robust when other work shares the CPUs)."
    )
    ceiling = find(rows, "pass-through")
    asc1 = find(rows, "ASC data plane, 1 worker")
    litellm = served(find(rows, "LiteLLM"))
    if ceiling and asc1:
        report.note(
            f"ASC (1 worker) forwards {asc1.max_rps / ceiling.max_rps:.0%} of the bare "
            f"pass-through's requests per second (DESIGN.md aims for at least 60%) and spends "
            f"{asc1.cpu_us - ceiling.cpu_us:,.0f} us more CPU per request."
        )
    for row in rows:
        if row.side_cpu_us:
            report.note(
                f"{row.name}: the control plane (web + gRPC: leases, usage and audit ingestion) "
                f"spent {row.side_cpu_us:,.0f} us CPU per request meanwhile."
            )
    if litellm:
        for row in rows:
            if row.name.startswith("ASC"):
                report.note(
                    f"{row.name}: {row.rps_per_process / litellm.rps_per_process:.1f}x "
                    f"LiteLLM's requests per second per worker process; "
                    f"{litellm.cpu_us / row.cpu_us:.1f}x less CPU per request."
                )


def find(rows: list[Row], name: str) -> Row | None:
    return next((r for r in rows if name in r.name), None)


def served(row: Row | None) -> Row | None:
    """``row`` if its gateway served anything (LiteLLM can serve nothing on a loaded machine:
    no ratio to it then, its row shows the zero)."""
    return row if row is not None and row.rps_per_process > 0 and row.cpu_us > 0 else None


def _check(report: Report, rows: list[Row], direct: Row) -> None:
    asc1 = find(rows, "ASC data plane, 1 worker")
    litellm = served(find(rows, "LiteLLM"))
    if asc1 is None:
        return
    added50 = asc1.latency["p50_us"] - direct.latency["p50_us"]
    added99 = asc1.latency["p99_us"] - direct.latency["p99_us"]
    at = f"at {asc1.rate:.0f} req/s"
    report.check(f"ASC added latency p50 {at}", ms(added50), "< 1 ms", added50 < 1000)
    report.check(f"ASC added latency p99 {at}", ms(added99), "< 5 ms", added99 < 5000)
    if litellm is None:
        report.skip("ASC / LiteLLM req/s per worker", "LiteLLM unavailable", ">= 30x")
        return
    ratio = asc1.rps_per_process / litellm.rps_per_process
    report.check(
        "ASC / LiteLLM req/s per worker process",
        f"{ratio:.1f}x ({asc1.rps_per_process:,.0f} vs {litellm.rps_per_process:,.0f})",
        ">= 30x",
        ratio >= 30,
    )
    ceiling = find(rows, "pass-through")
    if ceiling is not None:
        share = asc1.max_rps / ceiling.max_rps
        report.check(
            "ASC req/s as a share of the bare pass-through (1 process)",
            f"{share:.0%} ({asc1.max_rps:,.0f} vs {ceiling.max_rps:,.0f})",
            ">= 60%",
            share >= 0.6,
        )
