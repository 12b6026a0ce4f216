"""Policy decision cost: microseconds per request of the pure decision path, in process.

Over a compiled snapshot (100 tenants, 10,000 keys, 1,000 routes; see ``workload.Shape``):
authenticate the virtual key, authorize the route, run the tenant's guardrail policy (e-mail
redact, payment-card block) over the typical prompt's messages, and admit the request under
its tenant's budget and its key's rate limit with live leases (the reservation settled
afterwards, as the request's end would). Parsing the body is shown apart: any gateway does it.

Also apart, the bookkeeping every served request does at its end on the event loop
(``pipeline.finish``): its Prometheus metrics, its usage event, its audit record sealed into
the node's hash chain.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable

import orjson

from bench.report import Report
from bench.workload import BODY, ROUTE_NAME, SEAL_KEY, Shape, build_snapshot, key_secret
from data_plane.dialects.openai import parse_chat_request
from data_plane.errors import ApiError
from data_plane.guardrails import Verdict
from data_plane.guardrails.enforce import guard_input
from data_plane.guardrails.policy import for_route
from data_plane.limits import rules as limits
from data_plane.limits.leases import Admission, LeaseBook, NeedsLease
from data_plane.metrics import Metrics
from data_plane.policy.auth import Principal, authenticate, authorize
from data_plane.policy.compiled import CompiledPolicy, RouteEntry, compile_snapshot
from data_plane.types import ChatRequest, Usage
from data_plane.usage.audit import AuditChain, build_audit
from data_plane.usage.record import RequestRecord, build_event
from shared.crypto import Keyring
from shared.pb import control_pb2

TITLE = "policy decision cost, microseconds per request (pure path, in process)"

SHAPE = Shape(tenants=100, routes=10, keys=100)
AUTHORIZATION = f"Bearer {key_secret(0, 0)}"  # a key with its own rate limit


def _live_leases(
    policy: CompiledPolicy, route: RouteEntry, principal: Principal, book: LeaseBook
) -> None:
    """Give every limit of the request a lease as the control plane would: large, long."""
    applicable = limits.applicable(policy, principal.key, route)
    demand = limits.worst_case(route, principal.key, len(BODY), orjson.loads(BODY))
    now, unix = time.monotonic(), time.time()
    first = book.admit(applicable, demand, now, unix)
    assert isinstance(first, NeedsLease), first
    grants = [
        control_pb2.LeaseGrant(
            limit_id=ask.limit_id,
            window=ask.window,
            granted=10**17,
            remaining=10**17,
            ttl_ms=3_600_000,
            nodes=1,
        )
        for ask in book.asks(now, unix)
    ]
    book.apply(grants, now)


def _bookkeeping(
    principal: Principal, route: RouteEntry, verdict: Verdict, usage: Usage
) -> list[list[object]]:
    """What every served request costs after its answer: metrics, usage event, audit."""
    metrics = Metrics()
    chain = AuditChain("bench-node:boot")
    record = RequestRecord(
        request_id="0f8e2c1a9b7d4e6f8a1b2c3d4e5f6a7b",
        ts_unix_ms=int(time.time() * 1000),
        started=time.monotonic(),
        snapshot_version=7,
        principal=principal,
        route_name=route.name,
        route=route,
        target=route.targets[0],
        usage=usage,
        ttft_ms=2,
        verdicts=[verdict],
    )

    def observe() -> None:
        metrics.requests.labels(route.name, "200").inc()
        metrics.latency.labels(route.name).observe(0.001)
        metrics.ttft.labels(route.name).observe(0.001)
        metrics.tokens.labels(route.name, "prompt").inc(usage.prompt_tokens)
        metrics.tokens.labels(route.name, "completion").inc(usage.completion_tokens)

    def observe_bound() -> None:  # what pipeline.finish does: the route's children bound once
        series = metrics.route(route.name)
        series.requests(200).inc()
        series.latency.observe(0.001)
        series.ttft.observe(0.001)
        series.prompt.inc(usage.prompt_tokens)
        series.completion.inc(usage.completion_tokens)

    event = build_event(record, 3)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("Prometheus: 5 labelled metrics, labels() each", observe),
        ("Prometheus: the same, children bound per route", observe_bound),
        ("usage event (protobuf)", lambda: build_event(record, 3)),
        ("audit record (protobuf, event copied in)", lambda: build_audit(event, record.verdicts)),
        ("seal it into the hash chain", lambda: chain.seal(build_audit(event, record.verdicts))),
    ]
    return [[name, _per_call_us(fn)] for name, fn in steps]


def _per_call_us(fn: Callable[[], object], repeat: int = 7) -> float:
    """Median over ``repeat`` runs of the time per call (each run about 0.1 s)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return statistics.median(t / number for t in timer.repeat(repeat, number)) * 1e6


