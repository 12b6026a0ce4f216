"""End to end: the real control plane (web + gRPC) and a real data plane as separate
processes, driven by the official OpenAI SDK as an application team would use it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e

PROPAGATION_LIMIT_S = 2.0


def client(system: System, key: str) -> OpenAI:
    c = OpenAI(base_url=f"{system.stack.dp_url}/v1", api_key=key, max_retries=0, timeout=10)
    system.clients.append(c)
    return c


def ask(c: OpenAI, model: str = "demo", text: str = "Hello from the end-to-end test") -> Any:
    return c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def eventually(check: Callable[[], Any], timeout: float, interval: float = 0.02) -> float:
    """Seconds until ``check`` returns a truthy value without raising; fails after timeout."""
    start = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except Exception as exc:  # the condition is not true yet: keep polling
            last = exc
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s (last error: {last!r})")


def demo_ids(system: System) -> dict[str, str]:
    tenant = system.api.one("tenants/?slug=demo")
    model = system.api.one("models/?provider_model=mock-1")
    credential = system.api.call("GET", f"credentials/?tenant={tenant['id']}")["results"][0]
    return {"tenant": tenant["id"], "model": model["id"], "credential": credential["id"]}


def add_route(system: System, name: str) -> dict[str, Any]:
    ids = demo_ids(system)
    body = {
        "tenant": ids["tenant"],
        "name": name,
        "targets": [
            {"model": ids["model"], "credential": ids["credential"], "priority": 0, "weight": 1}
        ],
    }
    return dict(system.api.call("POST", "routes/", body))


def add_key(system: System, name: str, route_ids: list[str]) -> dict[str, Any]:
    ids = demo_ids(system)
    body = {"tenant": ids["tenant"], "name": name, "routes": route_ids, "expires_at": None}
    return dict(system.api.call("POST", "keys/", body))


def test_completion_streaming_and_models(system: System) -> None:
    c = client(system, system.demo_key)
    completion = ask(c)
    assert completion.object == "chat.completion"
    assert completion.model == "demo"
    text = completion.choices[0].message.content
    assert text
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0

    chunks = list(
        c.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "Hello from the end-to-end test"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == text, (
        "the mock provider is deterministic: streamed text equals the completion"
    )
    assert len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) > 1
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == completion.usage.completion_tokens

    assert [m.id for m in c.models.list()] == ["demo"]


def test_sdk_errors_for_bad_key_unknown_and_ungranted_route(system: System) -> None:
    with pytest.raises(openai.AuthenticationError):
        ask(client(system, "sk-asc-not-a-real-key"))
    c = client(system, system.demo_key)
    with pytest.raises(openai.NotFoundError):
        ask(c, model="no-such-route")

    add_route(system, "ungranted")

    def refused_as_not_granted() -> bool:
        try:
            ask(c, model="ungranted")
        except openai.PermissionDeniedError as exc:
            return exc.code == "model_not_allowed"
        return False

    eventually(refused_as_not_granted, PROPAGATION_LIMIT_S)


def test_new_route_and_revoked_key_take_effect_within_two_seconds(system: System) -> None:
    route = add_route(system, "added-live")
    key = add_key(system, "live", [route["id"]])
    c = client(system, key["secret"])
    took = eventually(
        lambda: ask(c, model="added-live").choices[0].message.content, PROPAGATION_LIMIT_S
    )
    print(f"route + key visible on the data plane after {took:.3f} s")

    system.api.call("POST", f"keys/{key['id']}/revoke/")

    def refused() -> bool:
        try:
            ask(c, model="added-live")
        except openai.AuthenticationError:
            return True
        return False

    took = eventually(refused, PROPAGATION_LIMIT_S)
    print(f"revocation effective after {took:.3f} s")


def applied_version(system: System) -> int:
    node = system.api.one(f"nodes/?node_id={system.stack.node_id}")
    return int(node["applied_version"])


def test_every_request_is_recorded_with_tenant_key_route_tokens_and_version(system: System) -> None:
    route = add_route(system, "metered")
    add_route(system, "metered-ungranted")
    key = add_key(system, "metered", [route["id"]])
    c = client(system, key["secret"])
    eventually(lambda: ask(c, model="metered"), PROPAGATION_LIMIT_S)
    eventually(lambda: applied_version(system) == max_published_version(system), 5)
    version = applied_version(system)

    made: dict[str, dict[str, Any]] = {}
    for i in range(5):
        raw = c.chat.completions.with_raw_response.create(
            model="metered", messages=[{"role": "user", "content": f"count me {i} " * (i + 1)}]
        )
        usage = raw.parse().usage
        made[raw.headers["x-request-id"]] = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "status_code": 200,
        }
    with c.chat.completions.with_streaming_response.create(
        model="metered",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        chunks = list(response.parse())
        made[response.headers["x-request-id"]] = {
            "prompt_tokens": chunks[-1].usage.prompt_tokens,
            "completion_tokens": chunks[-1].usage.completion_tokens,
            "status_code": 200,
        }
    try:
        c.chat.completions.with_raw_response.create(
            model="metered-ungranted", messages=[{"role": "user", "content": "no"}]
        )
    except openai.PermissionDeniedError as exc:
        made[exc.response.headers["x-request-id"]] = {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "status_code": 403,
        }
    assert len(made) == 7, "five completions, one stream and one refusal"

    def all_recorded() -> list[dict[str, Any]]:
        records = system.api.call("GET", f"usage/?key={key['id']}&limit=100")["results"]
        # the first (propagation-probing) requests of this key are recorded as well
        by_id = {r["request_id"]: r for r in records}
        return [by_id[rid] for rid in made] if set(made) <= set(by_id) else []

    eventually(all_recorded, 10, interval=0.2)
    tenant_id = demo_ids(system)["tenant"]
    for record, (request_id, expected) in zip(all_recorded(), made.items(), strict=True):
        assert record["request_id"] == request_id
        assert record["tenant"] == tenant_id
        assert record["key"] == key["id"]
        assert record["status_code"] == expected["status_code"]
        assert record["prompt_tokens"] == expected["prompt_tokens"]
        assert record["completion_tokens"] == expected["completion_tokens"]
        assert record["snapshot_version"] == version
        if expected["status_code"] == 200:
            assert record["route"] == route["id"]
            assert record["route_name"] == "metered"
            assert record["cost_nano_usd"] > 0
        else:
            assert record["error_code"] == "model_not_allowed"
    records = system.api.call("GET", f"usage/?key={key['id']}&limit=100")["results"]
    assert len({r["request_id"] for r in records}) == len(records), "no usage record twice"


def max_published_version(system: System) -> int:
    return max(
        int(s["version"]) for s in system.api.call("GET", "snapshots/?limit=1000")["results"]
    )


def test_data_plane_survives_control_plane_down_and_restarts_from_disk(system: System) -> None:
    stack = system.stack
    c = client(system, system.demo_key)
    stack.kill("grpc")
    stack.kill("web")
    request_ids = []
    raw = c.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": "control plane is down"}]
    )
    request_ids.append(raw.headers["x-request-id"])

    stack.stop("data_plane")
    stack.start_data_plane()
    stack.wait_data_plane(timeout=20)
    raw = c.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": "served from the disk snapshot"}]
    )
    assert raw.parse().choices[0].message.content
    request_ids.append(raw.headers["x-request-id"])

    stack.start_web()
    stack.start_grpc()
    stack.wait_web()

    def delivered() -> bool:
        records = system.api.call("GET", "usage/?limit=1000")["results"]
        seen = {r["request_id"] for r in records}
        return all(rid in seen for rid in request_ids)

    eventually(delivered, 20, interval=0.25)
