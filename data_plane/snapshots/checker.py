"""The checks of a large full snapshot, in a process of its own (issue 13): the serving
process's side (``checks``: the checker process's).

Indexing, hashing and the consistency check of a 100k-key policy are about a second and a
half of pure Python; on the serving loop, even in slices, they left requests queued behind
them, and in a thread they would compete with the loop for the GIL. A checker process
(``python -m data_plane.snapshots.checks``, one per check) does them on another core while
the loop compiles the same policy in slices, speculatively: the compiled policy is swapped in
only when the checker found the hash it expected and no problem. The checker forks once per
check: the fork decodes the policy and runs the consistency check while the checker indexes
and hashes it, so a free core shortens the wait by a third.

The protocol, over the child's stdin and stdout, each message an 8-byte big-endian length
and its bytes: the parent sends the encoded ``Policy``; the child answers first with its
``Layout`` (where the loop may cut the policy to decode it in slices, and the keys' hashes:
the loop's two Python loops over 100k entities, about 250 ms, done on the other core), then
with the ``Verdict``'s first fields and the number of index chunks, each a tuple in
``marshal``'s format (plain values only, nothing to run), then each chunk (written and read a
megabyte or so at a time: no large copy on the loop). The parent decodes with the layout
while the checks run, acts on the verdict at once and reads the chunks afterwards
(``Checker.index``), after the ACK.

Any failure of the process (it cannot start, dies, answers garbage) makes ``check`` return
None and the caller checks on the loop instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import marshal
import os
import subprocess
import sys
import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from data_plane.snapshots.checks import LENGTH, Verdict, check

__all__ = ["OFFLOAD_BYTES", "Checker", "Layout", "Verdict", "check"]

log = logging.getLogger(__name__)

# Full snapshots whose policy is at least this large are checked by the checker process
# (about 15k keys); smaller ones are checked on the loop, in a few tens of milliseconds.
OFFLOAD_BYTES = 4 << 20
_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the data_plane package
_ARGS = ("-m", "data_plane.snapshots.checks")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Layout:
    """What the checker sends before its verdict (``checks.layout``): offsets at which the
    policy may be cut into slices that decode on their own, and every key's hash in order,
    as looked up, in chunks still in ``marshal``'s format (``key_hash_steps`` loads them)."""

    cuts: list[int]
    key_hash_chunks: list[bytes]

    @classmethod
    def of(cls, head: object, chunks: list[bytes], size: int) -> Layout | None:
        """The layout sent, or None when its cuts do not fit a policy of ``size`` bytes (the
        loop then cuts the policy itself; the verdict refuses what cannot be decoded)."""
        cuts = head[0] if isinstance(head, tuple) and len(head) == 2 else None
        if not (isinstance(cuts, list) and all(type(cut) is int for cut in cuts)):
            return None
        if not (len(cuts) >= 2 and cuts[0] == 0 and cuts[-1] == size):
            return None
        if not all(a < b for a, b in itertools.pairwise(cuts)):
            return None
        return cls(cuts, chunks)

    def key_hash_steps(self) -> Generator[None, None, list[str] | None]:
        """The keys' hashes, a chunk per step; None when a chunk is not a list of them (the
        key table is then made from the keys themselves)."""
        hashes: list[str] = []
        for chunk in self.key_hash_chunks:
            try:
                loaded = marshal.loads(chunk)
            except (EOFError, TypeError, ValueError):
                return None
            if not (isinstance(loaded, list) and all(type(h) is str for h in loaded)):
                return None
            hashes += loaded
            yield
        return hashes


@dataclass
class _Child:
    popen: subprocess.Popen[bytes]
    reader: asyncio.StreamReader
    reading: asyncio.ReadTransport
    writer: asyncio.StreamWriter

    def end(self, *, kill: bool) -> None:
        """Close its input (it exits at the end of it), or kill it; reaped in a thread."""
        self.writer.close()
        self.reading.close()
        if kill and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
        threading.Thread(target=_reap, args=(self.popen,), daemon=True).start()


