"""A policy as a set of entities, hashed so that changing a few entities rehashes a few
buckets (ADR 0006). Both planes use it: the control plane to hash what it publishes and to
find what changed between two versions, the data plane to apply a delta and check that what
it obtained hashes like the full snapshot of that version.

An entity is kept as its *frame*: its deterministic encoding as a field of ``Policy`` (tag,
length, message), so a list of frames joined in kind order is a ``Policy`` encoding, and a
delta's entities are frames too. The hash (``policy_hash``, the snapshot's ``hash``):

- each kind has 256 buckets (CRC-32 of the entity's id, low byte); a bucket's digest is the
  SHA-256 of its frames sorted bytewise and concatenated (frames delimit themselves, so the
  concatenation names the set);
- a kind's digest is the SHA-256 of its 256 bucket digests, in order;
- the policy's hash is the hex SHA-256 of ``SCHEME`` followed by each kind's field number (one
  byte) and digest, in field order.

Frames are cut from an encoded policy without decoding it (``split``), so the control plane
indexes a stored snapshot and the data plane a received one at the cost of a copy.
The order of entities never matters. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import marshal
import zlib
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from google.protobuf.message import Message

from shared.pb import snapshot_pb2

SCHEME = b"asc-policy-hash/2\n"
BUCKETS = 256
# Entities handled between two yields of the ``*_steps`` generators (a few milliseconds).
SLICE = 2000

_FIELDS = snapshot_pb2.Policy.DESCRIPTOR.fields
KINDS: tuple[str, ...] = tuple(f.name for f in _FIELDS)
NUMBERS: Mapping[str, int] = {f.name: f.number for f in _FIELDS}


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_TAGS = {kind: varint(number << 3 | 2) for kind, number in NUMBERS.items()}


def frame(kind: str, payload: bytes) -> bytes:
    """The entity's encoding as field ``kind`` of ``Policy``."""
    return _TAGS[kind] + varint(len(payload)) + payload


def frame_of(kind: str, entity: Message) -> bytes:
    return frame(kind, entity.SerializeToString(deterministic=True))


def bucket_of(entity_id: str) -> int:
    return zlib.crc32(entity_id.encode()) & (BUCKETS - 1)


_EMPTY_BUCKET = hashlib.sha256(b"").digest()


def _bucket_digest(frames: Iterable[bytes]) -> bytes:
    ordered = sorted(frames)
    # Most buckets of a small policy are empty: their digest is a constant.
    return hashlib.sha256(b"".join(ordered)).digest() if ordered else _EMPTY_BUCKET


def _policy_digest(kind_digests: Mapping[str, bytes]) -> str:
    h = hashlib.sha256(SCHEME)
    for kind in KINDS:
        h.update(bytes([NUMBERS[kind]]) + kind_digests[kind])
    return h.hexdigest()


_KIND_OF_TAG = {number << 3 | 2: kind for kind, number in NUMBERS.items()}


def _read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def cut[B: (bytes, memoryview)](message: B, number: int) -> tuple[bytes, B]:
    """An encoded message without its length-delimited field ``number``, and that field's
    content (the last one, empty when absent): the rest decodes cheaply, the field on its own.
    Given a memoryview, the content is a view into it (a 26 MiB policy is not copied)."""
    head, contents = cut_fields(message, (number,))
    return head, contents.get(number, message[0:0])


def cut_fields[B: (bytes, memoryview)](
    message: B, numbers: Iterable[int]
) -> tuple[bytes, dict[int, B]]:
    """``cut`` of several fields at once: the message without them, and each one's content
    (the last one of a repeated number) by number."""
    wanted = frozenset(numbers)
    pos, stop, head, contents = 0, len(message), bytearray(), {}
    while pos < stop:
        begin = pos
        tag, pos = _read_varint(message, pos)
        wire = tag & 7
        if wire == 0:
            _, pos = _read_varint(message, pos)
        elif wire == 2:
            size, pos = _read_varint(message, pos)
            if pos + size > stop:
                raise ValueError("truncated field")
            if tag >> 3 in wanted:
                contents[tag >> 3] = message[pos : pos + size]
                pos += size
                continue
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unexpected wire type {wire}")
        head += message[begin:pos]
    return bytes(head), contents


