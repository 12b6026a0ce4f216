"""Fail a test on a blocking call inside the event loop, as aiohttp's own suite does.

``guard`` turns blockbuster on: a blocking call (file or socket I/O, ``time.sleep``, waiting
on a held lock) made while an event loop runs raises ``BlockingError`` where it is made. In
the data plane a broad ``except`` may catch that (the request middleware turns it into a 500,
a background task logs it and retries), so the guard also collects every ``BlockingError``
that reaches a log record, and the fixture fails the test when it collected any.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from blockbuster import BlockingError, blockbuster_ctx

# What a test helper may do to files with the data plane's own functions while the loop runs
# (only calls made through data-plane code are checked; a test's own file access is not).
WRITES = ("os.mkdir", "os.stat", "os.path.abspath", "os.replace", "io.BufferedWriter.write")
READS = ("os.scandir", "os.stat", "io.BufferedReader.read")

# Blocking calls allowed: (file, functions in whose frames, wrapped functions). Test helpers
# only; the data plane itself has no exemption.
ALLOWED: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    # Setup: the snapshot copy a gateway starts from, written before its app exists.
    ("tests/providers/gateway.py", ("running_gateway",), WRITES),
    ("tests/data_plane/test_proxy_openai.py", ("running_gateway",), WRITES),
    # Assertions: the snapshot copy the config client left on disk.
    ("tests/data_plane/test_config_client.py", ("disk_version",), READS),
    # Assertions: the batches the usage reporter spooled.
    ("tests/data_plane/test_usage_reporter.py", ("spooled",), READS),
)


class _Collector(logging.Handler):
    """Keeps every ``BlockingError`` a log record carries: as its exception (or what caused
    that) or as an argument of its message ("not delivered (%s)")."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        exc_info = record.exc_info[1] if record.exc_info else None
        for exc in (exc_info, *args):
            seen: set[int] = set()
            while isinstance(exc, BaseException) and id(exc) not in seen:
                if isinstance(exc, BlockingError):
                    self.errors.append(exc)
                    break
                seen.add(id(exc))
                exc = exc.__cause__ or exc.__context__


@contextmanager
def guard() -> Iterator[list[BaseException]]:
    """Blockbuster on for the block; yields the list the swallowed-but-logged
    ``BlockingError``s are collected in."""
    collector = _Collector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        with blockbuster_ctx("data_plane") as busters:
            for filename, functions, wrapped in ALLOWED:
                for name in wrapped:
                    busters.functions[name].can_block_in(filename, functions)
            yield collector.errors
    finally:
        root.removeHandler(collector)


@pytest.fixture(autouse=True)
def blocking_calls(request: pytest.FixtureRequest) -> Iterator[list[BaseException]]:
    """Around every async test (its async fixtures included): blocking calls in the loop
    fail it. Yields the blocking calls that were caught and logged (a test that provokes one
    on purpose empties the list)."""
    if not inspect.iscoroutinefunction(request.function):
        yield []
        return
    with guard() as reported:
        yield reported
    assert reported == [], f"blocking calls inside the event loop: {reported}"
