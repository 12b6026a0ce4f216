"""Request tags end to end, with the official openai SDK against real control-plane and
data-plane processes: tags sent as OpenAI ``metadata`` are grouped in /api/v1/spend/, a tag
the tenant does not allow is refused with a 400, and a budget on one tag value refuses with
a 429 once spent, across two data planes sharing it through leases, while the tenant's other
traffic goes on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai import OpenAI

from scripts.stack import Stack
from tests.e2e.conftest import System, more_data_planes
from tests.e2e.test_foundation import add_key, add_route, client, demo_ids, eventually

pytestmark = pytest.mark.e2e

RULES = {"feature": ["search", "summarizer"], "team": []}
QUESTION = [{"role": "user", "content": "How much did this cost?"}]
BUDGET_USD = Decimal("0.0005")  # a dozen or so of the mock's answers


@pytest.fixture(scope="module")
def tagged(system: System) -> dict[str, Any]:
    """The demo tenant accepts RULES and refuses other tags; a key and route of its own once
    the data plane has the rules (a tag header is refused until then)."""
    tenant = demo_ids(system)["tenant"]
    system.api.call("PATCH", f"tenants/{tenant}/", {"allowed_tags": RULES})
    route = add_route(system, "tagged")
    key = add_key(system, "tagged", [route["id"]])
    probe = client(system, key["secret"]).with_options(default_headers={"x-asc-tags": "team=x"})
    eventually(lambda: ask(probe, "tagged"), 10, interval=0.1)
    return {"tenant": tenant, "key": key, "route": route}


def ask(c: OpenAI, model: str, metadata: dict[str, str] | None = None) -> Any:
    extra: dict[str, Any] = {"metadata": metadata} if metadata is not None else {}
    return c.chat.completions.create(model=model, messages=QUESTION, max_tokens=32, **extra)  # type: ignore[arg-type]


def spend(system: System, tenant: str, group_by: str) -> dict[str | None, dict[str, Any]]:
    body = system.api.call("GET", f"spend/?group_by={group_by}&tenant={tenant}")
    return {g["group"]: g for g in body["groups"]}


def test_metadata_tags_are_grouped_in_the_spend_report(
    system: System, tagged: dict[str, Any]
) -> None:
    c = client(system, tagged["key"]["secret"])
    answers = [ask(c, "tagged", {"team": "alpha", "feature": "search"}) for _ in range(3)]
    answers += [ask(c, "tagged", {"team": "beta"}) for _ in range(2)]
    tokens = [a.usage.prompt_tokens + a.usage.completion_tokens for a in answers]

    def grouped() -> dict[str | None, dict[str, Any]]:
        found = spend(system, tagged["tenant"], "tag:team")
        assert found["alpha"]["requests"] == 3
        assert found["beta"]["requests"] == 2
        return found

    eventually(grouped, 30, interval=0.2)
    found = grouped()
    assert found["alpha"]["total_tokens"] == sum(tokens[:3])
    assert found["beta"]["total_tokens"] == sum(tokens[3:])
    assert found["alpha"]["cost_nano_usd"] > 0
    records = system.api.all(f"usage/?key={tagged['key']['id']}")
    by_team = Counter(r["tags"].get("team") for r in records if r["status_code"] == 200)
    assert (by_team["alpha"], by_team["beta"]) == (3, 2)
    alpha = [r for r in records if r["tags"].get("team") == "alpha"]
    assert all(r["tags"] == {"team": "alpha", "feature": "search"} for r in alpha)
    assert sum(r["cost_nano_usd"] for r in alpha) == found["alpha"]["cost_nano_usd"]


def test_a_tag_the_tenant_does_not_allow_is_a_400(system: System, tagged: dict[str, Any]) -> None:
    c = client(system, tagged["key"]["secret"])
    with pytest.raises(openai.BadRequestError) as refused:
        ask(c, "tagged", {"colour": "blue"})
    assert refused.value.code == "unknown_tag"
    assert "colour=blue" in refused.value.message
    with pytest.raises(openai.BadRequestError) as value:
        ask(c, "tagged", {"feature": "translator"})
    assert value.value.code == "unknown_tag"
    assert "feature=translator" in value.value.message


@pytest.fixture(scope="module")
def two_planes(system: System, tagged: dict[str, Any]) -> Iterator[list[Stack]]:
    with more_data_planes(system, "dp-tags", 1) as stacks:
        yield stacks


def test_a_tag_budget_refuses_once_spent_across_two_data_planes(
    system: System, tagged: dict[str, Any], two_planes: list[Stack]
) -> None:
    tenant = tagged["tenant"]
    limit = {
        "tenant": tenant,
        "scope": "tag",
        "tag": "feature=summarizer",
        "kind": "budget",
        "period": "none",
        "amount": str(BUDGET_USD),
    }
    system.api.call("POST", "limits/", limit)
    # A key granted its route after the limit exists: a plane serving it has the limit too.
    route = add_route(system, "summaries")
    key = add_key(system, "summaries", [])
    system.api.call("PATCH", f"keys/{key['id']}/", {"routes": [route["id"]]})
    clients = [
        OpenAI(base_url=f"{s.dp_url}/v1", api_key=key["secret"], max_retries=0, timeout=10)
        for s in two_planes
    ]
    system.clients.extend(clients)
    for c in clients:
        eventually(lambda c=c: ask(c, "summaries", {"feature": "search"}), 10, interval=0.1)

    served = Counter[int]()
    refused = Counter[int]()
    codes = Counter[str]()
    for n in range(400):
        plane = n % 2
        try:
            ask(clients[plane], "summaries", {"feature": "summarizer"})
            served[plane] += 1
        except openai.RateLimitError as exc:
            codes[str(exc.code)] += 1
            refused[plane] += 1
        if refused[0] and refused[1]:
            break
    print(f"served {dict(served)}, refused {dict(refused)}")
    assert set(codes) == {"budget_exceeded"}
    assert refused[0], "the first data plane refuses once the tag's budget is spent"
    assert refused[1], "and so does the second"
    assert sum(served.values()) > 0
    # The budget is on that tag value only: the tenant's other traffic goes on, on both planes.
    for c in clients:
        ask(c, "summaries", {"feature": "search"})
        ask(c, "summaries")

    def spent() -> dict[str, Any]:
        found = spend(system, tenant, "tag:feature")["summarizer"]
        assert found["requests"] == sum(served.values()) + sum(refused.values())
        return found

    eventually(spent, 30, interval=0.2)
    found = spent()
    print(f"spent {found['cost_nano_usd']} nano-USD of a {BUDGET_USD} USD tag budget")
    assert 0 < found["cost_nano_usd"] <= int(BUDGET_USD * 10**9), "never past the budget"