class Checker:
    """The parent's end: one check at a time, each in a child process of its own that ends
    after it (a check of 100k keys leaves ~100 MiB in the child's heap). The child is started
    by ``subprocess.Popen`` in a thread (vfork: the loop's own process spawn forks the whole
    parent, tens of milliseconds at a few hundred MiB) and its pipes joined to the loop.

    ``prepare`` starts the child ahead, when a large snapshot is known to be on its way (its
    first part has come): its own start, a quarter of a second of CPU at the checker's low
    priority (more on a busy machine), then overlaps the transfer instead of following it."""

    def __init__(self) -> None:
        self._child: _Child | None = None  # the one checking now, or holding an unread index
        self._chunks = 0  # the index chunks that child has yet to send
        self._lock = asyncio.Lock()
        self._starting: asyncio.Task[_Child] | None = None  # ``prepare``d for the next check
        self.checks = 0  # verdicts received

    async def check(
        self,
        policy: bytes | memoryview,
        layout: asyncio.Future[Layout | None] | None = None,
    ) -> Verdict | None:
        """The child's verdict on ``policy`` (its ``index`` empty: when the policy is sound,
        the child keeps it for ``index`` or ``drop``); None when the child failed (logged).
        ``layout`` is given the policy's ``Layout`` as soon as the child sends it, before the
        verdict (None when the child failed first or sent a layout that does not fit).
        A previous child's unread index is dropped."""
        async with self._lock:
            self._end(kill=True)
            kept = False
            try:
                self._child = child = await self._taken()
                child.writer.write(len(policy).to_bytes(LENGTH, "big"))
                view = memoryview(policy)
                for start in range(0, len(policy), _CHUNK):
                    child.writer.write(view[start : start + _CHUNK])
                    await child.writer.drain()
                head = marshal.loads(await _message(child.reader))
                count = head[1] if isinstance(head, tuple) and len(head) == 2 else 0
                hash_chunks = [await _message(child.reader) for _ in range(count)]
                if layout is not None and not layout.done():
                    layout.set_result(Layout.of(head, hash_chunks, len(policy)))
                refused, digest, problems, chunks = marshal.loads(await _message(child.reader))
                self._chunks, kept = chunks, chunks > 0
                self.checks += 1
                return Verdict(refused, digest, problems)
            except (OSError, EOFError, asyncio.IncompleteReadError, TypeError, ValueError) as exc:
                log.warning("the snapshot checker process failed (%r); checking on the loop", exc)
                return None
            finally:  # also when cancelled mid-exchange
                if layout is not None and not layout.done():
                    layout.set_result(None)
                if not kept:
                    self._end(kill=True)

    async def index(self) -> list[bytes] | None:
        """The index of the last sound policy checked, read from its child, which then ends;
        None when there is none to read or the child failed (logged)."""
        async with self._lock:
            child, failed = self._child, True
            if child is None or self._chunks == 0:
                return None
            try:
                index = [await _message(child.reader) for _ in range(self._chunks)]
                failed = False
                return index
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                log.warning("the snapshot checker process failed sending its index (%r)", exc)
                return None
            finally:  # also when cancelled mid-read
                self._end(kill=failed)

    def drop(self) -> None:
        """End the child holding an index that is not wanted (the policy was not taken)."""
        self._end(kill=True)

    def prepare(self) -> None:
        """Start the next check's child now (a large snapshot is on its way)."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())

    async def _taken(self) -> _Child:
        """The child ``prepare`` started, when it is there and alive; else one started now."""
        starting, self._starting = self._starting, None
        if starting is not None:
            try:
                child = await starting
            except OSError as exc:
                log.warning("the snapshot checker started ahead failed (%r)", exc)
            else:
                if child.popen.poll() is None:
                    return child
                child.end(kill=True)
        return await self._start()

    async def _start(self) -> _Child:
        # Nothing of the parent's environment but the paths: the child needs no secret.
        env = {name: os.environ[name] for name in ("PATH", "VIRTUAL_ENV") if name in os.environ}
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])
        )
        popen = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, *_ARGS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert popen.stdin is not None
        assert popen.stdout is not None
        for pipe in (popen.stdin, popen.stdout):
            # A megabyte per wake-up of the loop, not 64 KiB: the policy goes over in 26
            # turns of a busy loop instead of 400 (Linux; elsewhere the default stays).
            with contextlib.suppress(AttributeError, OSError):
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _CHUNK)
        loop = asyncio.get_running_loop()
        reading: asyncio.ReadTransport | None = None
        try:
            reader = asyncio.StreamReader(limit=_CHUNK)
            reading, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), popen.stdout
            )
            transport, protocol = await loop.connect_write_pipe(
                lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), popen.stdin
            )
        except BaseException:
            if reading is not None:
                reading.close()
            popen.kill()
            threading.Thread(target=_reap, args=(popen,), daemon=True).start()
            raise
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        return _Child(popen, reader, reading, writer)

    def close_nowait(self) -> None:
        """Kill the child checking now and the one ``prepare`` started, if any (the node is
        stopping)."""
        self._end(kill=True)
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.add_done_callback(_end_started)
            starting.cancel()

    def _end(self, *, kill: bool) -> None:
        child, self._child, self._chunks = self._child, None, 0
        if child is not None:
            child.end(kill=kill)


def _end_started(starting: asyncio.Future[_Child]) -> None:
    if not starting.cancelled() and starting.exception() is None:
        starting.result().end(kill=True)


def _reap(popen: subprocess.Popen[bytes]) -> None:
    try:
        popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


async def _message(stream: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await stream.readexactly(LENGTH), "big")
    return await stream.readexactly(size)
