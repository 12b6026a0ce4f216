"""What the fuzz targets share: their budget (``ASC_FUZZ_EXAMPLES`` examples per target, a
few dozen by default so ``make test`` stays quick; ``make fuzz`` raises it), a tally of inputs
tried and 5xx answers found (printed at the end of the run), and a gateway served on its own
event loop so that synchronous hypothesis tests can drive it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, settings

from shared.pb import snapshot_pb2
from tests.providers.gateway import Gateway, running_gateway

EXAMPLES = int(os.environ.get("ASC_FUZZ_EXAMPLES", "40"))
# Per request: an answer that takes longer is a hang.
REQUEST_TIMEOUT_S = 10.0

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# 500: a crash, whoever sent the input; other 5xx: 502-504, the answer to a broken upstream.
TALLY = {"inputs": 0, "500": 0, "other 5xx": 0}


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class Served:
    """A gateway on its own loop; ``send`` is synchronous."""

    loop: asyncio.AbstractEventLoop
    gateway: Gateway
    session: aiohttp.ClientSession

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        return self.loop.run_until_complete(self._send(method, path, headers, body))

    async def _send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        TALLY["inputs"] += 1
        try:
            async with (
                asyncio.timeout(REQUEST_TIMEOUT_S),
                self.session.request(
                    method, self.gateway.url + path, data=body, headers=headers
                ) as response,
            ):
                answer = Answer(response.status, await response.read(), dict(response.headers))
        except TimeoutError:
            raise AssertionError(f"no answer within {REQUEST_TIMEOUT_S} s: a hang") from None
        if answer.status == 500:
            TALLY["500"] += 1
        elif answer.status > 500:
            TALLY["other 5xx"] += 1
        return answer

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)


@contextmanager
def serving(
    state_dir: Path,
    snapshot: snapshot_pb2.Snapshot,
    loop: asyncio.AbstractEventLoop | None = None,
    **overrides: Any,
) -> Iterator[Served]:
    """A gateway on ``loop`` (a new one, closed after, when None)."""
    own = loop is None
    loop = loop or asyncio.new_event_loop()
    context = running_gateway(state_dir, snapshot, **overrides)
    gateway = loop.run_until_complete(context.__aenter__())
    session = loop.run_until_complete(_session())
    try:
        yield Served(loop, gateway, session)
    finally:
        loop.run_until_complete(session.close())
        loop.run_until_complete(context.__aexit__(None, None, None))
        if own:
            loop.close()


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(auto_decompress=False)
