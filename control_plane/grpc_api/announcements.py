"""Snapshot versions announced by the publisher, heard at once (PostgreSQL LISTEN/NOTIFY).

The publisher notifies ``fleet.services.PUBLISHED_CHANNEL`` in the transaction that stores a
version, so the notice arrives when that version is committed and readable. ``Announcements``
holds one connection of its own in the event loop (psycopg's async connection, no thread)
listening on the channel, and sets ``heard`` at every notice and every time it starts to
listen (a version published while it was not listening is read then). When the connection
breaks it reconnects with backoff; ``listening`` says whether it is listening now. The
watcher's poll stays as the fallback: notices only make it early (grpc_api/watcher.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg

from control_plane.fleet.services import PUBLISHED_CHANNEL

log = logging.getLogger(__name__)

RETRY_S = (0.5, 30.0)  # the first wait before listening again, and the longest


class Announcements:
    def __init__(self, params: dict[str, Any]) -> None:
        """``params``: psycopg's connection parameters (Django's, without its cursor class)."""
        self._params = params
        self.heard = asyncio.Event()
        self.listening = False

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after each failure."""
        wait = RETRY_S[0]
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                log.warning("not listening for snapshot versions: %s", exc)
            if self.listening:  # it was listening: wait from the start again
                wait = RETRY_S[0]
            self.listening = False
            self.heard.set()  # the caller polls at its own pace meanwhile: from now
            await asyncio.sleep(wait)
            wait = min(wait * 2, RETRY_S[1])

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(**self._params, autocommit=True) as db:
            await db.execute(f"LISTEN {PUBLISHED_CHANNEL}")
            self.listening = True
            self.heard.set()
            log.info("listening for snapshot versions on %s", PUBLISHED_CHANNEL)
            async for _ in db.notifies():
                self.heard.set()
