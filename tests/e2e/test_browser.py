"""The admin in a real browser (headless Chromium, driven by Playwright) against the real
system: log in, create a route with two targets, watch the fleet page show the running data
plane at the new version, and open the tenant timeline with its charts drawn."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import System

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
    for row, (priority, weight) in enumerate([(0, 3), (1, 1)]):
        page.select_option(f"#id_targets-{row}-model", label="mock:mock-1@local")
        page.select_option(f"#id_targets-{row}-credential", label="demo/mock")
        page.fill(f"#id_targets-{row}-priority", str(priority))
        page.fill(f"#id_targets-{row}-weight", str(weight))
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
    assert page.locator("svg polyline.asc-series").count() == 5
    requests_chart = page.locator("figure[data-title=Requests] polyline.asc-series")
    box = requests_chart.bounding_box()
    assert box is not None
    assert box["height"] > 10, "the requests series rises above the axis"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(path=str(SCREENSHOTS / "tenant-timeline.png"), full_page=True)
    assert png.startswith(b"\x89PNG")
    assert len(png) > 10_000, "a rendered page, not a blank one"
    page.close()
