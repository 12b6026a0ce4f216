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
and its bytes: the parent sends the encoded ``Policy``; the child answers with the
``Verdict``'s first fields and the number of index chunks as a tuple in ``marshal``'s format
(plain values only, nothing to run), then each chunk (written and read a megabyte or so at a
time: no large copy on the loop). The parent acts on the verdict at once and reads the
chunks afterwards (``Checker.index``), after the ACK.

Any failure of the process (it cannot start, dies, answers garbage) makes ``check`` return
None and the caller checks on the loop instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import marshal
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from data_plane.snapshots.checks import LENGTH, Verdict, check

__all__ = ["OFFLOAD_BYTES", "Checker", "Verdict", "check"]

log = logging.getLogger(__name__)

# Full snapshots whose policy is at least this large are checked by the checker process
# (about 15k keys); smaller ones are checked on the loop, in a few tens of milliseconds.
OFFLOAD_BYTES = 4 << 20
_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the data_plane package
_ARGS = ("-m", "data_plane.snapshots.checks")
_CHUNK = 1 << 20


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
    after it (a check of 100k keys leaves ~100 MiB in the child's heap; a fresh child costs a
    quarter of a second of its own start, beside the loop's compile). The child is started by
    ``subprocess.Popen`` in a thread (vfork: the loop's own process spawn forks the whole
    parent, tens of milliseconds at a few hundred MiB) and its pipes joined to the loop."""

    def __init__(self) -> None:
        self._child: _Child | None = None  # the one checking now, or holding an unread index
        self._chunks = 0  # the index chunks that child has yet to send
        self._lock = asyncio.Lock()
        self.checks = 0  # verdicts received

    async def check(self, policy: bytes | memoryview) -> Verdict | None:
        """The child's verdict on ``policy`` (its ``index`` empty: when the policy is sound,
        the child keeps it for ``index`` or ``drop``); None when the child failed (logged).
        A previous child's unread index is dropped."""
        async with self._lock:
            self._end(kill=True)
            kept = False
            try:
                self._child = child = await self._start()
                child.writer.write(len(policy).to_bytes(LENGTH, "big"))
                view = memoryview(policy)
                for start in range(0, len(policy), _CHUNK):
                    child.writer.write(view[start : start + _CHUNK])
                    await child.writer.drain()
                refused, digest, problems, chunks = marshal.loads(await _message(child.reader))
                self._chunks, kept = chunks, chunks > 0
                self.checks += 1
                return Verdict(refused, digest, problems)
            except (OSError, EOFError, asyncio.IncompleteReadError, TypeError, ValueError) as exc:
                log.warning("the snapshot checker process failed (%r); checking on the loop", exc)
                return None
            finally:  # also when cancelled mid-exchange
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
        """Kill the child checking now, if any (the node is stopping)."""
        self._end(kill=True)

    def _end(self, *, kill: bool) -> None:
        child, self._child, self._chunks = self._child, None, 0
        if child is not None:
            child.end(kill=kill)


def _reap(popen: subprocess.Popen[bytes]) -> None:
    try:
        popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


async def _message(stream: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await stream.readexactly(LENGTH), "big")
    return await stream.readexactly(size)
