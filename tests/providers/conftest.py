"""Fixtures shared by the routing tests: two fake OpenAI upstreams, a primary and a backup
(each test fails if its fake saw a request it would refuse). Every async test here also
fails on a blocking call inside the event loop (``tests.data_plane.blocking``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.data_plane.blocking import blocking_calls  # noqa: F401  # autouse: no blocking calls
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI

BACKUP_REPLY = "Served by the backup."


@pytest.fixture
async def primary() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="sk-upstream-primary", model="primary-model") as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    default = Behaviour(reply=BACKUP_REPLY)
    async with FakeOpenAI(
        api_key="sk-upstream-backup", model="backup-model", default=default
    ) as fake:
        yield fake
    assert fake.problems == []
