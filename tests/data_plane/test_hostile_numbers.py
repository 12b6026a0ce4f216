"""Hostile numbers at the edge: a token count that overflows the lease arithmetic must not
break budgets for every tenant of the node, a key's max_tokens cap holds whatever form the
number takes, and every bounded parameter is a 400 in the client's format when out of range
or of the wrong type (or the canonical integer when it is an integral float)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from data_plane.dialects import numbers
from data_plane.dialects.anthropic import parse_messages_request
from data_plane.dialects.embeddings import parse_embeddings_request
from data_plane.dialects.openai import parse_chat_request
from data_plane.errors import ApiError
from data_plane.limits.leases import LeaseBook, NeedsLease
from data_plane.limits.rules import BUDGET, Demand, worst_case
from data_plane.policy.compiled import LimitEntry, compile_snapshot
from data_plane.policy.health import BreakerConfig
from data_plane.types import INT64_MAX, ChatRequest, Usage
from data_plane.upstream.providers.http import option_seconds, retry_after
from data_plane.usage.record import RequestRecord, build_event
from shared.pb import control_pb2
from tests.data_plane import snapshots
from tests.data_plane.budgets import (
    QUESTION,
    GrantAll,
    chat,
    hard_budgets,
    post,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.gateway import Gateway, running_gateway

HUGE = 9223372036854775807
CAP = 100


@pytest.fixture
async def gateway(tmp_path: Path, upstream: FakeOpenAI) -> AsyncIterator[Gateway]:
    snapshot = hard_budgets(upstream.base_url, key_cap=CAP)
    async with running_gateway(tmp_path, snapshot, lease_source=GrantAll()) as gw:
        yield gw


# Defect 1: one request's max_tokens broke hard budgets for every tenant on the node.


async def test_an_overflowing_max_tokens_is_refused_and_other_tenants_keep_their_budgets(
    gateway: Gateway,
) -> None:
    assert (await post(gateway, snapshots.BETA_KEY, chat()))[0] == 200
    status, body = await post(gateway, snapshots.BETA_KEY, chat(max_tokens=HUGE))
    assert status == 400, body
    assert body["error"]["param"] == "max_tokens"
    for key in (snapshots.BETA_KEY, snapshots.ACME_KEY, snapshots.BETA_KEY):
        status, body = await post(gateway, key, chat(max_tokens=10))
        assert status == 200, body


def test_an_overflowing_reservation_is_saturated_not_sent_as_is() -> None:
    """Whatever reaches the book, its asks fit the int64 fields of the lease request."""
    book = LeaseBook()
    limit = LimitEntry("l", "t", "t", BUDGET, "none", "UTC", 10**12, True)
    for cost in (HUGE, HUGE * 1000):
        assert isinstance(book.admit([limit], Demand(1, 0, cost), 1.0, 1.7e9), NeedsLease)
        asks = book.asks(1.0, 1.7e9)
        assert [a.want for a in asks] == [INT64_MAX]
        book.failed([limit.id])


def test_the_worst_case_of_a_request_saturates() -> None:
    compiled = compile_snapshot(snapshots.two_tenants().snapshot(), snapshots.keyring())
    key = next(iter(compiled.keys_by_hash.values()))
    route = next(iter(compiled.routes.values()))
    demand = worst_case(route, key, 32 << 20, {"max_tokens": HUGE, "n": HUGE})
    assert demand.cost_nano_usd == INT64_MAX
    assert demand.tokens == INT64_MAX


def test_a_usage_report_past_uint32_saturates() -> None:
    usage = Usage.from_openai({"prompt_tokens": HUGE, "completion_tokens": 2**40})
    assert (usage.prompt_tokens, usage.completion_tokens) == (2**32 - 1, 2**32 - 1)
    control_pb2.UsageEvent(prompt_tokens=usage.prompt_tokens)  # fits


# Defect 2: a key's max_tokens cap was bypassed by 100000.0, 1e5 or "100000".


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("literal", ["100000.0", "1e5", "1E+5", '"100000"', "100000", "true"])
async def test_a_keys_max_tokens_cap_holds_whatever_the_form(
    gateway: Gateway, upstream: FakeOpenAI, name: str, literal: str
) -> None:
    """The JSON literal as sent: no client library normalises it first."""
    raw = orjson.dumps(chat())[:-1] + f', "{name}": {literal}}}'.encode()
    status, body = await post(gateway, snapshots.ACME_KEY, raw)
    assert status == 400, body
    numeric = literal[0].isdigit()
    assert body["error"]["param"] == ("max_tokens" if numeric else name)
    assert upstream.received == [], "nothing past the cap reaches the upstream"


async def test_both_token_fields_are_capped(gateway: Gateway, upstream: FakeOpenAI) -> None:
    body = chat(max_completion_tokens=10, max_tokens=100_000)
    status, answer = await post(gateway, snapshots.ACME_KEY, body)
    assert status == 400, answer
    assert upstream.received == []


async def test_an_integral_float_reaches_the_upstream_as_the_integer(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    status, body = await post(gateway, snapshots.ACME_KEY, chat(max_tokens=50.0, n=1e0))
    assert status == 200, body
    sent = upstream.received[-1].body
    assert (sent["max_tokens"], sent["n"]) == (50, 1)
    assert type(sent["max_tokens"]) is int


async def test_anthropic_clients_get_the_refusal_in_their_format(gateway: Gateway) -> None:
    body = {"model": "chat", "max_tokens": 1e5, "messages": QUESTION}
    status, answer = await post(gateway, snapshots.ACME_KEY, body, "/v1/messages")
    assert status == 400, answer
    assert answer["type"] == "error"
    assert answer["error"]["type"] == "invalid_request_error"
    body = {"model": "chat", "max_tokens": 10, "temperature": 9, "messages": QUESTION}
    status, answer = await post(gateway, snapshots.ACME_KEY, body, "/v1/messages")
    assert (status, answer["type"]) == (400, "error")
    assert "temperature" in answer["error"]["message"]


# Every bounded parameter, in process.

OUT_OF_RANGE: list[tuple[str, Any]] = [
    ("max_tokens", 0),
    ("max_tokens", numbers.MAX_OUTPUT_TOKENS + 1),
    ("max_tokens", 12.5),
    ("max_tokens", "7"),
    ("max_tokens", [7]),
    ("n", 0),
    ("n", 10**6),
    ("n", False),
    ("temperature", -0.1),
    ("temperature", 2.5),
    ("temperature", "hot"),
    ("top_p", 1.01),
    ("presence_penalty", -3),
    ("frequency_penalty", 1e300),
    ("top_logprobs", 21),
    ("seed", 2**63),
    ("top_k", -1),
]


@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
def test_out_of_range_or_mistyped_chat_parameters_are_400(name: str, value: Any) -> None:
    parsed = parse_chat_request(orjson.dumps(chat(**{name: value})), "r")
    assert isinstance(parsed, ApiError)
    assert (parsed.status, parsed.param) == (400, name)


def test_in_range_parameters_pass_in_canonical_form() -> None:
    body = chat(max_tokens=1e3, n=2.0, temperature=1, top_p=0.5, max_completion_tokens=None)
    raw = orjson.dumps({**body, "seed": -(2**63)})
    parsed = parse_chat_request(raw, "r")
    assert isinstance(parsed, ChatRequest)
    assert (parsed.body["max_tokens"], parsed.body["n"]) == (1000, 2)
    assert {type(parsed.body["max_tokens"]), type(parsed.body["n"])} == {int}
    assert parsed.body["max_completion_tokens"] is None


def test_embeddings_dimensions_and_anthropic_parameters_are_bounded() -> None:
    for dimensions in (0, 10**9, 3.5, "3"):
        raw = orjson.dumps({"model": "e", "input": "x", "dimensions": dimensions})
        refused = parse_embeddings_request(raw, "r")
        assert isinstance(refused, ApiError)
        assert refused.param == "dimensions"
    raw = orjson.dumps({"model": "e", "input": "x", "dimensions": 256.0})
    parsed = parse_embeddings_request(raw, "r")
    assert not isinstance(parsed, ApiError)
    assert parsed.body["dimensions"] == 256
    for name, value in (("max_tokens", HUGE), ("top_k", 1.5), ("top_p", 7)):
        body = {"model": "m", "max_tokens": 5, "messages": QUESTION, name: value}
        anthropic = parse_messages_request(orjson.dumps(body), "r")
        assert isinstance(anthropic, ApiError), name
        assert anthropic.status == 400


# Numbers from upstreams and options: never NaN, infinite or past their field.


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "nan"},
        {"Retry-After": "inf"},
        {"Retry-After": "1e400"},
        {"Retry-After": "-5"},
        {"retry-after-ms": "Infinity"},
        {"Retry-After": "99999999999"},
    ],
)
def test_a_retry_after_that_is_not_a_sane_number_is_ignored(headers: dict[str, str]) -> None:
    assert retry_after(headers) is None


def test_a_sane_retry_after_is_read() -> None:
    assert retry_after({"Retry-After": "2.5"}) == 2.5
    assert retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5


def test_infinite_or_nan_options_fall_back_to_their_defaults() -> None:
    for value in ("inf", "nan", "-1", "1e400"):
        assert option_seconds({"timeout_s": value}, "timeout_s", 600.0) == 600.0
        config = BreakerConfig.from_options(
            {"breaker_failures": value, "breaker_cooldown_s": value}
        )
        assert (config.failures, config.cooldown_s) == (
            BreakerConfig().failures,
            BreakerConfig().cooldown_s,
        )


def test_a_usage_event_holds_whatever_a_provider_reports() -> None:
    usage = Usage(prompt_tokens=2**40, completion_tokens=2**33, cached_prompt_tokens=2**35)
    record = RequestRecord("r", 0, 0.0, usage=usage, ttft_ms=2**40)
    event = build_event(record, latency_ms=2**45)
    assert event.prompt_tokens == event.completion_tokens == event.cached_prompt_tokens == 2**32 - 1
    assert (event.latency_ms, event.ttft_ms) == (2**32 - 1, 2**32 - 1)
