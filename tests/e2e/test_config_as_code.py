"""Configuration as code on the real system: a LiteLLM user's config.yaml, imported with one
command, gives routes the data plane serves (to the OpenAI SDK, from a fake OpenAI upstream,
falling back where LiteLLM would); and the live configuration exports, and imports again with
nothing to change, through the commands and the API alike."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from scripts.stack import MANAGE, REPO
from tests.e2e.conftest import System
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.e2e

LITELLM_CONFIG = REPO / "tests" / "control_plane" / "data" / "litellm_config.yaml"
UPSTREAM_KEY = "sk-fake-upstream-0123456789"


class ThreadedFake:
    """The fake OpenAI server (an aiohttp app) on its own event loop in a thread, for these
    synchronous tests."""

    def __init__(self) -> None:
        self.fake = FakeOpenAI(api_key=UPSTREAM_KEY, model="gpt-4o")
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self.fake:
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        assert self._ready.wait(10), "the fake OpenAI server did not start"
        return self.fake

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with ThreadedFake() as fake:
        yield fake


def manage(system: System, *args: str, env: dict[str, str] | None = None) -> str:
    """A management command against the system's database, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, MANAGE, *args],
        env={**os.environ, **system.stack.env, **(env or {})},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def eventually[T](check: Callable[[], T], limit_s: float = 10.0) -> T:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return check()
        except (openai.APIError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_litellm_config_imported_in_one_command_is_served(
    system: System, upstream: FakeOpenAI, request: pytest.FixtureRequest
) -> None:
    env = {
        "ASC_TEST_UPSTREAM": upstream.base_url,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "AZURE_API_KEY": "azure-unused-0123456789",
        "ANTHROPIC_API_KEY": "sk-ant-unused-0123456789",
    }
    args = ["asc_import_litellm", str(LITELLM_CONFIG), "--tenant", "from-litellm"]
    report = manage(system, *args, env=env)
    assert "+ tenant from-litellm / route gpt-4o" in report
    assert manage(system, *args, env=env).startswith("no changes"), "idempotent"

    tenant = system.api.one("tenants/?slug=from-litellm")
    routes = system.api.call("GET", f"routes/?tenant={tenant['id']}")["results"]
    key = system.api.call(
        "POST",
        "keys/",
        {"tenant": tenant["id"], "name": "migrated-app", "routes": [r["id"] for r in routes]},
    )
    client = openai.OpenAI(
        base_url=f"{system.stack.dp_url}/v1", api_key=key["secret"], max_retries=0
    )
    request.addfinalizer(client.close)

    def ask(model: str) -> str:
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello from a LiteLLM user"}]
        )
        return str(answer.choices[0].message.content)

    served_before = len(upstream.received)
    assert eventually(lambda: ask("gpt-4o")) == "Hello from the fake provider."
    assert ask("gpt-4") == "Hello from the fake provider.", "model_group_alias"
    assert ask("flaky") == "Hello from the fake provider.", "its primary refuses: fallback"
    assert len(upstream.received) - served_before >= 3
    assert upstream.problems == [], "the upstream got exactly what OpenAI would"

    def recorded() -> None:
        usage = system.api.call("GET", f"usage/?tenant={tenant['id']}&limit=100")["results"]
        assert {u["route_name"] for u in usage} >= {"gpt-4o", "gpt-4", "flaky"}

    eventually(recorded)  # usage comes back in batches


def test_the_live_configuration_exports_and_imports_with_nothing_to_change(
    system: System, tmp_path: Path
) -> None:
    exported = manage(system, "asc_export")
    assert "asc_config: 1" in exported
    path = tmp_path / "asc.yaml"
    path.write_text(exported)
    assert manage(system, "asc_import", str(path), "--dry-run").startswith("no changes")

    demo = system.api.one("tenants/?slug=demo")
    over_api: Any = system.api.call("POST", "config/import/", {"document": exported})
    assert over_api["changes"] == []
    changed = exported.replace("  - name: demo\n", "  - name: demo\n    max_retries: 1\n", 1)
    preview = system.api.call(
        "POST", "config/import/", {"document": changed, "tenant": "demo", "dry_run": True}
    )
    assert preview["applied"] is False
    assert preview["diff"] == "~ tenant demo / route demo (max_retries: 0 -> 1)\n"
    route = system.api.one(f"routes/?tenant={demo['id']}&name=demo")
    assert route["max_retries"] == 0, "a dry run writes nothing"
