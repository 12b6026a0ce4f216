"""The fake providers refuse what their real counterparts would (so a contract test's "no
problems" means something): a wrong header or field is refused and noted."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import FakeServer
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI

KEY, MODEL = "sk-fake", "fake-model"
USER = {"role": "user", "content": "hi"}
AZURE = {"api-key": KEY}
AZURE_PATH = f"/openai/deployments/{MODEL}/chat/completions?api-version=2024-10-21"
BEARER = {"Authorization": f"Bearer {KEY}"}
ANTHROPIC = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
GEMINI = {"x-goog-api-key": KEY}
GEMINI_PATH = f"/v1beta/models/{MODEL}:generateContent"
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
CLAUDE_BODY = {"model": MODEL, "max_tokens": 5, "messages": [USER]}
MISTRAL_BODY = {"model": MODEL, "messages": [USER]}

CASES: list[tuple[str, str, dict[str, str], dict[str, Any], str | None]] = [
    # (fake, path, headers, body, problem or None for a good request)
    ("azure", AZURE_PATH, AZURE, {"messages": [USER]}, None),
    ("azure", AZURE_PATH, BEARER, {"messages": [USER]}, "wrong api-key header"),
    (
        "azure",
        AZURE_PATH.replace("2024-10-21", "2023-05-15"),
        AZURE,
        {"messages": [USER]},
        "wrong api-version",
    ),
    ("azure", AZURE_PATH, AZURE, {"model": MODEL, "messages": [USER]}, "not 'model'"),
    ("mistral", "/v1/chat/completions", BEARER, MISTRAL_BODY, None),
    (
        "mistral",
        "/v1/chat/completions",
        BEARER,
        {**MISTRAL_BODY, "stream_options": {}},
        "unknown body field",
    ),
    (
        "mistral",
        "/v1/chat/completions",
        BEARER,
        {**MISTRAL_BODY, "messages": [{"role": "developer", "content": "x"}]},
        "bad message",
    ),
    ("openai", "/v1/chat/completions", BEARER, {**MISTRAL_BODY, "top_k": 3}, "unknown body field"),
    (
        "openai",
        "/v1/chat/completions",
        BEARER,
        {**MISTRAL_BODY, "messages": [{"role": "tool", "tool_call_id": "x", "content": "?"}]},
        "answers no earlier tool call",
    ),
    ("anthropic", "/v1/messages", ANTHROPIC, CLAUDE_BODY, None),
    ("anthropic", "/v1/messages", BEARER, CLAUDE_BODY, "wrong x-api-key"),
    (
        "anthropic",
        "/v1/messages",
        {**ANTHROPIC, "anthropic-version": "2099-01-01"},
        CLAUDE_BODY,
        "wrong anthropic-version",
    ),
    (
        "anthropic",
        "/v1/messages",
        ANTHROPIC,
        {**CLAUDE_BODY, "max_tokens": None},
        "max_tokens is required",
    ),
    ("anthropic", "/v1/messages", ANTHROPIC, {**CLAUDE_BODY, "n": 2}, "unknown body field"),
    (
        "anthropic",
        "/v1/messages",
        ANTHROPIC,
        {**CLAUDE_BODY, "messages": [USER, USER]},
        "two user turns",
    ),
    (
        "anthropic",
        "/v1/messages",
        ANTHROPIC,
        {**CLAUDE_BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
        "empty or bad text block",
    ),
    ("gemini", GEMINI_PATH, GEMINI, GEMINI_BODY, None),
    ("gemini", GEMINI_PATH, BEARER, GEMINI_BODY, "wrong x-goog-api-key"),
    (
        "gemini",
        GEMINI_PATH,
        GEMINI,
        {**GEMINI_BODY, "generationConfig": {"max_tokens": 3}},
        "unknown generationConfig",
    ),
    (
        "gemini",
        GEMINI_PATH,
        GEMINI,
        {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
        "bad content",
    ),
    (
        "gemini",
        GEMINI_PATH.replace("generateContent", "streamGenerateContent"),
        GEMINI,
        GEMINI_BODY,
        "without alt=sse",
    ),
]


def fake(name: str) -> FakeServer:
    if name == "anthropic":
        return FakeAnthropic(api_key=KEY, model=MODEL)
    if name == "gemini":
        return FakeGemini(api_key=KEY, model=MODEL)
    return FakeOpenAI(api_key=KEY, model=MODEL, flavour=name)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "path", "headers", "body", "problem"), CASES)
async def test_the_fakes_check_every_request(
    name: str, path: str, headers: dict[str, str], body: dict[str, Any], problem: str | None
) -> None:
    async with fake(name) as server, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.port}{path}"
        async with session.post(url, json=body, headers=headers) as response:
            status = response.status
    if problem is None:
        assert (status, server.problems) == (200, [])
    else:
        assert status >= 400
        (noted,) = server.problems
        assert problem in noted
