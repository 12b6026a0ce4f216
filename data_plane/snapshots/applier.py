"""Applying what the control plane pushes: a full snapshot or a delta (ADR 0006).

The applier keeps the index of the policy in force (``shared.policy_index``: every entity's
encoding, hashed per bucket). A full snapshot is indexed, hashed, checked, compiled and swapped
in: a small one in slices on the loop; a large one (``checker.OFFLOAD_BYTES``) indexed, hashed
and checked by the checker process while the loop decodes and compiles it in slices, its index
loaded from the checker's after the swap. A delta is applied only to the version and hash it
names: the index takes its changes, the new hash is computed from the few buckets they touch
and compared with the delta's, the changes are checked (``policy.incremental``) and compiled
into a new policy that shares everything else with the previous one; on any refusal the index
is put back and the previous policy stays in force. The disk copy is always a full snapshot,
written from the index (or, before the index is loaded, from the encoding as received).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
from collections.abc import Generator, Iterator
from pathlib import Path

from data_plane.policy.compiled import CompiledPolicy
from data_plane.policy.incremental import Changed, apply_changes, leaf_problems
from data_plane.snapshots.checker import OFFLOAD_BYTES, Checker, Layout
from data_plane.snapshots.store import MAGIC, SnapshotStore, read_regular_file, run_sliced
from shared import consistency
from shared.pb import snapshot_pb2
from shared.policy_index import (
    KINDS,
    SLICE,
    PolicyIndex,
    cut,
    cut_steps,
    frame_of,
    policy_of_snapshot,
    snapshot_head,
    snapshot_parts,
)
from shared.snapshots import legacy_hash

log = logging.getLogger(__name__)


class DeltaRefused(ValueError):
    """The delta does not apply to what the node holds (another base, no index of it)."""


sliced = run_sliced  # a generator run to its end, the loop serving between its slices


def _frame_slices(index: PolicyIndex) -> Iterator[bytes]:
    """The index's frames in kind order, joined ``SLICE`` at a time: each a ``Policy``
    encoding of its own."""
    for kind in KINDS:
        frames = index.frames(kind)
        for start in range(0, len(frames), SLICE):
            yield b"".join(frames[start : start + SLICE])


def _decode_steps(
    index: PolicyIndex, policy: snapshot_pb2.Policy
) -> Generator[None, None, snapshot_pb2.Policy]:
    """Decode the index's entities into ``policy``, a slice at a time."""
    for encoded in _frame_slices(index):
        policy.MergeFromString(encoded)
        yield
    return policy


