"""End to end: a data plane and a control-plane gRPC process export their traces over OTLP/HTTP
to a real receiver (a socket decoding ExportTraceServiceRequest protobufs). A request through
the official openai SDK on a route whose first target fails falls back to the second; the
receiver gets one trace with the GenAI attributes, one client span per upstream attempt, and
the control plane's span of the lease ask the request waited for, inside the same trace."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from scripts.stack import Stack, free_ports
from tests.e2e.conftest import System
from tests.e2e.test_foundation import add_key, demo_ids, eventually
from tests.fakes.otlp_receiver import CLIENT, SERVER, OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e

ROUTE = "traced-fallback"
PROMPT = "Where did the time go on this request?"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def traced(system: System, receiver: OtlpReceiver) -> Iterator[Stack]:
    """A second gRPC process and a data plane on it, both exporting to the receiver (spans
    batched for 50 ms rather than the SDK's 5 s, so the test waits less)."""
    env = {
        **system.stack.env,
        "ASC_DP_OTLP_ENDPOINT": receiver.url,
        "ASC_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    grpc_port, dp_port = free_ports(2)
    stack = dataclasses.replace(
        system.stack,
        env=env,
        grpc_port=grpc_port,
        dp_port=dp_port,
        node_id="dp-traced",
        log_dir=system.tmp / "traced-logs",
        procs={},
    )
    stack.start_grpc()
    stack.start_data_plane()
    try:
        stack.wait_data_plane()
        yield stack
    finally:
        stack.stop_all()


def fallback_key(system: System) -> dict[str, Any]:
    """A key for ROUTE (a mock target answering 503, then the demo's mock model) under a
    budget, granted only once the budget exists (so the data plane serving it has both)."""
    api, ids = system.api, demo_ids(system)
    provider = api.call(
        "POST",
        "providers/",
        {"name": "failing-mock", "kind": "mock", "options": {"fail_status": "503"}},
    )
    model = api.call("POST", "models/", {"provider": provider["id"], "provider_model": "mock-503"})
    credential = api.call(
        "POST",
        "credentials/",
        {"tenant": ids["tenant"], "provider": provider["id"], "name": "failing", "secret": "x"},
    )
    targets = [
        {"model": model["id"], "credential": credential["id"], "priority": 0, "weight": 1},
        {"model": ids["model"], "credential": ids["credential"], "priority": 1, "weight": 1},
    ]
    route = api.call(
        "POST", "routes/", {"tenant": ids["tenant"], "name": ROUTE, "targets": targets}
    )
    key = add_key(system, "traced", [])
    budget = {"kind": "budget", "period": "none", "amount": "100"}
    api.call(
        "POST", "limits/", {"tenant": ids["tenant"], "scope": "key", "key": key["id"], **budget}
    )
    api.call("PATCH", f"keys/{key['id']}/", {"routes": [route["id"]]})
    return key


def test_a_fallback_reaches_the_collector_as_one_trace_with_a_span_per_attempt(
    system: System, traced: Stack, receiver: OtlpReceiver
) -> None:
    key = fallback_key(system)
    client = OpenAI(base_url=f"{traced.dp_url}/v1", api_key=key["secret"], max_retries=0)
    system.clients.append(client)
    answers: list[Any] = []

    def served() -> bool:  # refused until the key has reached the data plane
        raw = client.chat.completions.with_raw_response.create(
            model=ROUTE, messages=[{"role": "user", "content": PROMPT}]
        )
        answers.append(raw)
        return raw.status_code == 200

    eventually(served, timeout=15)
    raw = answers[-1]
    assert raw.parse().choices[0].message.content.startswith("Mock response to:")
    request_id = raw.headers["x-request-id"]

    def server_span() -> ReceivedSpan:
        (span,) = [
            s for s in receiver.received() if s.attributes.get("asc.request_id") == request_id
        ]
        return span

    eventually(server_span, timeout=15)
    server = server_span()

    def in_trace() -> list[ReceivedSpan]:
        return [s for s in receiver.received() if s.trace_id == server.trace_id]

    # The control plane's span of the lease ask is exported by another process: wait for it.
    eventually(lambda: any(s.service == "asc-control-plane-grpc" for s in in_trace()), 15)
    trace = in_trace()
    assert not receiver.problems

    assert server.service == "asc-data-plane"
    assert server.kind == SERVER
    assert server.parent_span_id == ""
    top = server.attributes
    assert top["gen_ai.operation.name"] == "chat"
    assert top["gen_ai.request.model"] == top["asc.route"] == ROUTE
    assert top["gen_ai.provider.name"] == "mock"
    assert top["gen_ai.response.model"] == "mock-1"
    assert top["gen_ai.usage.input_tokens"] > 0
    assert top["gen_ai.usage.output_tokens"] > 0
    assert top["gen_ai.response.finish_reasons"] == ("stop",)
    assert top["asc.tenant"] == "demo"
    assert top["http.response.status_code"] == 200
    assert top["asc.fallbacks"] == 1

    attempts = [s for s in trace if s.kind == CLIENT and s.parent_span_id == server.span_id]
    outcomes = sorted(
        (s.attributes["gen_ai.request.model"], s.attributes["asc.attempt.outcome"])
        for s in attempts
    )
    assert outcomes == [("mock-1", "ok"), ("mock-503", "status_503")]
    for attempt in attempts:
        assert attempt.attributes["gen_ai.provider.name"] == "mock"
        assert attempt.attributes["gen_ai.operation.name"] == "chat"
    (failed,) = [s for s in attempts if s.attributes["asc.attempt.outcome"] != "ok"]
    assert failed.status_code == 2  # error

    (admission,) = [s for s in trace if s.name == "asc.admission"]
    (lease,) = [s for s in trace if s.service == "asc-control-plane-grpc"]
    assert lease.name == "asc.v1.LeaseService/Acquire"
    assert lease.kind == SERVER
    assert lease.parent_span_id == admission.span_id
    assert all(PROMPT not in str(s.attributes) for s in trace), "no consent: no prompt text"
