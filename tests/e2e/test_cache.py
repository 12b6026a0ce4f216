"""End to end: a route given a cache TTL through the REST API reaches the data plane, a
repeated request is answered from the cache, and the control plane's usage API shows the hit
with cost 0 and the cost it saved (the paid request's cost); data-plane processes configured
with one Redis share their entries."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import openai
import pytest
import redis

from scripts.stack import free_ports
from tests.e2e.conftest import System
from tests.e2e.test_foundation import add_key, add_route, client, eventually

pytestmark = pytest.mark.e2e

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_a_cache_hit_is_in_the_usage_api_with_cost_zero_and_the_cost_saved(
    system: System,
) -> None:
    route = add_route(system, "cached-demo")
    system.api.call("PATCH", f"routes/{route['id']}/", {"cache_ttl_s": 300})
    key = add_key(system, "cache-e2e", [route["id"]])
    c = client(system, key["secret"])
    text = f"What is cached? {uuid.uuid4().hex}"
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": text}
    ]

    def ask() -> tuple[str | None, str | None]:
        raw = c.chat.completions.with_raw_response.create(model="cached-demo", messages=messages)
        return raw.parse().choices[0].message.content, raw.headers.get("x-asc-cache")

    # Refused until the data plane has the key; the key's snapshot has the route's TTL too.
    eventually(lambda: ask()[1] == "miss", timeout=10)
    answer, header = ask()
    assert header == "hit"
    assert answer

    def served() -> list[dict[str, object]]:
        records = system.api.call("GET", f"usage/?key={key['id']}&limit=100")["results"]
        done = [r for r in records if r["status_code"] == 200]
        assert len(done) == 2
        return sorted(done, key=lambda r: bool(r["cache_hit"]))

    eventually(served, timeout=10)
    paid, hit = served()
    assert (paid["cache_hit"], hit["cache_hit"]) == (False, True)
    assert int(str(paid["cost_nano_usd"])) > 0
    assert int(str(hit["cost_nano_usd"])) == 0
    assert hit["cost_saved_nano_usd"] == paid["cost_nano_usd"]
    assert (hit["prompt_tokens"], hit["completion_tokens"]) == (
        paid["prompt_tokens"],
        paid["completion_tokens"],
    )
    assert hit["route"] == route["id"]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own, its keys deleted afterwards."""
    prefix = f"asc-e2e-cache:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_data_plane_processes_share_the_redis_cache(system: System, redis_prefix: str) -> None:
    """Two more data planes, separate processes on the same control plane and Redis: the
    second answers the first's answer from the cache, without calling the provider."""
    route = add_route(system, "cached-shared")
    system.api.call("PATCH", f"routes/{route['id']}/", {"cache_ttl_s": 300})
    key = add_key(system, "cache-shared", [route["id"]])
    env = {
        **system.stack.env,
        "ASC_DP_CACHE_REDIS_URL": REDIS_URL,
        "ASC_DP_CACHE_REDIS_PREFIX": redis_prefix,
    }
    planes = [
        dataclasses.replace(system.stack, dp_port=port, node_id=f"dp-cache-{n}", procs={}, env=env)
        for n, port in zip((1, 2), free_ports(2), strict=True)
    ]
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": f"Shared? {uuid.uuid4().hex}"}
    ]
    try:
        for plane in planes:
            plane.start_data_plane()
        for plane in planes:
            plane.wait_data_plane()
        first, second = (
            openai.OpenAI(base_url=f"{p.dp_url}/v1", api_key=key["secret"], max_retries=0)
            for p in planes
        )
        system.clients += [first, second]

        def ask(c: openai.OpenAI) -> tuple[str | None, str | None]:
            raw = c.chat.completions.with_raw_response.create(
                model="cached-shared", messages=messages
            )
            return raw.parse().choices[0].message.content, raw.headers.get("x-asc-cache")

        # Refused until each data plane has the key (and with it the route's TTL).
        eventually(lambda: ask(first)[1] == "miss", timeout=10)
        eventually(lambda: ask(second)[1] == "hit", timeout=10)
        paid_answer, _ = ask(first)
        hit_answer, _ = ask(second)
        assert paid_answer == hit_answer

        def served() -> list[dict[str, object]]:
            records = system.api.call("GET", f"usage/?key={key['id']}&limit=100")["results"]
            done = [r for r in records if r["status_code"] == 200]
            assert len(done) == 4
            return done

        eventually(served, timeout=10)  # reported while the data planes run
    finally:
        for plane in planes:
            plane.stop_all()
    by_node = {(r["node_id"], r["cache_hit"]) for r in served()}
    assert by_node == {("dp-cache-1", False), ("dp-cache-1", True), ("dp-cache-2", True)}
