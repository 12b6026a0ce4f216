"""The provider translations as pure functions, without sockets: OpenAI requests to
Anthropic, Gemini and Mistral, and their answers and stream events back to OpenAI's."""

from __future__ import annotations

from typing import Any

import pytest

from data_plane.types import Usage
from data_plane.upstream.providers import anthropic_wire, gemini_wire, openai_wire
from data_plane.upstream.providers.base import ProviderError, Unsupported

CALL = {
    "id": "call_abc",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL, {**CALL, "id": "call_def"}]},
    {"role": "tool", "tool_call_id": "call_abc", "content": '{"temp_c": 21}'},
    {"role": "tool", "tool_call_id": "call_def", "content": "sunny"},
    {"role": "user", "content": "Thanks."},
]


def test_anthropic_request_merges_tool_results_into_one_user_turn() -> None:
    body = anthropic_wire.request(
        {
            "model": "r",
            "messages": CONVERSATION,
            "user": "u-1",
            "parallel_tool_calls": False,
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        },
        "claude-x",
        stream=True,
        default_max_tokens=123,
    )
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert (body["max_tokens"], body["stream"]) == (123, True)
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["tools"] == [
        {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}
    ]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assistant, results = body["messages"][1], body["messages"][2]
    assert [b["type"] for b in assistant["content"]] == ["tool_use", "tool_use"]
    assert assistant["content"][0]["input"] == {"city": "Paris"}
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_abc", "content": '{"temp_c": 21}'},
            {"type": "tool_result", "tool_use_id": "call_def", "content": "sunny"},
            {"type": "text", "text": "Thanks."},
        ],
    }


@pytest.mark.parametrize(
    ("extra", "what"),
    [
        ({"temperature": 1.5}, "temperature above 1"),
        ({"n": 2}, "more than one choice"),
        ({"seed": 1}, "'seed'"),
        ({"response_format": {"type": "json_schema"}}, "JSON mode"),
        ({"tools": [{"type": "web_search"}]}, "tools of type 'web_search'"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input_audio"),
    ],
)
def test_anthropic_refuses_what_it_cannot_do(extra: dict[str, Any], what: str) -> None:
    body = {"model": "r", "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(Unsupported) as info:
        anthropic_wire.request(body, "claude-x", stream=False, default_max_tokens=10)
    assert what in info.value.message


def test_anthropic_images_travel_as_base64_or_url_sources() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    body = anthropic_wire.request(
        {"messages": [{"role": "user", "content": parts}]}, "m", stream=False, default_max_tokens=1
    )
    assert [b["source"] for b in body["messages"][0]["content"]] == [
        {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"},
        {"type": "url", "url": "https://example.com/cat.png"},
    ]


def anthropic_events(*events: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": kind, **data} for kind, data in events]


def test_anthropic_stream_events_become_openai_chunks() -> None:
    translator = anthropic_wire.StreamTranslator(created=1)
    usage = {"input_tokens": 4, "cache_read_input_tokens": 6, "output_tokens": 1}
    chunks = []
    for event in anthropic_events(
        ("message_start", {"message": {"id": "msg_1", "model": "claude-x", "usage": usage}}),
        ("ping", {}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_stop", {"index": 0}),
        (
            "content_block_start",
            {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f"}},
        ),
        (
            "content_block_delta",
            {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}},
        ),
        (
            "content_block_delta",
            {"index": 1, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}},
        ),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
    ):
        chunks.extend(translator.feed(event))
    assert not translator.done
    chunks.extend(translator.feed({"type": "message_stop"}))
    assert translator.done
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 9,
        "total_tokens": 19,
        "prompt_tokens_details": {"cached_tokens": 6},
    }
    with pytest.raises(ProviderError) as info:
        translator.feed({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    assert (info.value.outcome, info.value.retryable, info.value.message) == (
        "stream_error",
        True,
        "busy",
    )


def test_an_anthropic_answer_becomes_a_completion() -> None:
    message = {
        "type": "message",
        "id": "msg_9",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "output_tokens": 2, "cache_creation_input_tokens": 5},
    }
    body, usage = anthropic_wire.answer(message, created=7)
    assert usage == Usage(8, 2, 0)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    with pytest.raises(ProviderError):
        anthropic_wire.answer({"type": "error"}, created=7)


def test_gemini_request() -> None:
    body = gemini_wire.request(
        {
            "model": "r",
            "messages": CONVERSATION,
            "n": 2,
            "seed": 3,
            "top_p": 0.9,
            "max_completion_tokens": 99,
            "stop": "END",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"schema": {"type": "object"}},
            },
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "parameters": {"type": "object"}},
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][1]["parts"][0] == {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}}
    }
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
        {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
        {"text": "Thanks."},
    ]
    assert body["generationConfig"] == {
        "candidateCount": 2,
        "seed": 3,
        "topP": 0.9,
        "maxOutputTokens": 99,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


@pytest.mark.parametrize(
    ("messages", "what"),
    [
        ([{"role": "tool", "tool_call_id": "x", "content": "?"}], "without the assistant call"),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
            "image URLs",
        ),
        ([{"role": "function", "content": "?"}], "role 'function'"),
    ],
)
def test_gemini_refuses_what_it_cannot_do(messages: list[dict[str, Any]], what: str) -> None:
    with pytest.raises(Unsupported) as info:
        gemini_wire.request({"messages": messages})
    assert what in info.value.message


