"""Staged rollouts on the real system with four data planes, checked through what each node
answers: a staged change reaches only the canary, the others keep serving the old version
until the rollout advances to every node; then a deliberately bad change (a guardrail that
blocks every request of a busy tenant) is rolled back automatically on the canary alone, with
the reason recorded, the other nodes never having served it. The rollout page is opened in a
real browser, with screenshots."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser

from scripts.stack import Stack
from tests.e2e.conftest import System, more_data_planes
from tests.e2e.test_browser import SCREENSHOTS, log_in
from tests.e2e.test_browser import browser as browser  # the module's Chromium
from tests.e2e.test_foundation import demo_ids, eventually

pytestmark = pytest.mark.e2e

CANARY = "dp-rollout-2"
WAIT_S = 30.0


@pytest.fixture(scope="module")
def fleet(system: System) -> Iterator[list[Stack]]:
    """Three more data planes on the same control plane (the system's own is the fourth)."""
    with more_data_planes(system, "dp-rollout", 3) as stacks:
        yield stacks


def ask(stack: Stack, key: str, model: str) -> tuple[int, str]:
    """One chat request to one node: its status and error code ("" when answered)."""
    body = {"model": model, "messages": [{"role": "user", "content": "hello rollout"}]}
    request = urllib.request.Request(
        f"{stack.dp_url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["error"]["code"]


def published(system: System) -> int:
    return max(
        int(s["version"]) for s in system.api.call("GET", "snapshots/?limit=1000")["results"]
    )


def all_applied(system: System, fleet: list[Stack], version: int) -> bool:
    nodes = {n["node_id"]: n for n in system.api.results("nodes/?limit=100")}
    return all(nodes[s.node_id]["applied_version"] == version for s in fleet)


def rollout(system: System, pk: int) -> dict[str, Any]:
    return dict(system.api.call("GET", f"rollouts/{pk}/"))


def start(system: System) -> int:
    body = {"steps": [25, 100], "soak_s": 3600, "nodes": [CANARY], "threshold": 0.2,
            "min_requests": 10}  # fmt: skip
    return int(system.api.call("POST", "rollouts/", body)["id"])


def test_a_staged_change_then_a_bad_one_rolled_back_on_the_canary_alone(
    system: System, fleet: list[Stack], browser: Browser
) -> None:
    key = system.demo_key
    canary = next(s for s in fleet if s.node_id == CANARY)
    others = [s for s in fleet if s is not canary]
    eventually(lambda: all_applied(system, fleet, published(system)), WAIT_S, interval=0.2)
    baseline = published(system)

    # 1. A good change, staged: the demo route renamed. Only the canary answers the new name.
    first = start(system)
    route = system.api.one("routes/?name=demo")
    system.api.call("PATCH", f"routes/{route['id']}/", {"name": "demo-v2"})
    eventually(lambda: rollout(system, first)["version"] == baseline + 1, WAIT_S, interval=0.2)
    eventually(lambda: ask(canary, key, "demo-v2")[0] == 200, WAIT_S, interval=0.2)
    assert ask(canary, key, "demo") == (404, "model_not_found")
    for stack in others:
        assert ask(stack, key, "demo") == (200, ""), f"{stack.node_id} keeps the old version"
        assert ask(stack, key, "demo-v2")[0] == 404
    status = rollout(system, first)
    assert status["canary_nodes"] == [CANARY]
    assert {n["node_id"]: n["serves"] for n in status["nodes"]} == {
        s.node_id: baseline + (s is canary) for s in fleet
    }

    # ... advanced on the operator's word: every node answers the new name; then complete.
    system.api.call("POST", f"rollouts/{first}/advance/")
    for stack in fleet:
        eventually(lambda s=stack: ask(s, key, "demo-v2")[0] == 200, WAIT_S, interval=0.2)
    assert system.api.call("POST", f"rollouts/{first}/advance/")["state"] == "completed"
    good = baseline + 1

    # 2. A bad change, staged: a guardrail blocking every request of the busy demo tenant.
    second = start(system)
    system.api.call(
        "POST",
        "guardrails/",
        {
            "tenant": demo_ids(system)["tenant"],
            "name": "blocks-everything",
            "custom_patterns": [{"name": "anything", "patterns": [r"\w"]}],
            "actions": {"custom:anything": "block"},
        },
    )
    bad = good + 1
    eventually(lambda: ask(canary, key, "demo-v2")[1] == "guardrail_blocked", WAIT_S, 0.2)
    answers: dict[str, list[tuple[int, str]]] = {s.node_id: [] for s in fleet}

    def busy_until_rolled_back() -> bool:
        for stack in fleet:
            answers[stack.node_id].append(ask(stack, key, "demo-v2"))
        return bool(rollout(system, second)["state"] == "rolled_back")

    eventually(busy_until_rolled_back, WAIT_S, interval=0.05)
    status = rollout(system, second)
    assert status["version"] == bad
    assert status["reason"].startswith("canary denial rate 100.0% over ")
    # (the baseline may hold a denial of the first rollout's requests reported late)
    assert re.search(
        r"exceeds the baseline's \d\.\d% over \d+ by more than 20\.0%$", status["reason"]
    )
    last = status["decisions"][-1]
    assert (last["action"], last["by_name"]) == ("rollback", "system")
    assert (400, "guardrail_blocked") in answers[CANARY]
    for stack in others:
        assert set(answers[stack.node_id]) == {(200, "")}, f"{stack.node_id} served the block"

    # The configuration is restored and published to every node; the canary answers again.
    eventually(lambda: published(system) > bad, WAIT_S, interval=0.2)
    eventually(lambda: ask(canary, key, "demo-v2") == (200, ""), WAIT_S, interval=0.2)
    assert not system.api.results("guardrails/?limit=100"), "the bad guardrail is gone"
    usage = system.api.results("usage/?limit=1000")
    served_bad = {u["node_id"] for u in usage if u["snapshot_version"] == bad}
    assert served_bad == {CANARY}, "only the canary ever served the bad version"

    # 3. The rollout page in a real browser: nodes by version, the two groups' signals side by
    # side, and the decisions with who made them.
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    log_in(page, system)
    page.goto(f"{system.stack.web_url}/admin/asc_rollouts/rollout/{second}/change/")
    assert page.locator("#asc-rollout-nodes tr.asc-canary td").first.inner_text() == CANARY
    assert page.locator("#asc-rollout-nodes tr.asc-baseline").count() == 3
    canaries = page.locator("#asc-rollout-signals tr.asc-canaries td").all_inner_texts()
    assert int(canaries[0]) >= 10
    assert int(canaries[3]) == int(canaries[0]), "every canary request blocked"
    decision = page.locator("#asc-rollout-decisions tr.asc-rollback").inner_text()
    assert "system" in decision
    assert "canary denial rate" in decision
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(path=str(SCREENSHOTS / "rollout.png"), full_page=True)
    assert len(png) > 10_000, "a rendered page, not a blank one"
    page.goto(f"{system.stack.web_url}/admin/asc_rollouts/rollout/")
    assert page.locator("#result_list tbody tr").count() == 2
    page.screenshot(path=str(SCREENSHOTS / "rollouts.png"), full_page=True)
    page.goto(f"{system.stack.web_url}/admin/asc_rollouts/rollout/start/")
    assert page.locator("#asc-rollout-start").is_visible()
    page.close()
