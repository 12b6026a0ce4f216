"""The checker process's side of the checks of a large full snapshot (``checker``: the
serving process's side, which starts it as ``python -m data_plane.snapshots.checks``).

It imports only ``shared`` and the standard library (no asyncio, gRPC or aiohttp: a checker
starts in a fifth of a second of CPU), runs below the serving process's priority (``NICE``),
without the garbage collector (it lives for one check), and exits at the end of its stdin, so
it ends with its parent. Each message on its stdin and stdout is an 8-byte big-endian length
and its bytes (``checker`` describes the exchange).
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from google.protobuf.message import DecodeError

from shared import consistency
from shared.pb import snapshot_pb2
from shared.policy_index import SLICE, PolicyIndex, cut_steps, run_steps

LENGTH = 8  # bytes of a message's length
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

# Entities between two offsets of a ``layout``: the serving loop decodes that many at a time
# (a millisecond or so).
DECODE_EVERY = SLICE
# Key hashes per message of a layout (loading 100k at once held the parent's loop ~40 ms).
HASHES_PER_CHUNK = 5000


def layout(policy: bytes) -> tuple[list[int], list[str]]:
    """What spares the serving loop its two per-entity Python loops over a large policy,
    sent before the verdict: offsets at which it may cut the encoding to decode it a slice at
    a time (``cut_steps``), and every key's hash in order, in the form it is looked up by
    (``policy.keys.KeyTable.steps``). Empty lists when the policy cannot be decoded: the
    verdict refuses it."""
    try:
        keys = snapshot_pb2.Policy.FromString(policy).keys
        cuts = run_steps(cut_steps(policy, DECODE_EVERY))
    except (DecodeError, IndexError, ValueError):
        return [], []
    return cuts, [consistency.key_slot(key.key_hash) for key in keys]


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


def _begun(pending: Pending) -> Callable[[bytes], Pending]:
    """A ``start`` for ``check`` whose consistency check began already."""
    return lambda _: pending


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The child's loop: one verdict per policy read, until the end of ``stdin``."""
    while len(head := stdin.read(LENGTH)) == LENGTH:
        size = int.from_bytes(head, "big")
        policy = stdin.read(size)
        if len(policy) != size:
            return
        pending = forked(policy)  # the consistency check starts on the other core
        cuts, key_hashes = layout(policy)
        chunks = range(0, len(key_hashes), HASHES_PER_CHUNK)
        _send(stdout, marshal.dumps((cuts, len(chunks))))
        for start in chunks:  # each loaded on its own, in a slice of the parent's loop
            _send(stdout, marshal.dumps(key_hashes[start : start + HASHES_PER_CHUNK]))
        stdout.flush()  # the layout first: the parent decodes with it while the checks run
        verdict = check(policy, _begun(pending))
        del policy
        fields = (verdict.refused, verdict.digest, verdict.problems, len(verdict.index))
        _send(stdout, marshal.dumps(fields))
        stdout.flush()  # the verdict first: the parent acts on it before reading the index
        for chunk in verdict.index:
            _send(stdout, chunk)
        stdout.flush()


def _send(stdout: BinaryIO, message: bytes) -> None:
    stdout.write(len(message).to_bytes(LENGTH, "big"))
    stdout.write(message)


if __name__ == "__main__":
    # Below the serving process: on a busy machine the checks wait, the requests do not.
    with contextlib.suppress(OSError):
        os.nice(NICE)
    gc.disable()  # one check, then the process ends: nothing for a collector to reclaim
    serve(sys.stdin.buffer, sys.stdout.buffer)