def test_gemini_stream_becomes_openai_chunks_and_a_cut_stream_is_refused() -> None:
    translator = gemini_wire.StreamTranslator("gemini-x", "req-1", created=1)
    first = {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "index": 0}]}
    last = {
        "candidates": [
            {
                "content": {"parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 2,
            "thoughtsTokenCount": 3,
            "cachedContentTokenCount": 4,
        },
    }
    chunks = translator.feed(first) + translator.feed(last) + translator.finish()
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hi"}
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"] == {
        "name": "f",
        "arguments": '{"a":1}',
    }
    assert chunks[2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[3]["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    assert chunks[3]["usage"]["completion_tokens"] == 5, "thinking tokens are output too"
    cut = gemini_wire.StreamTranslator("gemini-x", "req-2", created=1)
    cut.feed(first)
    with pytest.raises(ProviderError) as info:
        cut.finish()
    assert info.value.outcome == "stream_truncated"


def test_a_gemini_answer_blocked_for_safety_is_a_content_filter_finish() -> None:
    body, _ = gemini_wire.answer({"promptFeedback": {"blockReason": "SAFETY"}}, "g", "r", 1)
    assert body["choices"][0]["finish_reason"] == "content_filter"
    body, _ = gemini_wire.answer(
        {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "SAFETY"}]},
        "g",
        "r",
        1,
    )
    assert body["choices"][0]["finish_reason"] == "content_filter"


def test_mistral_body() -> None:
    body = openai_wire.mistral_chat(
        {
            "model": "r",
            "messages": CONVERSATION,
            "seed": 5,
            "max_completion_tokens": 9,
            "stream_options": {"include_usage": True},
            "user": "u",
            "tool_choice": "required",
        },
        "mistral-x",
        stream=True,
    )
    assert (body["random_seed"], body["max_tokens"], body["tool_choice"]) == (5, 9, "any")
    assert not {"stream_options", "user", "seed"} & set(body)
    ids = [c["id"] for c in body["messages"][2]["tool_calls"]]
    answers = [m["tool_call_id"] for m in body["messages"][3:5]]
    assert ids == answers
    assert all(len(i) == 9 for i in ids)
    assert all(i.isalnum() for i in ids)
    assert ids[0] != ids[1]
    assert openai_wire.mistral_tool_id("Ab3456789") == "Ab3456789", "Mistral's own ids stay"
    with pytest.raises(Unsupported):
        openai_wire.mistral_chat({"messages": [], "logit_bias": {"1": 2}}, "m", stream=False)


def test_mistral_usage_on_the_last_choice_chunk_is_split_off() -> None:
    chunk = {
        "id": "x",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1},
    }
    head, tail = openai_wire.mistral_chunks(chunk)
    assert "usage" not in head
    assert head["choices"][0]["finish_reason"] == "stop"
    assert tail == {"id": "x", "choices": [], "usage": {"prompt_tokens": 1}}


def test_openai_itself_refuses_top_k_but_a_compatible_server_gets_it() -> None:
    with pytest.raises(Unsupported):
        openai_wire.openai_chat({"top_k": 3}, "gpt", stream=False, strict="openai")
    assert openai_wire.openai_chat({"top_k": 3}, "local", stream=False)["top_k"] == 3
