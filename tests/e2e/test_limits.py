"""Budgets and rate limits across four data-plane processes behind one control plane.

Each data plane holds leases (slices) of the limit from the control plane and admits requests
locally; the control plane never lets the slices of a window add up to more than the limit.
The documented bound (docs/adr/0004-limits-and-leases.md) is therefore the limit itself while
every request's actual usage stays within its worst-case reservation, which holds here: the
mock provider's completions are shorter than the requests' max_tokens.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from scripts.stack import Stack
from shared.pricing import cost_nano_usd
from tests.e2e.conftest import System, more_data_planes
from tests.e2e.test_foundation import add_key, add_route, demo_ids, eventually

pytestmark = pytest.mark.e2e

REPLICAS = 4
MAX_TOKENS = 32  # above the mock's longest completion (21 words): reservations cover actuals
LEAD = 0.5  # seconds before a minute turns that the rate-limit hammer starts


@pytest.fixture(scope="module")
def replicas(system: System) -> Iterator[list[Stack]]:
    """Three more data planes on the same control plane (the system's own is the fourth)."""
    with more_data_planes(system, "dp-replica", REPLICAS - 1) as stacks:
        yield stacks


def post(url: str, key: str, n: int, model: str) -> tuple[int, dict[str, Any]]:
    body = {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": f"spend a little {n}"}],
    }
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def hammer(
    urls: list[str], key: str, model: str, total: int, threads: int = 8, until: float = math.inf
) -> list[Any]:
    """``total`` requests spread over the replicas by ``threads`` concurrent clients, none
    sent after ``until`` (Unix seconds)."""
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        for n in counter:  # the iterator is shared: each n is taken once
            if time.time() > until:
                return
            outcome = post(urls[n % len(urls)], key, n, model)
            with lock:
                results.append(outcome)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    return results


def limited_key(system: System, name: str, limit: dict[str, Any]) -> dict[str, Any]:
    """A key whose route is granted only after its limit exists: a replica that serves the
    key has a snapshot with the limit in it."""
    route = add_route(system, name)
    key = add_key(system, name, [])
    body = {"tenant": demo_ids(system)["tenant"], "scope": "key", "key": key["id"], **limit}
    system.api.call("POST", "limits/", body)
    system.api.call("PATCH", f"keys/{key['id']}/", {"routes": [route["id"]]})
    return key


def served_probe(replicas: list[Stack], key: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """One served request per replica, once the limit and key have reached each of them."""
    bodies: list[dict[str, Any]] = []

    def serves(stack: Stack) -> bool:
        status, body = post(stack.dp_url, key["secret"], -1, model)
        if status == 200:
            bodies.append(body)
        return status == 200

    for stack in replicas:
        eventually(lambda s=stack: serves(s), 5)
    return bodies


def prices_of(system: System) -> dict[str, int]:
    model = system.api.one("models/?provider_model=mock-1")
    return {
        "input_price": int(Decimal(model["input_price"]) * 1_000_000),
        "output_price": int(Decimal(model["output_price"]) * 1_000_000),
        "cached_input_price": 0,
    }


def usage_records(system: System, key: dict[str, Any]) -> list[dict[str, Any]]:
    return system.api.all(f"usage/?key={key['id']}")


def test_a_budget_holds_across_four_replicas_to_the_cent(
    system: System, replicas: list[Stack]
) -> None:
    budget = Decimal("0.005")
    limit = {"kind": "budget", "period": "none", "amount": str(budget)}
    key = limited_key(system, "budgeted", limit)
    served = served_probe(replicas, key, "budgeted")

    results = hammer([s.dp_url for s in replicas], key["secret"], "budgeted", total=600)
    served += [body for status, body in results if status == 200]
    refused = Counter(body["error"]["code"] for status, body in results if status != 200)
    print(f"served {len(served)}, refused {dict(refused)}")
    assert set(refused) == {"budget_exceeded"}, "only the budget refuses"
    assert refused["budget_exceeded"] > 0, "the budget ran out within the run"

    def recorded() -> list[dict[str, Any]]:
        return [r for r in usage_records(system, key) if r["status_code"] == 200]

    eventually(lambda: len(recorded()) == len(served), 60, interval=0.5)
    prices = prices_of(system)
    served_cost = sum(
        cost_nano_usd(
            prompt_tokens=b["usage"]["prompt_tokens"],
            completion_tokens=b["usage"]["completion_tokens"],
            cached_prompt_tokens=0,
            **prices,
        )
        for b in served
    )
    recorded_cost = sum(r["cost_nano_usd"] for r in recorded())
    limit_nano = int(budget * 1_000_000_000)
    print(f"spend {recorded_cost} nano-USD of a {limit_nano} budget over {len(served)} requests")
    assert recorded_cost == served_cost, "the control plane's spend is what was served"
    assert recorded_cost <= limit_nano, "no overshoot while usage stays within reservations"


def test_requests_per_minute_hold_across_four_replicas(
    system: System, replicas: list[Stack]
) -> None:
    rpm = 40
    key = limited_key(system, "rated", {"kind": "requests", "amount": rpm})
    served_probe(replicas, key, "rated")

    # Across the turn of a UTC minute: where leases roll to the next window, and where a
    # request that waited for a lease could be counted in a window it did not arrive in.
    turn = (time.time() + LEAD) // 60 * 60 + 60
    time.sleep(turn - LEAD - time.time())
    urls = [s.dp_url for s in replicas]
    results = hammer(urls, key["secret"], "rated", total=10_000, until=turn + 1.5)
    statuses = Counter(status for status, _ in results)
    codes = Counter(body["error"]["code"] for status, body in results if status != 200)
    print(f"statuses {dict(statuses)}, refusals {dict(codes)}")
    assert set(codes) == {"rate_limited"}
    assert statuses[200] > 0

    def served() -> list[dict[str, Any]]:
        return [r for r in usage_records(system, key) if r["status_code"] == 200]

    eventually(lambda: len(served()) == statuses[200] + len(replicas), 60, interval=0.5)
    per_minute = Counter(minute_of(datetime.fromisoformat(r["ts"]).timestamp()) for r in served())
    print(f"admitted per minute window: {dict(per_minute)}")
    assert per_minute[minute_of(turn - 1)], "requests were served before the minute turned"
    assert per_minute[minute_of(turn)], "and after"
    assert max(per_minute.values()) <= rpm, "the limit holds in every window"


def minute_of(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M")
