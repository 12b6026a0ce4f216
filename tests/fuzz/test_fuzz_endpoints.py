"""Fuzzing every data-plane endpoint in process: random bytes, random JSON, and valid
OpenAI, Anthropic and embeddings bodies mutated field by field (wrong types, huge or
fractional numbers, unknown parameters, missing fields), under random and real credentials
and headers, streamed or not. Whatever the input, the answer comes within the time limit and
is never a 5xx (the provider here is the mock: nothing upstream can fail), and a refusal is an
error body in the endpoint's format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.data_plane import snapshots
from tests.fuzz.harness import FUZZ, Answer, Served, serving

QUESTION = [{"role": "user", "content": "Hello there, how are you?"}]
VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "chat", "messages": QUESTION, "max_tokens": 20},
    "/v1/messages": {"model": "chat", "max_tokens": 20, "messages": QUESTION},
    "/v1/embeddings": {"model": "chat", "input": ["Hello", "there"]},
}
PARAMS = [
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
    "n", "temperature", "top_p", "top_k", "tools", "tool_choice", "response_format", "stop",
    "user", "logit_bias", "seed", "input", "encoding_format", "dimensions", "system",
    "stop_sequences", "metadata", "output_config", "thinking", "parallel_tool_calls",
    "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs",
]  # fmt: skip
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**31, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1e5, 100000.0, 2**63 - 1, 2**63, 2**64, 1e308, -1e308, 0.5]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=30))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=16,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "developer", "x"])},
    optional={
        "content": st.one_of(JSON, st.lists(st.fixed_dictionaries({"type": JSON, "text": JSON}))),
        "tool_calls": JSON,
        "tool_call_id": JSON,
        "name": JSON,
    },
)
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
KEYS = st.one_of(
    st.sampled_from([snapshots.ACME_KEY, snapshots.BETA_KEY, snapshots.ACME_EXPIRED_KEY]),
    HEADER_TEXT,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    snapshot = snapshots.two_tenants().snapshot()
    with serving(tmp_path_factory.mktemp("fuzz-endpoints"), snapshot) as s:
        yield s


def encode(value: Any) -> bytes:
    """JSON as a client may send it: integers of any size (orjson stops at 64 bits)."""
    return json.dumps(value).encode()


@st.composite
def mutated(draw: st.DrawFn, path: str) -> bytes:
    """A valid body of ``path`` with a few fields changed, added or removed."""
    body = dict(VALID[path])
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["set", "number", "delete", "message", "stream"]))
        name = draw(st.one_of(st.sampled_from(PARAMS), st.text(max_size=8)))
        if action == "set":
            body[name] = draw(JSON)
        elif action == "number":
            body[name] = draw(NUMBERS)
        elif action == "delete":
            body.pop(name, None)
        elif action == "message":
            body["messages"] = draw(st.lists(MESSAGE, min_size=0, max_size=3))
        else:
            body["stream"] = True
            body["stream_options"] = {"include_usage": draw(st.booleans())}
    return encode(body)


def bodies(path: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated(path),
        st.binary(max_size=300),
        JSON.map(encode),
    )


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    out = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", ""]))}
    if draw(st.booleans()):
        out["Authorization"] = "Bearer " + draw(KEYS)
    elif draw(st.booleans()):
        out["x-api-key"] = draw(KEYS)
    elif draw(st.booleans()):
        out["Authorization"] = draw(HEADER_TEXT)
    if draw(st.booleans()):
        out["x-asc-end-user"] = draw(HEADER_TEXT)
    if draw(st.booleans()):
        out["anthropic-version"] = draw(st.sampled_from(["2023-06-01", ""]))
    return out


def check(answer: Answer, path: str) -> None:
    assert answer.status < 500, (answer.status, answer.body[:500])
    if answer.headers.get("Content-Type", "").startswith("text/event-stream"):
        assert b"internal_error" not in answer.body, answer.body[-500:]
        return
    if answer.status >= 400:
        body = orjson.loads(answer.body)
        if path == "/v1/messages":
            assert body["type"] == "error", body
        assert "error" in body, body


@FUZZ
@given(data=st.data())
def test_post_endpoints(served: Served, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(VALID)))
    answer = served.send("POST", path, data.draw(headers()), data.draw(bodies(path)))
    check(answer, path)


@FUZZ
@given(key=KEYS, path=st.sampled_from(["/v1/models", "/v1/models/chat", "/v1/chat"]))
def test_get_endpoints(served: Served, key: str, path: str) -> None:
    answer = served.send("GET", path, {"Authorization": f"Bearer {key}"}, b"")
    check(answer, path)
