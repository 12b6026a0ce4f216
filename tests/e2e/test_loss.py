"""Nothing lost, nothing counted twice: a data plane under steady load while the control
plane's gRPC process is killed for 30 seconds and restarted, twice. Every request a client got
an answer for has exactly one usage record and one audit record, and the stored audit chains
verify."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from tests.e2e.conftest import System
from tests.e2e.test_foundation import PROPAGATION_LIMIT_S, add_key, ask, client, eventually

pytestmark = pytest.mark.e2e

OUTAGE_S = 30.0
CLIENTS = 4
PAUSE_S = 0.05  # per client between requests: about 60 requests per second in all


def post(url: str, key: str, n: int) -> str | None:
    """One chat request; the request id of the answer, or None when there was none."""
    body = {"model": "demo", "messages": [{"role": "user", "content": f"steady load {n}"}]}
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return str(response.headers["x-request-id"])
    except urllib.error.HTTPError as exc:  # an answer all the same, and recorded as such
        return str(exc.headers["x-request-id"])
    except OSError:
        return None


@dataclass
class Load:
    """What ``steady_load``'s clients saw: the request ids answered, and requests that got no
    answer at all."""

    answered: list[str] = field(default_factory=list)
    unanswered: int = 0


@contextmanager
def steady_load(url: str, key: str) -> Iterator[Load]:
    """``CLIENTS`` threads sending chat requests with ``key`` until the block ends."""
    load = Load()
    stop = threading.Event()
    lock = threading.Lock()

    def client(worker: int) -> None:
        n = 0
        while not stop.is_set():
            request_id = post(url, key, worker * 1_000_000 + n)
            with lock:
                if request_id is None:
                    load.unanswered += 1
                else:
                    load.answered.append(request_id)
            n += 1
            time.sleep(PAUSE_S)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)


def test_usage_and_audit_survive_two_control_plane_outages(system: System) -> None:
    route_id = system.api.one("routes/?name=demo")["id"]
    key = add_key(system, "steady", [route_id])
    eventually(lambda: ask(client(system, key["secret"])), PROPAGATION_LIMIT_S)

    with steady_load(system.stack.dp_url, key["secret"]) as load:
        time.sleep(3)
        for _ in range(2):
            system.stack.kill("grpc")
            time.sleep(OUTAGE_S)
            system.stack.start_grpc()
            time.sleep(5)
    answered, unanswered = load.answered, load.unanswered
    print(f"{len(answered)} requests answered, {unanswered} without an answer")
    assert unanswered == 0, "the data plane kept serving through both outages"
    # the propagation probe above is one more request of this key
    expected = set(answered)
    assert len(expected) == len(answered)

    def delivered() -> bool:
        usage = {r["request_id"] for r in system.api.all(f"usage/?key={key['id']}")}
        audit = {r["request_id"] for r in system.api.all(f"audit/?key={key['id']}")}
        return expected <= usage and expected <= audit

    try:
        eventually(delivered, 90, interval=1.0)
    except AssertionError:
        usage = {r["request_id"] for r in system.api.all(f"usage/?key={key['id']}")}
        audit = {r["request_id"] for r in system.api.all(f"audit/?key={key['id']}")}
        raise AssertionError(
            f"{len(expected)} answered; {len(usage)} usage and {len(audit)} audit records; "
            f"missing {len(expected - usage)} usage and {len(expected - audit)} audit"
        ) from None
    usage = system.api.all(f"usage/?key={key['id']}")
    audit = system.api.all(f"audit/?key={key['id']}")
    usage_ids = [r["request_id"] for r in usage]
    audit_ids = [r["request_id"] for r in audit]
    assert len(usage_ids) == len(set(usage_ids)), "a usage record stored twice"
    assert len(audit_ids) == len(set(audit_ids)), "an audit record stored twice"
    extra = set(usage_ids) - expected
    assert len(extra) <= 2, f"only the propagation probes are not from the load: {extra}"
    assert set(audit_ids) == set(usage_ids)
    assert len(usage) == len(expected) + len(extra)

    assert "checkpoint" in system.stack.manage("audit_checkpoint", capture=True)
    verdict = system.stack.manage("verify_audit", capture=True)
    assert "audit trail intact" in verdict