def run() -> Report:
    policy = compile_snapshot(build_snapshot(SHAPE), Keyring(SEAL_KEY))
    chat = parse_chat_request(BODY, "req-1")
    assert isinstance(chat, ChatRequest)
    principal = authenticate(policy, AUTHORIZATION, time.time())
    assert isinstance(principal, Principal), principal
    route = authorize(policy, principal, ROUTE_NAME)
    assert isinstance(route, RouteEntry), route
    guard = for_route(policy.guardrails, route.tenant_id, route.id)
    assert guard is not None
    book = LeaseBook()
    _live_leases(policy, route, principal, book)
    usage = Usage(prompt_tokens=40, completion_tokens=20)
    size = len(BODY)

    def auth_step() -> object:
        return authenticate(policy, AUTHORIZATION, time.time())

    def authorize_step() -> object:
        return authorize(policy, principal, ROUTE_NAME)

    def guard_step() -> object:
        return guard_input(guard.compiled, chat)

    def admit_step() -> object:
        refused = limits.check_caps(principal.key, size, chat.body)
        assert refused is None
        applicable = limits.applicable(policy, principal.key, route)
        demand = limits.worst_case(route, principal.key, size, chat.body)
        admission = book.admit(applicable, demand, time.monotonic(), time.time())
        assert isinstance(admission, Admission), admission
        book.settle(admission, limits.actual(usage, 12_000))
        return admission

    def whole() -> object:
        found = authenticate(policy, AUTHORIZATION, time.time())
        assert not isinstance(found, ApiError)
        granted = authorize(policy, found, ROUTE_NAME)
        assert not isinstance(granted, ApiError)
        scope = for_route(policy.guardrails, granted.tenant_id, granted.id)
        assert scope is not None
        guard_input(scope.compiled, chat)
        return admit_step()

    admitted = len(limits.applicable(policy, principal.key, route))
    steps = [
        ("authenticate (key hash lookup)", auth_step),
        ("authorize (route lookup)", authorize_step),
        (f"guardrails on input ({len(chat.body['messages'])} messages)", guard_step),
        (f"limits: caps, lease admission, settle ({admitted} limits)", admit_step),
    ]
    rows: list[list[object]] = [[name, _per_call_us(fn)] for name, fn in steps]
    total = _per_call_us(whole)
    rows.append(["whole decision path", total])
    rows.append(
        ["(apart) parse the JSON body", _per_call_us(lambda: parse_chat_request(BODY, "r"))]
    )
    report = Report()
    report.table(["step", "us per request"], rows)
    report.lines.append("")
    report.table(
        ["at the request's end (pipeline.finish)", "us per request"],
        _bookkeeping(principal, route, guard_input(guard.compiled, chat)[1], usage),
    )
    report.note(
        f"snapshot: {SHAPE.total_keys:,} keys, {SHAPE.total_routes:,} routes; prompt "
        f"{len(BODY)} bytes; median of 7 timeit runs. No target is set for this figure: "
        f"it is the policy's share of the added latency (target p50 < 1 ms)."
    )
    return report
