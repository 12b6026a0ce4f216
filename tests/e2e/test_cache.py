"""End to end: a route given a cache TTL through the REST API reaches the data plane, a
repeated request is answered from the cache, and the control plane's usage API shows the hit
with cost 0 and the cost it saved (the paid request's cost)."""

from __future__ import annotations

import uuid

import openai
import pytest

from tests.e2e.conftest import System
from tests.e2e.test_foundation import add_key, add_route, client, eventually

pytestmark = pytest.mark.e2e


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