def split(policy: bytes) -> Iterator[tuple[str, str, int, bytes]]:
    """(kind, id, bucket, frame) of every entity of an encoded ``Policy`` (the hot loop of
    indexing a large snapshot: one-byte tags and lengths are read inline)."""
    pos, stop, kind_of, crc32, mask = 0, len(policy), _KIND_OF_TAG, zlib.crc32, BUCKETS - 1
    while pos < stop:
        kind = kind_of.get(policy[pos])
        if kind is None:
            raise ValueError(f"unexpected field tag {policy[pos]} in a policy")
        size = policy[pos + 1]
        start = pos + 2
        if size >= 0x80:
            size, start = _read_varint(policy, pos + 1)
        end = start + size
        if end > stop:
            raise ValueError("truncated policy")
        raw_id = b""
        if size and policy[start] == 0x0A:
            id_size = policy[start + 1]
            id_start = start + 2
            if id_size >= 0x80:
                id_size, id_start = _read_varint(policy, start + 1)
            raw_id = policy[id_start : id_start + id_size]
        yield kind, raw_id.decode(), crc32(raw_id) & mask, policy[pos:end]
        pos = end


def cut_steps(policy: bytes | memoryview, every: int = SLICE) -> Generator[None, None, list[int]]:
    """Offsets in an encoded ``Policy`` at which ``every`` entities begin, its length last: the
    slices between two of them decode on their own. Only tags and lengths are read (an eighth
    of ``split``'s work); yields every ``8 * every`` entities."""
    pos, stop, cuts, n, read = 0, len(policy), [0], 0, _read_varint
    while pos < stop:
        if policy[pos] >= 0x80 or pos + 2 >= stop:  # not a one-byte tag: the long way
            _, start = read(policy, pos)
            size, start = read(policy, start)
        elif (size := policy[pos + 1]) < 0x80:
            start = pos + 2
        elif (high := policy[pos + 2]) < 0x80:  # entities under 16 KiB
            size, start = (size & 0x7F) | high << 7, pos + 3
        else:
            size, start = read(policy, pos + 1)
        pos = start + size
        n += 1
        if n % every == 0:
            cuts.append(min(pos, stop))
            if n % (every * 8) == 0:
                yield
    if cuts[-1] != stop:
        cuts.append(stop)
    return cuts


def policy_of_snapshot(snapshot: bytes) -> bytes:
    """The encoded ``Policy`` inside an encoded ``Snapshot`` (field 4)."""
    return cut(snapshot, 4)[1]


def policy_hash(policy: snapshot_pb2.Policy) -> str:
    """The hash of any policy (entities with repeated ids included, so an inconsistent policy
    has a hash too); equal to ``PolicyIndex.hash()`` of the same entities."""
    buckets: dict[str, list[list[bytes]]] = {k: [[] for _ in range(BUCKETS)] for k in KINDS}
    for kind, _, bucket, frame_bytes in split(policy.SerializeToString(deterministic=True)):
        buckets[kind][bucket].append(frame_bytes)
    return _policy_digest(
        {
            kind: hashlib.sha256(b"".join(map(_bucket_digest, kind_buckets))).digest()
            for kind, kind_buckets in buckets.items()
        }
    )


@dataclass(frozen=True, slots=True)
class Change:
    """One entity changed by a delta: its frame before (None: added) and after (None: removed)."""

    kind: str
    id: str
    before: bytes | None
    after: bytes | None


class DuplicateEntity(ValueError):
    pass


