"""parse_chat_request takes the raw body and returns a ChatRequest or a 400 in the OpenAI
error format, never an exception, whatever the bytes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane import errors
from data_plane.dialects import openai as openai_api
from data_plane.errors import ApiError
from data_plane.types import ChatRequest

MESSAGES = [{"role": "user", "content": "Hello"}]


def parse(body: Any) -> ChatRequest | ApiError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return openai_api.parse_chat_request(raw, "req-1")


def assert_400(result: ChatRequest | ApiError, code: str, param: str | None) -> None:
    assert isinstance(result, ApiError), result
    assert (result.status, result.code, result.param) == (400, code, param)
    assert result.body() == {
        "error": {
            "message": result.message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


def test_a_valid_request_is_kept_untouched() -> None:
    body = {"model": "chat", "messages": MESSAGES, "temperature": 0.2, "seed": 7, "user": "u1"}
    raw = orjson.dumps(body)
    request = openai_api.parse_chat_request(raw, "req-42")
    assert isinstance(request, ChatRequest)
    assert (request.request_id, request.stream) == ("req-42", False)
    assert request.body == body, "fields the gateway does not check travel as sent"


@pytest.mark.parametrize(
    ("stream", "expected"), [(True, True), (False, False), (None, False), ("absent", False)]
)
def test_stream_flag(stream: object, expected: bool) -> None:
    body: dict[str, object] = {"model": "chat", "messages": MESSAGES}
    if stream != "absent":
        body["stream"] = stream
    request = parse(body)
    assert isinstance(request, ChatRequest)
    assert request.stream is expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"include_usage": True}, True),
        ({"include_usage": False}, False),
        ({"include_usage": "yes"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_include_usage(options: object, expected: bool) -> None:
    request = parse(
        {"model": "chat", "messages": MESSAGES, "stream": True, "stream_options": options}
    )
    assert isinstance(request, ChatRequest)
    assert openai_api.include_usage(request) is expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json",
        b'{"model": "chat",}',
        b"\xff\xfe{}",
        b"[1, 2",
        b"NaN",
        b'{"model": "chat", "n": 1e400}',
        b'{"model": "\\ud800"}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_a_body_that_is_not_json_is_400_invalid_json(raw: bytes) -> None:
    assert_400(parse(raw), errors.INVALID_JSON, None)


@pytest.mark.parametrize("body", [[], ["model"], "chat", 3, None, True])
def test_a_body_that_is_not_an_object_is_400(body: object) -> None:
    assert_400(parse(body), errors.INVALID_REQUEST, None)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": "", "messages": MESSAGES}, "model"),
        ({"model": None, "messages": MESSAGES}, "model"),
        ({"model": 4, "messages": MESSAGES}, "model"),
        ({"model": ["chat"], "messages": MESSAGES}, "model"),
        ({"model": "chat"}, "messages"),
        ({"model": "chat", "messages": []}, "messages"),
        ({"model": "chat", "messages": "Hello"}, "messages"),
        ({"model": "chat", "messages": {"role": "user"}}, "messages"),
        ({"model": "chat", "messages": ["Hello"]}, "messages"),
        ({"model": "chat", "messages": [{"content": "no role"}]}, "messages"),
        ({"model": "chat", "messages": [{"role": 1, "content": "x"}]}, "messages"),
        ({"model": "chat", "messages": [*MESSAGES, None]}, "messages"),
        ({"model": "chat", "messages": MESSAGES, "stream": "true"}, "stream"),
        ({"model": "chat", "messages": MESSAGES, "stream": 1}, "stream"),
        ({"model": "chat", "messages": MESSAGES, "stream_options": True}, "stream_options"),
        ({"model": "chat", "messages": MESSAGES, "stream_options": []}, "stream_options"),
    ],
)
def test_missing_or_mistyped_fields_are_400_naming_the_param(
    body: dict[str, object], param: str
) -> None:
    assert_400(parse(body), errors.INVALID_REQUEST, param)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
chat_like = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values | st.just("chat"),
        "messages": json_values | st.just(MESSAGES),
        "stream": json_values | st.booleans(),
        "stream_options": json_values | st.just({"include_usage": True}),
    },
)


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_give_a_request_or_a_400(raw: bytes) -> None:
    result = openai_api.parse_chat_request(raw, "req")
    assert isinstance(result, ChatRequest) or result.status == 400


@settings(max_examples=500, deadline=None)
@given(body=chat_like | json_values)
def test_any_json_gives_a_request_or_a_400(body: object) -> None:
    try:
        raw = orjson.dumps(body)
    except orjson.JSONEncodeError:  # integers beyond 64 bits: not JSON orjson can write
        raw = b"[" + str(body).encode() + b"]"
    result = openai_api.parse_chat_request(raw, "req")
    if isinstance(result, ChatRequest):
        assert isinstance(body, dict)
        assert isinstance(body["model"], str)
        assert body["model"]
        assert isinstance(body["messages"], list)
        assert body["messages"]
        assert result.stream is (body.get("stream") is True)
    else:
        assert result.status == 400
        assert result.body()["error"]["type"] == "invalid_request_error"


def test_sse_event_and_done_are_server_sent_events() -> None:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "choices": []}
    event = openai_api.sse_event(chunk)
    assert event.startswith(b"data: ")
    assert event.endswith(b"\n\n")
    assert orjson.loads(event[len(b"data: ") : -2]) == chunk
    assert openai_api.SSE_DONE == b"data: [DONE]\n\n"


def test_model_list_is_the_openai_list_shape() -> None:
    listed = openai_api.model_list(["a", "b"], "acme")
    assert listed["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in listed["data"]] == [
        ("a", "model", "acme"),
        ("b", "model", "acme"),
    ]
