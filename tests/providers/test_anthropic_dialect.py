"""The Anthropic dialect of /v1/messages as pure functions: Anthropic requests to OpenAI
ones, OpenAI completions to Anthropic messages, OpenAI chunks to Anthropic stream events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from data_plane.dialects import anthropic as anthropic_api
from data_plane.dialects.anthropic_stream import AnthropicEncoder
from data_plane.dialects.inbound import Inbound
from data_plane.errors import ApiError
from data_plane.types import Untranslatable

CALL = {
    "id": "call_abc",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def test_anthropic_requests_become_openai_requests() -> None:
    body = anthropic_api.to_openai(
        {
            "model": "r",
            "max_tokens": 20,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                        },
                        {"type": "text", "text": "What?"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "text", "text": "boom"}],
                            "is_error": True,
                        }
                    ],
                },
            ],
            "tool_choice": {"type": "tool", "name": "f"},
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
            "stream": True,
        }
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "text", "text": "What?"},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert body["stream"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"model": "r", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "r", "max_tokens": 5, "messages": [{"role": "system", "content": "hi"}]},
        {"model": "r", "max_tokens": 5, "messages": []},
    ],
)
def test_malformed_anthropic_requests_are_400s(body: dict[str, Any]) -> None:
    parsed = anthropic_api.parse_messages_request(orjson.dumps(body), "req")
    assert isinstance(parsed, ApiError)
    assert parsed.status == 400
    assert anthropic_api.error_body(parsed)["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("extra", "what"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "content blocks of type 'document'",
        ),
        ({"top_logprobs": 2}, "the parameter 'top_logprobs'"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "extended thinking"),
        ({"context_management": {"edits": []}}, "context management"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tools"),
    ],
)
def test_anthropic_features_the_openai_shape_lacks_are_untranslatable(
    extra: dict[str, Any], what: str
) -> None:
    """They parse (an Anthropic upstream takes them as they are) but cannot be translated."""
    body = {"model": "r", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], **extra}
    parsed = anthropic_api.parse_messages_request(orjson.dumps(body), "req")
    assert isinstance(parsed, Inbound)
    with pytest.raises(Untranslatable) as caught:
        parsed.native.translate()
    assert what in caught.value.what


def test_an_openai_completion_becomes_an_anthropic_message() -> None:
    completion = {
        "id": "chatcmpl-1",
        "choices": [
            {"message": {"content": "", "tool_calls": [CALL]}, "finish_reason": "tool_calls"}
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
    message = anthropic_api.to_message(completion, "route")
    assert message["id"] == "msg_chatcmpl-1"
    assert message["content"] == [
        {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"city": "Paris"}}
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 6,
        "output_tokens": 3,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4,
    }


def parse_events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in data.decode().strip().split("\n\n"):
        kind, payload = block.split("\n")
        out.append((kind.removeprefix("event: "), orjson.loads(payload.removeprefix("data: "))))
    return out


def test_openai_chunks_become_anthropic_events() -> None:
    encoder = AnthropicEncoder("msg_1", "route", anthropic_api.error_body)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    stream = b"".join(
        [
            encoder.chunk(chunk({"role": "assistant", "content": ""})),
            encoder.chunk(chunk({"content": "Hi"})),
            encoder.chunk(
                chunk(
                    {
                        "tool_calls": [
                            {"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}
                        ]
                    }
                )
            ),
            encoder.chunk(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})),
            encoder.chunk(chunk({}, "tool_calls")),
            encoder.chunk({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
            encoder.end(),
        ]
    )
    events = parse_events(stream)
    assert [(k, d.get("index")) for k, d in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert all(kind == data["type"] for kind, data in events)
    assert events[4][1]["content_block"] == {
        "type": "tool_use",
        "id": "c1",
        "name": "f",
        "input": {},
    }
    assert events[7][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[7][1]["usage"] == {
        "input_tokens": 5,
        "output_tokens": 2,
        "cache_read_input_tokens": 0,
    }
    error = parse_events(encoder.error(ApiError(502, "upstream_error", "broke", "upstream_error")))
    assert error == [
        (
            "error",
            {
                "type": "error",
                "error": {"type": "api_error", "message": "broke", "code": "upstream_error"},
            },
        )
    ]