@dataclass
class PolicyIndex:
    """Every entity of one policy as its frame, by kind, bucket and id, with the digests of
    buckets cached until they change. Mutable: ``apply`` changes it in place and returns the
    changes, which ``revert`` undoes."""

    _buckets: dict[str, list[dict[str, bytes]]] = field(
        default_factory=lambda: {kind: [{} for _ in range(BUCKETS)] for kind in KINDS}
    )
    _digests: dict[str, list[bytes | None]] = field(
        default_factory=lambda: {kind: [None] * BUCKETS for kind in KINDS}
    )

    @classmethod
    def build_steps(cls, policy: bytes) -> Generator[None, None, PolicyIndex]:
        """The index of an encoded policy, in slices; ``DuplicateEntity`` on a repeated id."""
        index = cls()
        buckets = index._buckets
        for n, (kind, entity_id, b, frame_bytes) in enumerate(split(policy), 1):
            bucket = buckets[kind][b]
            if entity_id in bucket:
                raise DuplicateEntity(f"duplicate {kind} id {entity_id}")
            bucket[entity_id] = frame_bytes
            if n % SLICE == 0:
                yield
        return index

    def dumped(self, buckets: int = 8) -> list[bytes]:
        """The index as chunks of ``buckets`` buckets each, in ``marshal``'s format (plain
        dicts of bytes: nothing to run when loaded), with the digests, for ``loaded_steps`` in
        another process: loading is C work, several times cheaper than ``build_steps``."""
        self.hash()
        return [
            marshal.dumps(
                (
                    kind,
                    start,
                    self._buckets[kind][start : start + buckets],
                    self._digests[kind] if start == 0 else None,
                )
            )
            for kind in KINDS
            for start in range(0, BUCKETS, buckets)
        ]

    @classmethod
    def loaded_steps(cls, chunks: Iterable[bytes]) -> Generator[None, None, PolicyIndex]:
        """The index ``dumped`` made, a chunk per slice; ValueError on a malformed chunk."""
        index = cls()
        for chunk in chunks:
            try:
                kind, start, buckets, digests = marshal.loads(chunk)
                if start + len(buckets) > BUCKETS:
                    raise TypeError(f"buckets {start} to {start + len(buckets)} of {BUCKETS}")
                index._buckets[kind][start : start + len(buckets)] = buckets
                if digests is not None:
                    index._digests[kind] = digests
            except (EOFError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"a malformed index chunk: {exc!r}") from exc
            yield
        return index

    @classmethod
    def build(cls, policy: bytes | snapshot_pb2.Policy) -> PolicyIndex:
        if not isinstance(policy, bytes):
            policy = policy.SerializeToString(deterministic=True)
        return run_steps(cls.build_steps(policy))

    def encoded_policy(self) -> bytes:
        """The policy's encoding (entities in bucket order); for a thread, call ``frames``
        on the loop and join there."""
        return b"".join(f for kind in KINDS for f in self.frames(kind))

    def get(self, kind: str, entity_id: str) -> bytes | None:
        return self._buckets[kind][bucket_of(entity_id)].get(entity_id)

    def count(self, kind: str) -> int:
        return sum(map(len, self._buckets[kind]))

    def frames(self, kind: str) -> list[bytes]:
        """The kind's frames (a new list: safe to join in another thread)."""
        out: list[bytes] = []
        for bucket in self._buckets[kind]:
            out.extend(bucket.values())
        return out

    def items(self, kind: str) -> Iterator[tuple[str, bytes]]:
        for bucket in self._buckets[kind]:
            yield from bucket.items()

    def hash_steps(self) -> Generator[None, None, str]:
        """``hash`` in slices: only buckets changed since the last hash are digested."""
        kind_digests: dict[str, bytes] = {}
        done = 0
        for kind in KINDS:
            digests, buckets = self._digests[kind], self._buckets[kind]
            for b, cached in enumerate(digests):
                if cached is None:
                    digests[b] = _bucket_digest(buckets[b].values())
                    done += len(buckets[b]) // 4 + 1
                    if done >= SLICE:
                        done = 0
                        yield
            kind_digests[kind] = hashlib.sha256(b"".join(d or b"" for d in digests)).digest()
        return _policy_digest(kind_digests)

    def hash(self) -> str:
        return run_steps(self.hash_steps())

    def apply(self, delta: snapshot_pb2.SnapshotDelta) -> list[Change]:
        """Apply the delta's removals, then its upserts, in place; the net changes (``revert``
        undoes them). Removing an id the index lacks changes nothing."""
        net: dict[tuple[str, str], Change] = {}

        def put(kind: str, entity_id: str, after: bytes | None) -> None:
            before = self.put(kind, entity_id, after)
            first = net.get((kind, entity_id))
            net[(kind, entity_id)] = Change(
                kind, entity_id, first.before if first else before, after
            )

        for kind in KINDS:
            for entity_id in getattr(delta.removed, kind):
                put(kind, entity_id, None)
            for entity in getattr(delta.upserts, kind):
                put(kind, entity.id, frame_of(kind, entity))
        return [c for c in net.values() if c.before != c.after]

    def revert(self, changes: Iterable[Change]) -> None:
        for change in changes:
            self.put(change.kind, change.id, change.before)

    def put(self, kind: str, entity_id: str, frame_bytes: bytes | None) -> bytes | None:
        """Set (or, with None, remove) one entity; its previous frame."""
        b = bucket_of(entity_id)
        bucket = self._buckets[kind][b]
        before = bucket.pop(entity_id, None) if frame_bytes is None else bucket.get(entity_id)
        if frame_bytes is not None:
            bucket[entity_id] = frame_bytes
        if before != frame_bytes:
            self._digests[kind][b] = None
        return before

    def changes_from(self, old: PolicyIndex) -> Iterator[tuple[str, str]]:
        """(kind, id) of every entity that differs from ``old`` (added, changed, removed);
        buckets whose cached digests are equal are skipped (call ``hash`` on both first)."""
        for kind in KINDS:
            new_digests, old_digests = self._digests[kind], old._digests[kind]
            for b, (mine, theirs) in enumerate(
                zip(self._buckets[kind], old._buckets[kind], strict=True)
            ):
                if new_digests[b] is not None and new_digests[b] == old_digests[b]:
                    continue
                for entity_id in mine.keys() | theirs.keys():
                    if mine.get(entity_id) != theirs.get(entity_id):
                        yield kind, entity_id


