"""Any JSON a client sends to the Responses and Messages endpoints is either a request, a 400
(parsing), or, for a target that must translate it, ``Untranslatable`` (a 400 naming what):
never another exception, which would be a 500."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.dialects import anthropic as anthropic_api
from data_plane.dialects import responses as responses_api
from data_plane.dialects.inbound import Inbound
from data_plane.errors import ApiError
from data_plane.types import Untranslatable

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
KEYS = st.sampled_from(
    [
        "type", "role", "content", "text", "input", "output", "call_id", "name", "arguments",
        "tools", "tool_choice", "instructions", "text", "format", "schema", "image_url",
        "source", "tool_use_id", "id", "system", "messages", "max_tokens", "thinking",
        "max_output_tokens", "reasoning", "metadata", "user", "previous_response_id",
    ]
)  # fmt: skip
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


TYPES = st.sampled_from(
    [
        "message", "function_call", "function_call_output", "reasoning", "input_text",
        "output_text", "input_image", "text", "image", "tool_use", "tool_result", "document",
        "thinking", "function", "json_schema", "json_object", "refusal",
    ]
)  # fmt: skip
BLOCK = st.fixed_dictionaries(
    {"type": TYPES},
    optional={
        k: JSON
        for k in (
            "text",
            "content",
            "input",
            "id",
            "name",
            "source",
            "image_url",
            "tool_use_id",
            "call_id",
            "arguments",
            "output",
            "role",
        )
    },
)
CONTENT = st.text(max_size=5) | st.lists(BLOCK, max_size=3) | JSON
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]), "content": CONTENT}
)
ITEM = BLOCK | st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool"]), "content": CONTENT}
)


def _translate(parsed: Inbound | ApiError) -> None:
    if isinstance(parsed, Inbound):
        with contextlib.suppress(Untranslatable):
            parsed.native.translate()


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(KEYS, JSON, max_size=6), items=st.lists(ITEM, max_size=4) | JSON)
def test_any_responses_body(body: dict[str, Any], items: Any) -> None:
    raw = orjson.dumps({**body, "model": "m", "input": items})
    _translate(responses_api.parse_responses_request(raw, "r", {}))


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(KEYS, JSON, max_size=6), messages=st.lists(MESSAGE, min_size=1))
def test_any_messages_body(body: dict[str, Any], messages: list[Any]) -> None:
    raw = orjson.dumps({**body, "model": "m", "max_tokens": 5, "messages": messages})
    _translate(anthropic_api.parse_messages_request(raw, "r", {}))
