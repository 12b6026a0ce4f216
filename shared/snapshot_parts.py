"""A large full snapshot sent as parts (``SnapshotPart``, ADR 0006), both ends of it.

gRPC hands a received message to Python in one piece: for a 26 MiB snapshot that is two
copies of 26 MiB on the data plane's event loop in one go (gRPC's reassembly, then the bytes
object), a stall of tens of milliseconds for every request on that node. A node that says
``accepts_parts`` in its first request gets a full snapshot larger than ``PART_BYTES`` as
several responses of one nonce, each carrying the next ``PART_BYTES`` of the encoded
``Snapshot``; it copies each into place as it comes (``Reassembly``) and applies the whole
after the last. Pure: no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from shared.pb import control_pb2
from shared.policy_index import varint

PART_BYTES = 1 << 20
# The largest snapshot a node reassembles: the gRPC message limit of both planes.
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024


def part_responses(nonce: str, snapshot: bytes, size: int = PART_BYTES) -> Iterator[bytes]:
    """The encoded ``SnapshotResponse``s carrying an encoded snapshot in parts of ``size``
    (the parts are encoded once per snapshot, whatever the number of nodes it goes to)."""
    head = control_pb2.SnapshotResponse(nonce=nonce).SerializeToString()
    for part in _parts(snapshot, size):
        yield b"".join((head, b"\x22", varint(len(part)), part))  # field 4, length-delimited


@functools.lru_cache(maxsize=2)
def _parts(snapshot: bytes, size: int) -> tuple[bytes, ...]:
    view = memoryview(snapshot)
    return tuple(
        control_pb2.SnapshotPart(
            total_size=len(snapshot), offset=offset, data=bytes(view[offset : offset + size])
        ).SerializeToString()
        for offset in range(0, len(snapshot), size)
    )


class PartError(ValueError):
    """Parts that do not make one snapshot: the push they belong to is refused."""


class Reassembly:
    """The parts of one push, copied into one buffer in order; ``add`` returns the encoded
    snapshot (a view of the buffer) once its last part is in. A part that does not follow
    the one before (another nonce before the end, a gap, another total) raises
    ``PartError`` and drops what was gathered; the rest of that push is then ignored (its
    nonce is answered once)."""

    def __init__(self, max_bytes: int = MAX_SNAPSHOT_BYTES) -> None:
        self.max_bytes = max_bytes
        self.nonce = ""
        self.refused = ""  # the nonce of the push whose parts were refused
        # Grown a part at a time, not allocated whole: zeroing 26 MiB up front held the loop
        # 50 ms; appended, each part's pages are touched as it is copied.
        self._buffer = bytearray()
        self._total = 0

    def add(self, nonce: str, part: control_pb2.SnapshotPart) -> memoryview | None:
        if nonce == self.refused and part.offset:
            return None
        try:
            return self._add(nonce, part)
        except PartError:
            self.reset()
            self.refused = nonce
            raise

    def _add(self, nonce: str, part: control_pb2.SnapshotPart) -> memoryview | None:
        if part.offset == 0:
            if not 0 < part.total_size <= self.max_bytes:
                raise PartError(f"a snapshot of {part.total_size} bytes in parts")
            self.nonce, self._buffer, self._total = nonce, bytearray(), part.total_size
        elif nonce != self.nonce:
            raise PartError(f"a part at offset {part.offset} of a push not begun")
        filled = len(self._buffer)
        if part.total_size != self._total or part.offset != filled:
            raise PartError(
                f"a part of {part.offset}+{len(part.data)} of {part.total_size} bytes after "
                f"{filled} of {self._total}"
            )
        end = filled + len(part.data)
        if end > self._total or not part.data:
            raise PartError(f"a part ending at {end} of {self._total} bytes")
        self._buffer += part.data
        if end < self._total:
            return None
        whole = memoryview(self._buffer)
        self.reset()  # the view keeps the buffer; the next push starts a new one
        return whole

    def reset(self) -> None:
        self.nonce, self._buffer, self._total = "", bytearray(), 0
