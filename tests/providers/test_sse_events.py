"""Server-sent events read as they arrive: however the bytes are cut into reads, the events
are the ones a line-by-line reading (aiohttp's readline) finds."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from unittest import mock

import pytest
from aiohttp import streams

from data_plane.upstream.providers import native
from data_plane.upstream.providers.http import MAX_LINE, SseLines, sse_events

ATOMS = [b"data: ", b"event: ", b"x", b"{}", b"\n", b"\r\n", b"\r", b": c\n", b"id: 1\n",
         b"data:[DONE]", b"  ", b"\n\n"]  # fmt: skip


async def _by_lines(content: streams.StreamReader) -> AsyncIterator[tuple[bytes, bytes]]:
    """The reading line by line (aiohttp's readline) that ``sse_events`` replaced."""
    events = SseLines()
    async for raw in content:
        done = events.line(raw.rstrip(b"\r\n"))
        if done is not None:
            yield done
    done = events.end()
    if done is not None:
        yield done


def _reader(payload: bytes, cuts: list[int]) -> streams.StreamReader:
    reader = streams.StreamReader(
        mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop()
    )
    start = 0
    for cut in [*sorted(cuts), len(payload)]:
        if cut > start:
            reader.feed_data(payload[start:cut])
            start = cut
    reader.feed_eof()
    return reader


async def _all(events: AsyncIterator[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [item async for item in events]


async def test_events_do_not_depend_on_how_the_bytes_arrive() -> None:
    rnd = random.Random(13)
    for _ in range(2000):
        payload = b"".join(rnd.choice(ATOMS) for _ in range(rnd.randint(0, 40)))
        cuts = [rnd.randint(0, len(payload)) for _ in range(rnd.randint(0, 6))]
        expected = await _all(_by_lines(_reader(payload, cuts)))
        assert await _all(sse_events(_reader(payload, cuts))) == expected, (payload, cuts)


async def test_a_typical_stream() -> None:
    payload = b'event: a\ndata: {"x":1}\n\ndata: 1\ndata: 2\r\n\r\n: ping\n\ndata: [DONE]'
    got = await _all(sse_events(_reader(payload, [3, 20, 21])))
    assert got == [(b"a", b'{"x":1}'), (b"", b"1\n2"), (b"", b"[DONE]")]


async def test_a_line_that_never_ends_is_refused() -> None:
    payload = b"data: " + b"x" * (MAX_LINE + 10)
    with pytest.raises(ValueError, match="too big"):
        await _all(sse_events(_reader(payload, list(range(0, len(payload), 4096)))))


async def test_events_read_together_say_the_next_is_at_hand() -> None:
    chunk = b'data: {"choices":[],"model":"m"}\n\n'
    reader = streams.StreamReader(
        mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop()
    )
    reader.feed_data(chunk * 3 + chunk[:5])  # three whole events, the fourth's start
    events = native.events(reader, "client-model")
    got = [await anext(events) for _ in range(3)]
    reader.feed_data(chunk[5:] + b"data: [DONE]\n\n")
    reader.feed_eof()
    got += [e async for e in events]
    assert [e.more for e in got] == [True, True, False, True, False]
    assert [e.body["model"] if e.body else None for e in got] == ["client-model"] * 4 + [None]


async def test_the_event_that_ends_a_stream_has_none_after_it() -> None:
    payload = b'event: message_stop\ndata: {"type":"message_stop"}\n\ndata: {"x":1}\n\n'
    got = [e async for e in native.events(_reader(payload, []), "m")]
    assert [(e.name, e.more) for e in got] == [(b"message_stop", False)]
