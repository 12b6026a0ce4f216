"""The fake provider refuses what the real one would, so the proxy tests' checks that it was
called correctly can fail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_server import FakeOpenAI

KEY = "sk-upstream-fake"
MODEL = "fake-model"
GOOD = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY, model=MODEL) as server:
        yield server


async def post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "problem"),
    [
        ("/v1/chat/completions", GOOD, {"Authorization": f"Bearer {KEY}"}, 200, None),
        ("/v1/completions", GOOD, {"Authorization": f"Bearer {KEY}"}, 404, "unexpected path"),
        ("/v1/chat/completions", GOOD, {}, 401, "wrong Authorization header"),
        ("/v1/chat/completions", GOOD, {"Authorization": "Bearer x"}, 401, "wrong Authorization"),
        (
            "/v1/chat/completions",
            {**GOOD, "model": "route-name"},
            {"Authorization": f"Bearer {KEY}"},
            400,
            "wrong model 'route-name'",
        ),
        (
            "/v1/chat/completions",
            {"model": MODEL, "messages": []},
            {"Authorization": f"Bearer {KEY}"},
            400,
            "no messages",
        ),
    ],
)
async def test_the_fake_checks_every_request(
    fake: FakeOpenAI,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    problem: str | None,
) -> None:
    got, answer = await post(f"http://127.0.0.1:{fake.port}{path}", body, headers)
    assert got == status
    if problem is None:
        assert fake.problems == []
        assert answer["object"] == "chat.completion"
    else:
        (noted,) = fake.problems
        assert problem in noted
        assert answer["error"]["message"] == noted