def encode_snapshot(
    version: int, hash: str, created_unix_ms: int, policy: Iterable[bytes]
) -> bytes:
    """An encoded ``Snapshot`` around an encoded policy given as its frames (what
    ``Snapshot.SerializeToString`` gives for the same fields, without building the message)."""
    return b"".join(snapshot_parts(version, hash, created_unix_ms, b"".join(policy)))


def snapshot_parts(
    version: int, hash: str, created_unix_ms: int, body: bytes | memoryview
) -> list[bytes | memoryview]:
    """``encode_snapshot`` as its head and the encoded policy, not joined (no copy of it)."""
    return [snapshot_head(version, hash, created_unix_ms, len(body)), body]


def snapshot_head(version: int, hash: str, created_unix_ms: int, policy_size: int) -> bytes:
    """An encoded ``Snapshot`` up to its policy's bytes, for a policy of ``policy_size``."""
    head = bytearray()
    if version:
        head += b"\x08" + varint(version)
    if hash:
        head += b"\x12" + varint(len(hash.encode())) + hash.encode()
    if created_unix_ms:
        head += b"\x18" + varint(created_unix_ms & (2**64 - 1))
    if policy_size:
        head += b"\x22" + varint(policy_size)
    return bytes(head)


def delta_of(
    latest: PolicyIndex,
    touched: Iterable[tuple[str, str]],
    *,
    version: int,
    hash: str,
    created_unix_ms: int,
    base_version: int,
    base_hash: str,
) -> snapshot_pb2.SnapshotDelta:
    """The delta taking a node from the base version to ``latest`` (of ``version``), given
    every (kind, id) that may differ between the two: those ``latest`` holds travel whole, the
    others as removals."""
    frames: list[bytes] = []
    removed = snapshot_pb2.PolicyIds()
    for kind, entity_id in sorted(set(touched)):
        current = latest.get(kind, entity_id)
        if current is None:
            getattr(removed, kind).append(entity_id)
        else:
            frames.append(current)
    return snapshot_pb2.SnapshotDelta(
        version=version,
        hash=hash,
        created_unix_ms=created_unix_ms,
        base_version=base_version,
        base_hash=base_hash,
        upserts=snapshot_pb2.Policy.FromString(b"".join(frames)),
        removed=removed,
    )


def run_steps[T](steps: Generator[None, None, T]) -> T:
    """A ``*_steps`` generator run to its end in one go; its value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result
