"""The policy in force, and its last-known-good copy on disk.

``current`` is swapped by one attribute assignment, so a request sees either the old policy or
the new one, never a mix; a request that already read ``current`` finishes on what it read.
The disk copy is ``ASCSNAP1\\n<sha256 hex of payload>\\n<serialized Snapshot>``, written
atomically. Loading refuses (with a log line) a copy whose checksum, hash or references are
wrong, so a node restarts on a good policy or on none (not ready), never on a half one.
The blocking methods (``persist``, ``load_from_disk``) are meant for an executor thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf.message import DecodeError

from data_plane.policy.compiled import CompiledPolicy, PolicyError, compile_snapshot, compile_steps
from shared.crypto import Keyring
from shared.pb import snapshot_pb2
from shared.snapshots import verify

log = logging.getLogger(__name__)

MAGIC = b"ASCSNAP1\n"


# A large apply runs on the serving loop in slices of about ``SLICE_S`` of work (its steps are
# a millisecond or less), and between two slices ``pause`` lets the requests run.
SLICE_S = 0.0015
# A turn of the loop shorter than this ran nothing but the pause itself: nothing is waiting.
IDLE_S = 0.0005
# The most a pause waits for a busy loop: the apply gets at least a slice per this much.
BUSY_WAIT_S = 0.02


# How far below the serving thread the disk copies' thread runs (``os.nice`` of the thread).
BACKGROUND_NICE = 10


class CorruptSnapshotFile(ValueError):
    pass


def _lower_priority() -> None:
    # On Linux a nice value is a thread's own: this one only (elsewhere, the process's:
    # left as it is).
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


async def pause() -> None:
    """Let the loop serve between two slices of a large apply: yield, and yield again while
    the turn in between did some work (it took longer than ``IDLE_S``: requests are under way,
    they come first), for up to ``BUSY_WAIT_S``. On a quiet loop the apply runs on at once; on
    a busy one it takes the idle turns, and at least a slice per ``BUSY_WAIT_S``. A request
    needs several turns (read, upstream, answer); each of them waits for one slice at most."""
    started = time.perf_counter()
    while True:
        before = time.perf_counter()
        await asyncio.sleep(0)
        now = time.perf_counter()
        if now - before <= IDLE_S or now - started >= BUSY_WAIT_S:
            return


async def run_sliced[T](steps: Generator[None, None, T]) -> T:
    """Run a generator to its end, its steps in slices of ``SLICE_S``, with a ``pause``
    between two slices."""
    clock = time.perf_counter
    while True:
        started = clock()
        try:
            while clock() - started < SLICE_S:
                next(steps)
        except StopIteration as done:
            result: T = done.value
            return result
        await pause()


def encode_file(snapshot: snapshot_pb2.Snapshot) -> bytes:
    payload = snapshot.SerializeToString(deterministic=True)
    return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, refusing anything but a regular file: a FIFO put there would
    block a plain read forever (O_NONBLOCK makes its open return at once, and has no effect
    on a regular file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return f.read()


def decode_file(data: bytes) -> snapshot_pb2.Snapshot:
    if not data.startswith(MAGIC):
        raise CorruptSnapshotFile("not a snapshot file")
    checksum, sep, payload = data[len(MAGIC) :].partition(b"\n")
    if not sep or hashlib.sha256(payload).hexdigest().encode() != checksum:
        raise CorruptSnapshotFile("checksum mismatch")
    snapshot = snapshot_pb2.Snapshot()
    try:
        snapshot.ParseFromString(payload)
    except DecodeError as exc:
        raise CorruptSnapshotFile(f"cannot decode: {exc}") from exc
    return snapshot


def verify_and_load_zones(snapshot: snapshot_pb2.Snapshot) -> list[ZoneInfo]:
    """``verify``, then ``load_zones``."""
    verify(snapshot)
    return load_zones(snapshot)


def load_zones(snapshot: snapshot_pb2.Snapshot) -> list[ZoneInfo]:
    """Load the time zones the snapshot's limits name (a file read each the first time):
    while the caller holds them, ``zoneinfo`` hands the compile the loaded ones without
    reading again. A name it does not know is left for the compile to refuse."""
    zones = []
    for name in {limit.time_zone or "UTC" for limit in snapshot.policy.limits}:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            zones.append(ZoneInfo(name))
    return zones


class SnapshotStore:
    def __init__(self, path: Path, keyring: Keyring | None) -> None:
        self.path = path
        self.keyring = keyring
        self.current: CompiledPolicy | None = None
        self._on_swap: list[Callable[[CompiledPolicy], None]] = []
        self._background: ThreadPoolExecutor | None = None

    async def in_background[T](self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the store's one thread for disk copies, which runs below the
        serving thread's priority (``BACKGROUND_NICE``): hashing, writing and syncing 26 MiB
        take a core's worth of CPU for a while, and on a busy machine they wait, the
        requests do not."""
        if self._background is None:
            self._background = ThreadPoolExecutor(
                1, thread_name_prefix="snapshot-disk", initializer=_lower_priority
            )
        return await asyncio.get_running_loop().run_in_executor(self._background, fn, *args)

    def on_swap(self, callback: Callable[[CompiledPolicy], None]) -> None:
        """Have ``callback`` told of every policy swapped in from now on, once it is current:
        state kept beside the policy (the lease book) drops what the new one no longer has."""
        self._on_swap.append(callback)

    def swap(self, policy: CompiledPolicy) -> None:
        self.current = policy
        for callback in self._on_swap:
            callback(policy)

    def compile(self, snapshot: snapshot_pb2.Snapshot) -> CompiledPolicy:
        """Verify the hash and compile; raises ValueError (PolicyError included)."""
        verify(snapshot)
        return compile_snapshot(snapshot, self.keyring)

    async def compile_serving(
        self,
        snapshot: snapshot_pb2.Snapshot,
        *,
        verified: bool = False,
        checked: bool = False,
        key_hashes: Sequence[str] | None = None,
    ) -> CompiledPolicy:
        """``compile`` on a serving event loop: the hash check and the time zones' file
        reads in a thread (hashing releases the GIL), the compile in slices with the loop
        free in between (``pause``), and the garbage collector held off meanwhile and told
        afterwards that the new policy is permanent (``gc.freeze``), so neither a compile nor
        a later full collection of a large policy stalls requests. ``verified``: the caller checked
        the hash already (``PolicyApplier`` hashes as it indexes); ``checked``: the caller
        runs the consistency check elsewhere, ``key_hashes`` the keys' hashes read there
        (``compile_steps``)."""
        zones = await asyncio.to_thread(load_zones if verified else verify_and_load_zones, snapshot)
        gc.disable()
        try:
            policy = await run_sliced(
                compile_steps(snapshot, self.keyring, checked=checked, key_hashes=key_hashes)
            )
            # Frozen before the collector is on again: else its first young collection
            # scanned every object the compile made, in one go.
            gc.freeze()
        finally:
            gc.enable()
        del zones  # held through the compile; the compiled limits hold theirs from now on
        return policy

    def persist(self, snapshot: snapshot_pb2.Snapshot) -> None:
        self.persist_encoded(snapshot.version, snapshot.SerializeToString(deterministic=True))

    def persist_encoded(self, version: int, payload: bytes | Sequence[bytes | memoryview]) -> None:
        """Write an encoded ``Snapshot`` (of ``version``), or its few parts in order, as the
        disk copy (hashing and writing release the GIL)."""
        self.commit(self.stage_encoded(payload))

    def stage_encoded(self, payload: bytes | Sequence[bytes | memoryview]) -> Path:
        """``persist_encoded`` up to the rename (``write_atomic`` in two steps): the file
        written, checksummed and synced beside the disk copy, which it replaces only when
        ``commit``ted, so a snapshot can be written while it is still being checked."""
        parts = [payload] if isinstance(payload, bytes) else payload
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"".join([MAGIC, digest.hexdigest().encode(), b"\n"]))
                for part in parts:  # written as they are, not joined: no copy of the policy
                    f.write(part)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def commit(self, staged: Path) -> None:
        """Make a staged file the disk copy: renamed over it, then the directory synced so
        the rename survives a crash."""
        try:
            os.replace(staged, self.path)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def discard_staged(self) -> int:
        """Remove the files ``stage_encoded`` left beside the disk copy when the process
        died before committing or removing them (26 MiB each at 100k keys); how many. Only
        at start, before anything is staged: each data-plane worker has a directory of its
        own."""
        removed = 0
        for staged in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            staged.unlink(missing_ok=True)
            removed += 1
        return removed

    def load_from_disk(self) -> CompiledPolicy | None:
        """The compiled disk copy, or None (absent or refused: logged)."""
        try:
            data = read_regular_file(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("cannot read the snapshot copy %s: %s", self.path, exc)
            return None
        try:
            return self.compile(decode_file(data))
        except (CorruptSnapshotFile, PolicyError, ValueError) as exc:
            log.error("refusing the snapshot copy %s: %s", self.path, exc)
            return None
