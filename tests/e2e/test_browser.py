"""The admin in a real browser (headless Chromium, driven by Playwright) against the real
system: log in, create a route with two targets, watch the fleet page show the running data
plane at the new version, and open the tenant timeline with its charts drawn; then the console
(the admin's front page) and the timeline's event marks after real traffic through the data
plane: fallbacks past a failing target whose circuit opens, a budget crossing its alert
thresholds and then refusing, and a model the key may not use."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import System
from tests.e2e.test_foundation import add_key, demo_ids, eventually

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".asc" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is required for the browser tests: `make browser` installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


def latest_version(system: System) -> int:
    return max(
        int(s["version"]) for s in system.api.call("GET", "snapshots/?limit=1000")["results"]
    )


def log_in(page: Page, system: System) -> None:
    page.goto(f"{system.stack.web_url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "e2e-pass")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_admin_route_fleet_and_timeline_in_a_browser(system: System, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, system)

    page.goto(f"{system.stack.web_url}/admin/asc_catalog/route/add/")
    page.select_option("#id_tenant", label="demo")
    page.fill("#id_name", "browser-route")
    for i, (priority, weight) in enumerate([(0, 3), (1, 1)]):
        page.select_option(f"#id_targets-{i}-model", label="mock:mock-1@local")
        page.select_option(f"#id_targets-{i}-credential", label="demo/mock")
        page.fill(f"#id_targets-{i}-priority", str(priority))
        page.fill(f"#id_targets-{i}-weight", str(weight))
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    route = system.api.one("routes/?name=browser-route")
    assert sorted((t["priority"], t["weight"]) for t in route["targets"]) == [(0, 3), (1, 1)]

    version = latest_version(system)
    deadline = time.monotonic() + 10
    while True:
        page.goto(f"{system.stack.web_url}/admin/asc_fleet/dataplanenode/")
        row = page.locator("tr", has_text=system.stack.node_id)
        if row.locator("td.field-applied_version").inner_text().strip() == str(version):
            break
        assert time.monotonic() < deadline, "the fleet page never showed the new version"
        time.sleep(0.25)
    assert row.locator("td.field-lag").inner_text().strip() == "0"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "fleet.png"), full_page=True)

    c = OpenAI(base_url=f"{system.stack.dp_url}/v1", api_key=system.demo_key, max_retries=0)
    for _ in range(3):
        c.chat.completions.create(model="demo", messages=[{"role": "user", "content": "chart me"}])
    tenant = system.api.one("tenants/?slug=demo")
    deadline = time.monotonic() + 10
    while True:
        page.goto(f"{system.stack.web_url}/admin/asc_tenancy/tenant/{tenant['id']}/timeline/")
        if page.locator(".asc-totals").inner_text().startswith("3 requests"):
            break
        assert time.monotonic() < deadline, "the timeline never showed the 3 requests"
        time.sleep(0.25)
    assert page.locator("svg.asc-timeline path.asc-series").count() == 5, "five lanes, one axis"
    requests_chart = page.locator("g[data-title=Requests] path.asc-series")
    box = requests_chart.bounding_box()
    assert box is not None
    assert box["height"] > 10, "the requests series rises above the axis"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(path=str(SCREENSHOTS / "tenant-timeline.png"), full_page=True)
    assert png.startswith(b"\x89PNG")
    assert len(png) > 10_000, "a rendered page, not a blank one"
    page.close()


def flaky_route(system: System) -> dict[str, Any]:
    """A route whose first target always fails (the mock provider answering 500) and whose
    breaker opens at the first failure, before a working second target."""
    ids = demo_ids(system)
    options = {"fail_status": "500", "breaker_failures": "1", "breaker_cooldown_s": "600"}
    provider = system.api.call(
        "POST", "providers/", {"name": "flaky", "kind": "mock", "options": options}
    )
    model = system.api.call(
        "POST",
        "models/",
        {"provider": provider["id"], "provider_model": "flaky-1", "region": "local",
         "input_price": "0.50", "output_price": "1.50"},
    )  # fmt: skip
    credential = system.api.call(
        "POST",
        "credentials/",
        {"tenant": ids["tenant"], "provider": provider["id"], "name": "flaky", "secret": "x" * 24},
    )
    targets = [
        {"model": model["id"], "credential": credential["id"], "priority": 0, "weight": 1},
        {"model": ids["model"], "credential": ids["credential"], "priority": 1, "weight": 1},
    ]
    body = {"tenant": ids["tenant"], "name": "console-route", "targets": targets}
    return dict(system.api.call("POST", "routes/", body))


def test_the_console_and_the_timeline_show_real_traffic(system: System, browser: Browser) -> None:
    started = datetime.now(UTC) - timedelta(seconds=3)
    route = flaky_route(system)
    key = add_key(system, "console", [])
    limit = {
        "tenant": demo_ids(system)["tenant"], "scope": "key", "key": key["id"], "kind": "budget",
        "period": "day", "amount": "0.0003", "alert_thresholds": [0.5, 0.8],
    }  # fmt: skip
    system.api.call("POST", "limits/", limit)
    system.api.call("PATCH", f"keys/{key['id']}/", {"routes": [route["id"]]})
    c = OpenAI(base_url=f"{system.stack.dp_url}/v1", api_key=key["secret"], max_retries=0)
    system.clients.append(c)

    def ask(i: int) -> int:
        try:
            c.chat.completions.create(
                model="console-route",
                max_tokens=32,
                messages=[{"role": "user", "content": f"console traffic {i}"}],
            )
        except openai.APIStatusError as exc:
            return exc.status_code
        return 200

    eventually(lambda: ask(-1) == 200, 10)  # the key and its route have reached the data plane
    outcomes = [ask(i) for i in range(14)]
    assert 429 in outcomes, "the budget ran out"
    with pytest.raises(openai.PermissionDeniedError):  # a route the key was not given
        c.chat.completions.create(model="demo", messages=[{"role": "user", "content": "no"}])
    demo = OpenAI(base_url=f"{system.stack.dp_url}/v1", api_key=system.demo_key, max_retries=0)
    system.clients.append(demo)
    for i in range(4):
        demo.chat.completions.create(model="demo", messages=[{"role": "user", "content": f"{i}"}])
    sent = 1 + len(outcomes) + 1  # at least: waiting for the route may have taken more

    def recorded() -> bool:
        return len(system.api.all(f"usage/?key={key['id']}")) >= sent

    eventually(recorded, 30, interval=0.2)

    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    log_in(page, system)
    page.goto(f"{system.stack.web_url}/admin/")
    fleet = page.locator("#asc-fleet")
    assert system.stack.node_id in fleet.inner_text()
    assert "current" in fleet.locator("tr", has_text=system.stack.node_id).inner_text()
    assert "flaky/flaky-1" in page.locator("#asc-circuits").inner_text(), "its circuit is open"
    demo_row = page.locator("#asc-tenants tr.asc-tenant", has_text="demo")
    assert demo_row.locator("a", has_text="timeline").count() == 1
    denials = page.locator("#asc-denials").inner_text()
    assert "budget_exceeded" in denials
    assert "model_not_allowed" in denials
    assert "No staged change in flight" in page.locator("#asc-rollout").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(path=str(SCREENSHOTS / "console.png"), full_page=True)
    assert len(png) > 10_000, "a rendered page, not a blank one"

    demo_row.locator("a", has_text="timeline").click()
    page.wait_for_selector("svg.asc-timeline")
    # Zoomed in on this test's traffic (a few seconds): one bar per second.
    until = datetime.now(UTC) + timedelta(seconds=3)
    page.goto(f"{page.url}?since={started:%Y-%m-%dT%H:%M:%S}&until={until:%Y-%m-%dT%H:%M:%S}")
    assert page.locator("svg.asc-timeline path.asc-series").count() == 5
    for kind in ("version", "circuit", "threshold"):
        assert page.locator(f"svg.asc-timeline g.asc-mark-{kind}").count() >= 1, kind
    events = page.locator("table.asc-events").inner_text()
    assert "circuit of flaky/flaky-1 found open" in events
    assert "50% of the key budget ($0.0003, daily) passed" in events
    fallbacks = page.locator("g[data-title=Fallbacks] path.asc-series").bounding_box()
    assert fallbacks is not None
    assert fallbacks["height"] > 10, "the fallbacks lane rises above its axis"
    png = page.screenshot(path=str(SCREENSHOTS / "tenant-timeline-events.png"), full_page=True)
    assert len(png) > 10_000
    page.emulate_media(color_scheme="dark")  # the admin's dark theme: the charts follow it
    page.screenshot(path=str(SCREENSHOTS / "tenant-timeline-dark.png"), full_page=True)
    page.close()
