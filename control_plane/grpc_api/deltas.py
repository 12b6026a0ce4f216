"""What a gRPC process can send a node instead of the whole snapshot (ADR 0006).

The watcher hands every new latest snapshot's index to ``DeltaHistory`` (``step_to`` in a
thread, then ``advance``), which keeps
what changed between consecutive versions it saw (ids only, by kind), for the last
``MAX_STEPS`` steps. ``delta_for`` then builds, from the latest index, the delta taking a node
from the version and hash it holds to the latest: only when that version is one the history
starts a step from, with the same hash (a node that holds something else, or is too far
behind, gets the full snapshot). Pure: no gRPC, no Django, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from shared.pb import snapshot_pb2
from shared.policy_index import PolicyIndex, delta_of

MAX_STEPS = 100  # versions a node may be behind and still get a delta
MAX_ENTITIES = 20_000  # entities a delta may carry before a full snapshot is cheaper
_CACHED = 16  # deltas kept built, by (base version and hash, latest version)


@dataclass(frozen=True, slots=True)
class Step:
    """From one version the watcher saw to the next one it saw."""

    version: int
    hash: str
    touched: frozenset[tuple[str, str]]  # (kind, id) that differ in the next version


@dataclass(frozen=True, slots=True)
class Latest:
    version: int
    hash: str
    created_unix_ms: int
    index: PolicyIndex


class DeltaHistory:
    def __init__(self) -> None:
        self.latest: Latest | None = None
        self._steps: list[Step] = []
        self._built: OrderedDict[tuple[int, str, int], snapshot_pb2.SnapshotDelta | None] = (
            OrderedDict()
        )
        self._encoded: dict[tuple[int, str, int], bytes] = {}  # of the deltas in ``_built``

    def step_to(self, latest: Latest) -> Step | None:
        """What changed from the current latest to ``latest`` (both indexes hashed, so equal
        buckets are skipped); slow on a large policy, and safe in a thread while the loop
        builds deltas, as it only reads."""
        previous = self.latest
        if previous is None or previous.version >= latest.version:
            return None
        touched = frozenset(latest.index.changes_from(previous.index))
        return Step(previous.version, previous.hash, touched)

    def advance(self, latest: Latest, step: Step | None) -> None:
        """``latest`` is the latest now, ``step`` (from ``step_to``) what led to it."""
        if step is not None:
            self._steps.append(step)
            del self._steps[:-MAX_STEPS]
        self.latest = latest
        self._built.clear()
        self._encoded.clear()

    def delta_for(self, version: int, hash: str, to_hash: str) -> snapshot_pb2.SnapshotDelta | None:
        """The delta from what the node holds to the latest (whose hash must be ``to_hash``),
        or None: send it all."""
        latest = self.latest
        if latest is None or latest.hash != to_hash or version >= latest.version:
            return None
        key = (version, hash, latest.version)
        if key in self._built:
            return self._built[key]
        delta = self._build(latest, version, hash)
        self._built[key] = delta
        while len(self._built) > _CACHED:
            self._encoded.pop(self._built.popitem(last=False)[0], None)
        return delta

    def encoded_delta_for(self, version: int, hash: str, to_hash: str) -> bytes | None:
        """``delta_for`` encoded, once for every node that holds the same version (a change
        goes to a thousand nodes holding the one before it)."""
        delta = self.delta_for(version, hash, to_hash)
        if delta is None or self.latest is None:
            return None
        key = (version, hash, self.latest.version)
        found = self._encoded.get(key)
        if found is None:
            found = self._encoded[key] = delta.SerializeToString()
        return found

    def _build(self, latest: Latest, version: int, hash: str) -> snapshot_pb2.SnapshotDelta | None:
        for n, step in enumerate(self._steps):
            if step.version == version:
                if step.hash != hash:
                    return None
                touched = frozenset().union(*(s.touched for s in self._steps[n:]))
                if len(touched) > MAX_ENTITIES:
                    return None
                return delta_of(
                    latest.index,
                    touched,
                    version=latest.version,
                    hash=latest.hash,
                    created_unix_ms=latest.created_unix_ms,
                    base_version=version,
                    base_hash=hash,
                )
        return None
