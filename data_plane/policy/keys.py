"""A snapshot's virtual keys compiled for the request path: ``KeyEntry``, and the table that
finds one by its hash (``KeyTable``: a full snapshot's keys are compiled on first use). Pure,
like the rest of ``compiled``, which builds the policy around them.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.consistency import key_slot
from shared.pb import snapshot_pb2

# Keys compiled between two yields of ``compile_steps``: a slice takes about a millisecond.
SLICE = 500


class _Tenant(Protocol):
    @property
    def id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class KeyEntry:
    id: str
    tenant_id: str
    name: str
    expires_at_unix: int
    route_ids: frozenset[str]
    owner: str = ""
    asserts_end_user: bool = False
    project_id: str = ""
    max_parallel: int = 0
    max_body_bytes: int = 0
    max_tokens: int = 0
    # Tags every request with this key carries, as (key, value) sorted by key.
    tags: tuple[tuple[str, str], ...] = ()


def compile_keys(
    policy: snapshot_pb2.Policy, tenants: Mapping[str, _Tenant]
) -> Generator[None, None, dict[str, KeyEntry]]:
    """Keys by (lower-case) hash, all compiled now (a delta's few keys; a full snapshot's keys
    are compiled on first use: ``KeyTable``). Keys with the same routes share one frozenset of
    them (many keys share a few grants)."""
    by_hash: dict[str, KeyEntry] = {}
    grants: dict[tuple[str, ...], frozenset[str]] = {}
    for n, key in enumerate(policy.keys, 1):
        # one shared tenant id string per tenant, not one per key
        by_hash[key_slot(key.key_hash)] = key_entry(key, tenants[key.tenant_id].id, grants)
        if n % SLICE == 0:
            yield
    return by_hash


def key_entry(
    key: snapshot_pb2.VirtualKey, tenant_id: str, grants: dict[tuple[str, ...], frozenset[str]]
) -> KeyEntry:
    """One key compiled (``grants``: the route sets already made, shared between keys)."""
    route_ids = tuple(key.route_ids)
    granted = grants.get(route_ids)
    if granted is None:
        granted = grants[route_ids] = frozenset(route_ids)
    return KeyEntry(
        key.id,
        tenant_id,
        key.name,
        key.expires_at_unix,
        granted,
        key.owner,
        key.asserts_end_user,
        key.project_id,
        key.max_parallel,
        key.max_body_bytes,
        key.max_tokens,
        tuple((t.key, t.value) for t in key.tags) if key.tags else (),
    )


class KeyTable(Mapping[str, KeyEntry]):
    """A full snapshot's keys by (lower-case) hash, each compiled on its first lookup and kept:
    compiling 100k keys up front took about a second of the serving loop, and most keys of a
    large installation are not used between two snapshots. The table maps a hash to the key's
    position in the decoded policy (which the compiled policy keeps alive) until the key is
    compiled, then to its ``KeyEntry``. Read-only to its users; ``changed`` makes a new table
    (a delta's keys) sharing the decoded keys. Used on the event loop only."""

    __slots__ = ("_grants", "_slots", "_source")

    def __init__(
        self,
        slots: dict[str, int | KeyEntry],
        source: Sequence[snapshot_pb2.VirtualKey],
        grants: dict[tuple[str, ...], frozenset[str]] | None = None,
    ) -> None:
        self._slots, self._source = slots, source
        self._grants = {} if grants is None else grants

    @classmethod
    def steps(
        cls, keys: Sequence[snapshot_pb2.VirtualKey], hashes: Sequence[str] | None = None
    ) -> Generator[None, None, KeyTable]:
        """The table, a slice at a time. ``hashes``: every key's ``key_slot``, in order, read
        elsewhere (the snapshot checker process): the table is then made in C, without a
        Python loop over the keys; each slot is checked against its key when first used."""
        slots: dict[str, int | KeyEntry] = {}
        if hashes is not None and len(hashes) == len(keys):
            every = 20 * SLICE  # ~2 ms of the table made from the hashes given
            for start in range(0, len(keys), every):
                chunk = hashes[start : start + every]
                slots.update(zip(chunk, range(start, start + len(chunk)), strict=True))
                yield
            return cls(slots, keys)
        every = SLICE  # a few ms of hashes mapped (5,000 held a busy loop 10 to 20 ms)
        for start in range(0, len(keys), every):
            for n in range(start, min(start + every, len(keys))):
                slots[key_slot(keys[n].key_hash)] = n
            yield
        return cls(slots, keys)

    def get(self, key_hash: str, default: KeyEntry | None = None) -> KeyEntry | None:  # type: ignore[override]
        found = self._slots.get(key_hash)
        if found is None:
            return default
        if type(found) is int:
            key = self._source[found]
            if key_slot(key.key_hash) != key_hash:  # a slot given wrong (``steps``): refused
                return default
            found = self._slots[key_hash] = key_entry(key, key.tenant_id, self._grants)
        return found  # type: ignore[return-value]

    def __getitem__(self, key_hash: str) -> KeyEntry:
        found = self.get(key_hash)
        if found is None:
            raise KeyError(key_hash)
        return found

    def __contains__(self, key_hash: object) -> bool:
        return key_hash in self._slots

    def __iter__(self) -> Iterator[str]:
        return iter(self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def changed(self, drop: Iterable[str], put: Mapping[str, KeyEntry]) -> KeyTable:
        """A new table without ``drop`` and with ``put`` (this one unchanged)."""
        slots = self._slots.copy()
        for key_hash in drop:
            slots.pop(key_hash, None)
        slots.update(put)
        return KeyTable(slots, self._source, self._grants)