def _decode_cut_steps(
    encoded: bytes | memoryview, policy: snapshot_pb2.Policy, cuts: list[int] | None = None
) -> Generator[None, None, snapshot_pb2.Policy]:
    """Decode an encoded policy into ``policy``, a slice of entities at a time: between two
    of ``cuts`` (the checker's ``Layout``), or cut here first."""
    if cuts is None:
        # Cut every eighth of a slice, so the cutting yields every slice too (a Python loop
        # over 16k entities held a busy loop 20 to 50 ms); decoded a slice at a time.
        every = yield from cut_steps(encoded, SLICE // 8)
        cuts = every[::8]
        if cuts[-1] != every[-1]:
            cuts.append(every[-1])
    for start, stop in itertools.pairwise(cuts):
        policy.MergeFromString(encoded[start:stop])  # type: ignore[arg-type]  # any buffer
        yield
    return policy


def _reencoded_steps(policy: snapshot_pb2.Policy) -> Generator[None, None, PolicyIndex]:
    """An index of ``policy`` with every entity encoded again, deterministically."""
    index = PolicyIndex()
    for kind in KINDS:
        for n, entity in enumerate(getattr(policy, kind), 1):
            index.put(kind, entity.id, frame_of(kind, entity))
            if n % SLICE == 0:
                yield
    return index


def _joined(index: PolicyIndex) -> Generator[None, None, list[bytes | memoryview]]:
    """``_frame_slices`` gathered, a slice per step."""
    chunks: list[bytes | memoryview] = []
    for encoded in _frame_slices(index):
        chunks.append(encoded)
        yield
    return chunks


def split_snapshot[B: (bytes, memoryview)](encoded: B) -> tuple[snapshot_pb2.Snapshot, B]:
    """An encoded ``Snapshot`` as the message without its policy, and the encoded policy (a
    view into ``encoded`` when that is a memoryview: no copy)."""
    head, policy = cut(encoded, 4)
    return snapshot_pb2.Snapshot.FromString(head), policy


def _read_policy(path: Path) -> bytes:
    """The encoded policy of the disk copy, when its checksum holds; b"" otherwise."""
    try:
        data = read_regular_file(path)
    except OSError:
        return b""
    checksum, sep, payload = data[len(MAGIC) :].partition(b"\n")
    if not data.startswith(MAGIC) or not sep:
        return b""
    if hashlib.sha256(payload).hexdigest().encode() != checksum:
        return b""
    return policy_of_snapshot(payload)


def _discard(staging: asyncio.Future[Path]) -> None:
    """Remove a disk copy staged for a snapshot not taken, once written (in a thread)."""

    def remove(done: asyncio.Future[Path]) -> None:
        if not done.cancelled() and done.exception() is None:
            unlink = functools.partial(done.result().unlink, missing_ok=True)
            asyncio.get_running_loop().run_in_executor(None, unlink)

    staging.add_done_callback(remove)


class PolicyApplier:
    def __init__(self, store: SnapshotStore, *, offload_bytes: int = OFFLOAD_BYTES) -> None:
        self.store = store
        self.index: PolicyIndex | None = None
        self._indexed = ""  # the hash of the policy ``index`` holds
        # Policies at least this large are checked by the checker process (``checker``).
        self.offload_bytes = offload_bytes
        self.checker = Checker()
        # A full snapshot swapped in before its index was built: its hash and encoded policy
        # (the disk copy is written from it), and the task building its index after the ACK.
        self._received: tuple[str, bytes | memoryview] | None = None
        self._indexing: asyncio.Task[None] | None = None
        # The disk copy of a full snapshot written while it was checked (its hash, and the
        # thread's future of the file), made the copy by ``persist``.
        self._staged: tuple[str, asyncio.Future[Path]] | None = None

    def expect_full(self, size: int) -> None:
        """A full snapshot of ``size`` encoded bytes is on its way (its first part came): a
        large one's checker process is started now, while the rest arrives."""
        if size >= self.offload_bytes:
            self.checker.prepare()

    async def full(self, snapshot: snapshot_pb2.Snapshot) -> CompiledPolicy:
        """``full_encoded`` of a snapshot message (encoded again, in a thread)."""
        encoded = await asyncio.to_thread(snapshot.SerializeToString, deterministic=True)
        return await self.full_encoded(*split_snapshot(encoded))

    async def full_encoded(
        self, snapshot: snapshot_pb2.Snapshot, policy: bytes | memoryview
    ) -> CompiledPolicy:
        """Index, check and compile a full snapshot received encoded (``split_snapshot``: the
        message without its policy, and the encoded policy), and swap it in. Nothing large is
        decoded or hashed in one go on the loop: a large policy is indexed, hashed and checked
        by the checker process while the loop decodes and compiles it in slices (its index is
        built after the swap, for the next delta); a smaller one is cut into its entities,
        hashed per bucket, checked and decoded a slice at a time on the loop. Raises ValueError
        (hash mismatch, InconsistentSnapshot, PolicyError) and changes nothing."""
        if len(policy) >= self.offload_bytes:
            # Its disk copy is written meanwhile, in a thread, and made the copy by ``persist``
            # once the snapshot is swapped in (removed otherwise).
            staging = asyncio.ensure_future(
                self.store.in_background(
                    self.store.stage_encoded,
                    snapshot_parts(
                        snapshot.version, snapshot.hash, snapshot.created_unix_ms, policy
                    ),
                )
            )
            try:
                compiled = await self._checked_elsewhere(snapshot, policy)
            except BaseException:
                _discard(staging)
                raise
            if compiled is not None:
                self.store.swap(compiled)
                self._index_later(snapshot.hash, policy, staging)
                return compiled
            _discard(staging)
            snapshot.ClearField("policy")  # checked on the loop after all: decoded again
        if isinstance(policy, memoryview):  # the index keeps its frames as bytes
            policy = await asyncio.to_thread(bytes, policy)
        index = await sliced(PolicyIndex.build_steps(policy))
        digest = await sliced(index.hash_steps())
        await sliced(_decode_steps(index, snapshot.policy))
        if digest != snapshot.hash:
            # Encoded by a sender whose maps are not in deterministic order, or hashed the
            # old way (ADR 0006): encode the entities again before giving up.
            index = await sliced(_reencoded_steps(snapshot.policy))
            digest = await sliced(index.hash_steps())
        if digest != snapshot.hash and (
            await asyncio.to_thread(legacy_hash, snapshot.policy) != snapshot.hash
        ):
            raise ValueError(
                f"snapshot {snapshot.version} hash mismatch: {digest} != {snapshot.hash}"
            )
        compiled = await self.store.compile_serving(snapshot, verified=True)
        self.store.swap(compiled)
        self._index_now(index, snapshot.hash)
        return compiled

    async def _checked_elsewhere(
        self, snapshot: snapshot_pb2.Snapshot, policy: bytes | memoryview
    ) -> CompiledPolicy | None:
        """The checker process's checks while the loop decodes and compiles (in slices; the
        compile relies on the check, so its result or error counts only once the checker found
        nothing wrong). The compiled policy, its index left with the checker (``Checker.index``);
        None when the checker did not answer or the entities hash otherwise (the caller then
        does it all on the loop)."""
        layout_of: asyncio.Future[Layout | None] = asyncio.get_running_loop().create_future()
        verdict_of = asyncio.ensure_future(self.checker.check(policy, layout_of))
        compiled: CompiledPolicy | None = None
        failure: Exception | None = None
        try:
            layout = await asyncio.shield(layout_of)  # the loop is left to the requests meanwhile
            cuts, key_hashes = None, None
            if layout is not None:
                cuts, key_hashes = layout.cuts, await sliced(layout.key_hash_steps())
            await sliced(_decode_cut_steps(policy, snapshot.policy, cuts))
            compiled = await self.store.compile_serving(
                snapshot, verified=True, checked=True, key_hashes=key_hashes
            )
        except Exception as exc:  # an inconsistent policy can break the compile anywhere
            failure = exc
        except BaseException:
            verdict_of.cancel()
            raise
        verdict = await verdict_of
        if verdict is None or compiled is None or verdict.digest != snapshot.hash:
            self.checker.drop()  # its index, if it has one, is not wanted
        if verdict is None or (not verdict.refused and verdict.digest != snapshot.hash):
            return None
        if verdict.refused:
            raise ValueError(f"snapshot {snapshot.version} refused: {verdict.refused}")
        if verdict.problems:
            raise consistency.InconsistentSnapshot(verdict.problems)
        if failure is not None:
            raise failure
        assert compiled is not None
        return compiled

    def _index_now(self, index: PolicyIndex, policy_hash: str) -> None:
        self._forget_pending()
        self.index, self._indexed = index, policy_hash

    def _index_later(
        self, policy_hash: str, policy: bytes | memoryview, staging: asyncio.Future[Path]
    ) -> None:
        """Load the index the checker made of a policy swapped in unindexed, read from it and
        loaded in slices after the ACK (without it, a delta's ``_index_of`` builds one from
        the policy's encoding); the disk copy is the one staged while it was checked."""
        self._forget_pending()
        self.index, self._indexed = None, ""
        self._received = (policy_hash, policy)
        self._staged = (policy_hash, staging)

        async def build() -> None:
            dumped = await self.checker.index()
            if dumped is None:
                return
            index = await sliced(PolicyIndex.loaded_steps(dumped))
            if self._received is not None and self._received[0] == policy_hash:
                self.index, self._indexed, self._received = index, policy_hash, None

        self._indexing = asyncio.create_task(build())

    async def indexed(self) -> None:
        """Wait for the index of a full snapshot swapped in unindexed (a delta waits for it)."""
        if self._indexing is not None and not self._indexing.done():
            await asyncio.shield(self._indexing)

    def _forget_pending(self) -> None:
        if self._indexing is not None:
            self._indexing.cancel()
        if self._staged is not None:
            _discard(self._staged[1])
        self._indexing, self._received, self._staged = None, None, None

    def close(self) -> None:
        """Stop the background indexing and the checker process (it exits at the end of its
        input)."""
        self._forget_pending()
        self.checker.close_nowait()

    async def delta(self, delta: snapshot_pb2.SnapshotDelta) -> CompiledPolicy:
        """Apply a delta to the policy in force and swap the result in. Raises DeltaRefused
        (another base: the control plane resyncs the node in full) or ValueError (the result
        does not hash like the delta says, is inconsistent or cannot be compiled); either way
        the previous policy stays in force, its index unchanged."""
        current = self.store.current
        if current is None or (current.version, current.hash) != (
            delta.base_version,
            delta.base_hash,
        ):
            held = f"v{current.version}" if current else "nothing"
            raise DeltaRefused(f"a delta from v{delta.base_version}, but the node holds {held}")
        index = await self._index_of(current)
        changes = index.apply(delta)
        try:
            digest = await sliced(index.hash_steps())
            if digest != delta.hash:
                raise ValueError(
                    f"delta to v{delta.version}: the result hashes to {digest}, not {delta.hash}"
                )
            changed = Changed.of(changes)
            if changed.leaf_only:
                problems = leaf_problems(changed, index.get, index.frames)
            else:
                whole = await sliced(_decode_steps(index, snapshot_pb2.Policy()))
                problems = await sliced(consistency.problem_steps(whole))
            if problems:
                raise consistency.InconsistentSnapshot(problems)
            policy = apply_changes(
                current,
                changed,
                index.get,
                self.store.keyring,
                version=delta.version,
                hash=delta.hash,
                created_unix_ms=delta.created_unix_ms,
            )
        except BaseException:
            index.revert(changes)
            raise
        self.store.swap(policy)
        self._indexed = delta.hash
        self._received = None  # the index holds the policy in force now
        return policy

    async def _index_of(self, current: CompiledPolicy) -> PolicyIndex:
        """The index of the policy in force: built after a full snapshot checked by the
        checker (awaited when still building), or after a restart from the disk copy."""
        await self.indexed()
        if self.index is not None and self._indexed == current.hash:
            return self.index
        if self._received is not None and self._received[0] == current.hash:
            encoded = await asyncio.to_thread(bytes, self._received[1])
        else:
            encoded = await asyncio.to_thread(_read_policy, self.store.path)
        index = await sliced(PolicyIndex.build_steps(encoded))
        if await sliced(index.hash_steps()) != current.hash:
            raise DeltaRefused("the node has no index of the policy it holds")
        self._index_now(index, current.hash)
        return index

    async def persist(self) -> None:
        """Write the policy in force to the disk copy, in full: its frames joined on the loop
        in slices (nothing changes the index before the ACK this precedes, and a new full
        snapshot replaces it rather than changing it), then checksummed, written and synced
        in the store's disk thread. A large full snapshot's copy was written while it was
        checked: it only replaces the previous one."""
        current, index = self.store.current, self.index
        if current is None:
            return
        if self._staged is not None and self._staged[0] == current.hash:
            staging, self._staged = self._staged[1], None
            await self.store.in_background(self.store.commit, await staging)
            return
        received = self._received
        if received is not None and received[0] == current.hash:
            held: PolicyIndex | bytes | memoryview = received[1]  # not indexed yet: as received
        elif index is not None and self._indexed == current.hash:
            held = index
        else:
            return
        # The frames are joined on the loop, a slice at a time; the thread only hashes, writes
        # and syncs, which give the GIL back. Joined in the thread, in one go (26 MiB) or in
        # slices, the loop waited for the GIL after each of its system calls: 30 to 60 ms of
        # lateness at every created key on a 100k-key node.
        chunks = [held] if not isinstance(held, PolicyIndex) else await sliced(_joined(held))
        size = sum(map(len, chunks))
        head = snapshot_head(current.version, current.hash, current.created_unix_ms, size)
        await self.store.in_background(self.store.persist_encoded, current.version, [head, *chunks])
