"""Guardrails and the audit trail end to end: a policy saved through the REST API reaches the
running data plane; prompts and (streamed) completions are redacted or blocked; each request's
audit record names the categories found, the action, the snapshot version and the person."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.e2e.conftest import System
from tests.e2e.test_foundation import (
    PROPAGATION_LIMIT_S,
    add_key,
    add_route,
    applied_version,
    client,
    demo_ids,
    eventually,
    max_published_version,
)

pytestmark = pytest.mark.e2e

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


def audit_of(system: System, request_id: str) -> dict[str, Any]:
    return system.api.one(f"audit/?request_id={request_id}")


def test_redaction_blocking_and_the_audit_record(system: System) -> None:
    tenant = demo_ids(system)["tenant"]
    route = add_route(system, "guarded")
    system.api.call(
        "POST",
        "guardrails/",
        {
            "tenant": tenant,
            "name": "pii",
            "categories": ["email", "payment_card"],
            "actions": {"email": "redact", "payment_card": "block"},
        },
    )
    key = add_key(system, "backend", [route["id"]])
    system.api.call("PATCH", f"keys/{key['id']}/", {"asserts_end_user": True})
    c = client(system, key["secret"]).with_options(default_headers={"x-asc-end-user": "alice@corp"})

    def redacted() -> Any:
        raw = c.chat.completions.with_raw_response.create(
            model="guarded", messages=[{"role": "user", "content": f"mail {EMAIL} please"}]
        )
        text = raw.parse().choices[0].message.content
        return raw if "[EMAIL]" in text and EMAIL not in text else None

    eventually(redacted, PROPAGATION_LIMIT_S)
    eventually(lambda: applied_version(system) == max_published_version(system), 5)
    version = applied_version(system)
    raw = redacted()
    assert raw is not None, "the mock echoes the prompt: the upstream saw the redacted text"

    with pytest.raises(openai.BadRequestError) as refused:
        c.chat.completions.create(
            model="guarded", messages=[{"role": "user", "content": f"charge {CARD} now"}]
        )
    assert refused.value.code == "guardrail_blocked"
    assert CARD not in str(refused.value)

    def recorded(request_id: str) -> dict[str, Any]:
        return audit_of(system, request_id)

    eventually(lambda: recorded(raw.headers["x-request-id"]), 10, interval=0.2)
    record = recorded(raw.headers["x-request-id"])
    assert record["categories"] == ["email"]
    assert record["guardrail_action"] == "redact"
    assert record["decision"] == "allowed"
    assert record["snapshot_version"] == version
    assert record["subject"] == "alice@corp"
    assert record["key"] == key["id"]
    assert record["tenant"] == tenant

    blocked_id = refused.value.response.headers["x-request-id"]
    eventually(lambda: recorded(blocked_id), 10, interval=0.2)
    blocked = recorded(blocked_id)
    assert blocked["decision"] == "refused"
    assert blocked["reason"] == "guardrail_blocked"
    assert blocked["categories"] == ["payment_card"]
    assert blocked["guardrail_action"] == "block"
    assert blocked["subject"] == "alice@corp"


def test_streamed_output_is_redacted_across_chunks_and_unasserted_subjects_are_ignored(
    system: System,
) -> None:
    route = add_route(system, "output-guarded")
    system.api.call(
        "POST",
        "guardrails/",
        {
            "tenant": demo_ids(system)["tenant"],
            "route": route["id"],
            "name": "output only",
            "on_input": False,
            "categories": ["payment_card"],
            "default_action": "redact",
        },
    )
    key = add_key(system, "plain", [route["id"]])
    c = client(system, key["secret"]).with_options(default_headers={"x-asc-end-user": "mallory"})

    def streamed() -> tuple[str, int, str]:
        with c.chat.completions.with_streaming_response.create(
            model="output-guarded",
            messages=[{"role": "user", "content": f"card {CARD} thanks"}],
            stream=True,
        ) as response:
            chunks = list(response.parse())
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            pieces = sum(1 for ch in chunks if ch.choices and ch.choices[0].delta.content)
            return text, pieces, response.headers["x-request-id"]

    def redacted_stream() -> tuple[str, int, str] | None:
        result = streamed()
        return result if "[PAYMENT_CARD]" in result[0] else None

    eventually(redacted_stream, PROPAGATION_LIMIT_S)
    text, pieces, request_id = streamed()
    assert "4111" not in text
    assert "1111" not in text
    assert text.startswith("Mock response to: card [PAYMENT_CARD] thanks")
    assert pieces >= 1

    eventually(lambda: audit_of(system, request_id), 10, interval=0.2)
    record = audit_of(system, request_id)
    assert record["categories"] == ["payment_card"]
    assert record["guardrail_action"] == "redact"
    assert record["subject"] == "admin", "a key not allowed to assert the user: its creator"
