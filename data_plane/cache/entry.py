"""What a cache entry holds, and its bytes (pure): the answer exactly as the client received
it (a JSON body, or a whole event stream) and what it cost when it was paid for, so a hit
records the tokens it carries and the cost it saved."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from data_plane.types import Usage

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True, slots=True)
class Entry:
    body: bytes
    stream: bool
    usage: Usage
    cost_nano_usd: int

    @property
    def content_type(self) -> str:
        return EVENT_STREAM if self.stream else JSON


def encode(entry: Entry) -> bytes:
    """One line of JSON metadata (orjson never writes a raw newline), then the body."""
    usage = entry.usage
    head = orjson.dumps(
        [
            int(entry.stream),
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_prompt_tokens,
            entry.cost_nano_usd,
        ]
    )
    return head + b"\n" + entry.body


def decode(data: bytes) -> Entry | None:
    """The entry, or None for bytes that are not one (a foreign or damaged value: a miss)."""
    head, sep, body = data.partition(b"\n")
    if not sep:
        return None
    try:
        values = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None
    if not (
        isinstance(values, list)
        and len(values) == 5
        and all(type(v) is int and v >= 0 for v in values)
        and values[0] in (0, 1)
    ):
        return None
    stream, prompt, completion, cached, cost = values
    return Entry(bytes(body), bool(stream), Usage(prompt, completion, cached), cost)
