"""The checks of a large full snapshot, in a process of its own (issue 13).

Indexing, hashing and the consistency check of a 100k-key policy are about a second and a
half of pure Python; on the serving loop, even in slices, they left requests queued behind
them, and in a thread they would compete with the loop for the GIL. A checker process
(``python -m data_plane.snapshots.checker``, one per check) does them on another core while
the loop compiles the same policy in slices, speculatively: the compiled policy is swapped in
only when the checker found the hash it expected and no problem. The checker forks once per
check: the fork decodes the policy and runs the consistency check while the checker indexes
and hashes it (the two halves take about as long), so a free core halves the wait.

The protocol, over the child's stdin and stdout, each message an 8-byte big-endian length
and its bytes: the parent sends the encoded ``Policy``; the child answers with the
``Verdict``'s first fields and the number of index chunks as a tuple in ``marshal``'s format
(plain values only, nothing to run), then each chunk (written and read a megabyte or so at a
time: no large copy on the loop). The parent acts on the verdict at once and reads the
chunks afterwards (``Checker.index``), after the ACK.

The child imports only ``shared`` (no gRPC, no aiohttp), runs at a lower priority than the
serving process (``NICE``), without the garbage collector (it lives for one check), and exits
at the end of its stdin, so it ends with its parent. Any failure of the process (it cannot
start, dies, answers garbage) makes ``check`` return None and the caller checks on the loop
instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import marshal
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError

from shared import consistency
from shared.pb import snapshot_pb2
from shared.policy_index import PolicyIndex

log = logging.getLogger(__name__)

# Full snapshots whose policy is at least this large are checked by the checker process
# (about 15k keys); smaller ones are checked on the loop, in a few tens of milliseconds.
OFFLOAD_BYTES = 4 << 20
_LENGTH = 8
_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the data_plane package
_ARGS = ("-m", "data_plane.snapshots.checker")
_CHUNK = 1 << 20
NICE = 10  # the checker's scheduling priority below its parent's (``os.nice``)


@dataclass(frozen=True)
class Verdict:
    """What the checker found: ``refused`` (the policy cannot be indexed or decoded: a
    repeated id, a malformed encoding), else the hash of its entities as received, its
    consistency problems and its index (``PolicyIndex.dumped``), for the next delta. The
    parent's ``Checker.check`` leaves ``index`` empty: ``Checker.index`` reads it after."""

    refused: str = ""
    digest: str = ""
    problems: list[str] = field(default_factory=list)
    index: list[bytes] = field(default_factory=list)


# The consistency check's result, (refused, problems), once it is done.
Pending = Callable[[], tuple[str, list[str]]]


def check(policy: bytes, start: Callable[[bytes], Pending] | None = None) -> Verdict:
    """The checks themselves (run in the child; pure). ``start`` begins the consistency check
    (``forked``: in a process of its own) while the policy is indexed and hashed here; by
    default it runs here first."""
    pending = (start or _checked_here)(policy)
    try:
        index = PolicyIndex.build(policy)
    except ValueError as exc:
        pending()
        return Verdict(refused=str(exc) or type(exc).__name__)
    digest, dumped = index.hash(), index.dumped()
    del index
    refused, problems = pending()
    if refused:
        return Verdict(refused=refused)
    return Verdict(digest=digest, problems=problems, index=[] if problems else dumped)


def _consistency(policy: bytes) -> tuple[str, list[str]]:
    """(why the policy cannot be decoded, or ""; its consistency problems)."""
    try:
        decoded = snapshot_pb2.Policy.FromString(policy)
    except DecodeError as exc:
        return str(exc) or type(exc).__name__, []
    return "", consistency.problems(decoded)


def _checked_here(policy: bytes) -> Pending:
    found = _consistency(policy)
    return lambda: found


def forked(policy: bytes) -> Pending:
    """The consistency check in a fork of this process (the checker has no thread to lose),
    its result read back in ``marshal``'s format; the fork exits when it has written it."""
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(readable)
            with os.fdopen(writable, "wb") as out:
                out.write(marshal.dumps(_consistency(policy)))
        except BaseException:
            traceback.print_exc()  # to the node's log, through the inherited stderr
        finally:
            os._exit(0)
    os.close(writable)

    def result() -> tuple[str, list[str]]:
        with os.fdopen(readable, "rb") as pipe:
            found = pipe.read()
        os.waitpid(pid, 0)
        refused, problems = marshal.loads(found)  # EOFError when the fork died: no verdict
        return refused, problems

    return result


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

    async def check(self, policy: bytes) -> Verdict | None:
        """The child's verdict on ``policy`` (its ``index`` empty: when the policy is sound,
        the child keeps it for ``index`` or ``drop``); None when the child failed (logged).
        A previous child's unread index is dropped."""
        async with self._lock:
            self._end(kill=True)
            kept = False
            try:
                self._child = child = await self._start()
                child.writer.write(len(policy).to_bytes(_LENGTH, "big"))
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
    size = int.from_bytes(await stream.readexactly(_LENGTH), "big")
    return await stream.readexactly(size)


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The child's loop: one verdict per policy read, until the end of ``stdin``."""
    while len(head := stdin.read(_LENGTH)) == _LENGTH:
        size = int.from_bytes(head, "big")
        policy = stdin.read(size)
        if len(policy) != size:
            return
        verdict = check(policy, forked)
        del policy
        fields = (verdict.refused, verdict.digest, verdict.problems, len(verdict.index))
        _send(stdout, marshal.dumps(fields))
        stdout.flush()  # the verdict first: the parent acts on it before reading the index
        for chunk in verdict.index:
            _send(stdout, chunk)
        stdout.flush()


def _send(stdout: BinaryIO, message: bytes) -> None:
    stdout.write(len(message).to_bytes(_LENGTH, "big"))
    stdout.write(message)


if __name__ == "__main__":
    # Below the serving process: on a busy machine the checks wait, the requests do not.
    with contextlib.suppress(OSError):
        os.nice(NICE)
    gc.disable()  # one check, then the process ends: nothing for a collector to reclaim
    serve(sys.stdin.buffer, sys.stdout.buffer)
