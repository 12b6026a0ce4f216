"""A large full snapshot is checked by the checker process (data_plane/snapshots/checker.py)
while the loop compiles it: the policy swapped in is the one the loop alone would compile, a
snapshot the checker finds inconsistent, malformed or hashed otherwise is refused and leaves
the node on what it held, the node takes deltas and restarts from its disk copy after it, and
a checker that dies is replaced by the loop's own checks. The tests set the size from which
the checker is used to 0, so small policies take that path."""

from __future__ import annotations

import asyncio
import itertools
import marshal
import subprocess
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from control_plane.grpc_api.deltas import DeltaHistory
from data_plane.policy.compiled import compile_snapshot
from data_plane.policy.incremental import Changed, Layered, _finish, apply_changes
from data_plane.policy.keys import KeyTable, compile_keys
from data_plane.snapshots import checker, checks
from data_plane.snapshots.applier import PolicyApplier
from data_plane.snapshots.checker import Layout, Verdict, check
from data_plane.snapshots.store import (
    BUSY_WAIT_S,
    IDLE_S,
    SLICE_S,
    SnapshotStore,
    decode_file,
    pause,
    run_sliced,
)
from shared.consistency import InconsistentSnapshot
from shared.crypto import hash_key
from shared.pb import snapshot_pb2
from shared.policy_index import PolicyIndex, policy_hash
from tests.data_plane import snapshots
from tests.data_plane.test_deltas import World, comparable, publish
from tests.data_plane.waiting import eventually


def _world() -> World:
    world = World()
    for n in range(3):
        world.routes[f"r-{n}"] = {
            "tenant": "t-a", "name": f"chat-{n}", "models": ["m-1", "m-2"], "retries": n
        }  # fmt: skip
    for n in range(40):
        world.keys[f"k-{n}"] = {
            "tenant": "t-a", "secret": f"sk-{n}", "routes": [f"r-{n % 3}"], "name": f"k-{n}"
        }  # fmt: skip
    return world


@pytest.fixture
async def node(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = SnapshotStore(tmp_path / "snapshot.bin", snapshots.keyring())
    applier = PolicyApplier(store, offload_bytes=0)
    yield store, applier
    applier.close()


async def test_the_checked_policy_is_the_one_the_loop_compiles_and_takes_deltas(
    node: tuple[SnapshotStore, PolicyApplier],
) -> None:
    store, applier = node
    world, history = _world(), DeltaHistory()
    first = world.render(1)
    publish(history, first)
    applied = await applier.full(first)
    assert applier.checker.checks == 1, "the checker process did the checks"
    assert store.current is applied
    assert comparable(applied) == comparable(compile_snapshot(first, snapshots.keyring()))
    await applier.persist()  # written from the encoding as received, the index not built yet
    restarted = await asyncio.to_thread(
        SnapshotStore(store.path, snapshots.keyring()).load_from_disk
    )
    assert restarted is not None
    assert restarted.hash == first.hash
    # The next delta applies on the index built after the swap.
    world.keys["k-new"] = {"tenant": "t-a", "secret": "sk-new", "routes": ["r-1"], "name": "n"}
    second = world.render(2)
    publish(history, second)
    delta = history.delta_for(1, first.hash, second.hash)
    assert delta is not None
    after = await applier.delta(delta)
    assert after.hash == second.hash
    assert hash_key("sk-new") in after.keys_by_hash
    assert comparable(after) == comparable(compile_snapshot(second, snapshots.keyring()))


async def test_an_inconsistent_snapshot_is_refused_and_changes_nothing(
    node: tuple[SnapshotStore, PolicyApplier],
) -> None:
    store, applier = node
    held = await applier.full(_world().render(1))
    bad = snapshot_pb2.Policy()
    bad.CopyFrom(_world().render(2).policy)
    bad.keys[0].route_ids.append("r-nowhere")  # the compile alone would not notice
    snapshot = snapshot_pb2.Snapshot(version=2, hash=policy_hash(bad), policy=bad)
    with pytest.raises(InconsistentSnapshot, match="names unknown route r-nowhere"):
        await applier.full(snapshot)
    assert store.current is held


async def test_a_snapshot_hashed_otherwise_or_repeating_an_id_is_refused(
    node: tuple[SnapshotStore, PolicyApplier],
) -> None:
    store, applier = node
    held = await applier.full(_world().render(1))
    wrong = _world().render(2)
    wrong.hash = "0" * 64
    with pytest.raises(ValueError, match="hash mismatch"):
        await applier.full(wrong)
    twice = _world().render(3)
    twice.policy.keys.append(twice.policy.keys[0])
    twice.hash = policy_hash(twice.policy)
    with pytest.raises(ValueError, match="duplicate keys id k-0"):
        await applier.full(twice)
    assert store.current is held


async def test_a_checker_that_fails_is_replaced_by_the_loops_checks(
    node: tuple[SnapshotStore, PolicyApplier], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, applier = node
    monkeypatch.setattr(checker, "_ARGS", ("-c", "pass"))  # a child that exits at once
    applied = await applier.full(_world().render(1))
    assert store.current is applied
    assert applier.checker.checks == 0, "no verdict: the loop checked"
    bad = _world().render(2)
    bad.policy.keys[0].route_ids.append("r-nowhere")
    bad.hash = policy_hash(bad.policy)
    with pytest.raises(InconsistentSnapshot):  # the loop's checks refuse it all the same
        await applier.full(bad)
    assert store.current is applied


async def test_each_check_runs_in_a_child_of_its_own_that_ends_and_knows_no_secret(
    node: tuple[SnapshotStore, PolicyApplier], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, applier = node
    monkeypatch.setenv("ASC_SEAL_KEY", "a-secret-the-checker-must-not-see")
    started: list[subprocess.Popen[bytes]] = []
    environs: list[bytes] = []
    start = applier.checker._start

    async def spied() -> Any:
        child = await start()
        started.append(child.popen)
        environs.append(
            await asyncio.to_thread(Path(f"/proc/{child.popen.pid}/environ").read_bytes)
        )
        return child

    monkeypatch.setattr(applier.checker, "_start", spied)
    for version in (1, 2):
        applied = await applier.full(_world().render(version))
        assert store.current is applied
    assert applier.checker.checks == 2
    assert len({p.pid for p in started}) == 2, "a child per check"
    for popen in started:  # each ended after its check (its input closed)
        assert await asyncio.to_thread(popen.wait, 10) == 0
    for environ in environs:
        assert b"a-secret-the-checker-must-not-see" not in environ
        assert b"ASC_SEAL_KEY" not in environ


async def test_a_checker_prepared_while_a_large_snapshot_arrives_is_the_one_used(
    node: tuple[SnapshotStore, PolicyApplier], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checker's process is started when a large snapshot's first part comes (its start
    overlaps the transfer) and checks it; nothing is started for a small one, and a prepared
    child is stopped with the node."""
    store, applier = node
    started: list[subprocess.Popen[bytes]] = []
    start = applier.checker._start

    async def counted() -> Any:
        child = await start()
        started.append(child.popen)
        return child

    monkeypatch.setattr(applier.checker, "_start", counted)
    applier.offload_bytes = 1000
    applier.expect_full(999)
    await asyncio.sleep(0.05)
    assert started == []
    applier.expect_full(1000)
    applier.expect_full(5000)  # told twice: one child
    await eventually(lambda: started, "the checker started ahead")
    applied = await applier.full(_world().render(1))
    assert store.current is applied
    assert applier.checker.checks == 1
    assert len(started) == 1, "checked by the child started ahead"
    await applier.indexed()
    assert await asyncio.to_thread(started[0].wait, 10) == 0, "it ended after its check"
    applier.expect_full(5000)
    await eventually(lambda: len(started) == 2, "the next checker started ahead")
    applier.close()  # the node stops: the child started ahead goes with it
    assert await asyncio.to_thread(started[1].wait, 10) != 0


async def test_the_layout_comes_before_the_verdict_and_decodes_to_the_same_policy() -> None:
    """The checker sends where the policy may be cut and the keys' hashes before its verdict;
    slices cut there decode to the policy, and the hashes are the keys' own, in order."""
    world = _world()
    for n in range(40, 5000):  # past a few slices of ``checks.DECODE_EVERY`` entities
        world.keys[f"k-{n}"] = {"tenant": "t-a", "secret": f"Sk-{n}", "routes": ["r-0"], "name": ""}
    policy = world.render(1).policy
    policy.keys[0].key_hash = policy.keys[0].key_hash.upper()  # looked up whatever the case
    encoded = policy.SerializeToString(deterministic=True)
    owner = checker.Checker()
    layout: asyncio.Future[Layout | None] = asyncio.get_running_loop().create_future()
    verdict = await owner.check(encoded, layout)
    owner.drop()
    found = layout.result()
    assert verdict is not None
    assert not verdict.refused
    assert found is not None
    assert len(found.cuts) > 3
    decoded = snapshot_pb2.Policy()
    for start, stop in itertools.pairwise(found.cuts):
        decoded.MergeFromString(encoded[start:stop])
    assert decoded == policy
    assert len(found.key_hash_chunks) == -(-len(policy.keys) // checks.HASHES_PER_CHUNK)
    assert _finish(found.key_hash_steps()) == [k.key_hash.lower() for k in policy.keys]
    assert checks.layout(b"\x99garbage") == ([], [])


LAYOUTS = {
    "not a pair": ([0, 10],),
    "not from the start": ([1, 10], 0),
    "not to the end": ([0, 9], 0),
    "going back": ([0, 6, 4, 10], 0),
    "a cut not a number": ([0, "5", 10], 0),
}


@pytest.mark.parametrize("head", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_a_layout_that_does_not_fit_the_policy_is_not_used(head: object) -> None:
    assert Layout.of(head, [], 10) is None
    assert Layout.of(([0, 4, 10], 0), [], 10) == Layout([0, 4, 10], [])


def test_key_hashes_that_are_not_strings_leave_the_keys_to_be_read_on_the_loop() -> None:
    good = [marshal.dumps(["ab", "cd"]), marshal.dumps(["ef"])]
    assert _finish(Layout([0, 10], good).key_hash_steps()) == ["ab", "cd", "ef"]
    for bad in (marshal.dumps([b"ab"]), marshal.dumps("ab"), b"\x00garbage"):
        assert _finish(Layout([0, 10], [good[0], bad]).key_hash_steps()) is None


def test_a_key_table_made_from_hashes_read_elsewhere_checks_each_slot_on_first_use() -> None:
    keys = _world().render(1).policy.keys
    hashes = [k.key_hash for k in keys]
    table = _finish(KeyTable.steps(keys, hashes))
    read_here = _finish(KeyTable.steps(keys))
    assert dict(table.items()) == dict(read_here.items())
    swapped = hashes[:]
    swapped[0], swapped[1] = swapped[1], swapped[0]  # a slot given wrong
    wrong = _finish(KeyTable.steps(keys, swapped))
    assert wrong.get(hashes[0]) is None
    assert wrong.get(hashes[1]) is None
    assert wrong.get(hashes[2]) == read_here.get(hashes[2])
    assert dict(_finish(KeyTable.steps(keys, hashes[1:])).items()) == dict(read_here.items())


def test_the_verdict_names_the_hash_problems_and_digests_of_what_it_was_given() -> None:
    policy = _world().render(1).policy
    encoded = policy.SerializeToString(deterministic=True)
    verdict = check(encoded)
    assert verdict == Verdict(digest=policy_hash(policy), index=PolicyIndex.build(encoded).dumped())
    loaded = PolicyIndex.loaded_steps(verdict.index)
    while True:
        try:
            next(loaded)
        except StopIteration as done:
            index: PolicyIndex = done.value
            break
    assert index.encoded_policy() == PolicyIndex.build(encoded).encoded_policy()
    assert index.hash() == PolicyIndex.build(index.encoded_policy()).hash() == verdict.digest
    assert check(b"\x99garbage").refused


def test_the_checks_in_two_processes_find_what_they_find_in_one() -> None:
    sound = _world().render(1).policy
    inconsistent = snapshot_pb2.Policy()
    inconsistent.CopyFrom(sound)
    inconsistent.keys[0].route_ids.append("r-nowhere")
    twice = snapshot_pb2.Policy()
    twice.CopyFrom(sound)
    twice.keys.append(twice.keys[0])
    for policy in (sound, inconsistent, twice):
        encoded = policy.SerializeToString(deterministic=True)
        assert check(encoded, checks.forked) == check(encoded)
    assert check(b"\x99garbage", checks.forked) == check(b"\x99garbage")
    assert check(inconsistent.SerializeToString(), checks.forked).problems


async def test_a_refused_snapshot_leaves_the_disk_copy_as_it_was(
    node: tuple[SnapshotStore, PolicyApplier],
) -> None:
    """A large snapshot's copy is written while it is checked; refused, it is removed and the
    copy of the version held stays."""
    store, applier = node
    await applier.full(_world().render(1))
    await applier.persist()
    held = decode_file(store.path.read_bytes())
    bad = _world().render(2)
    bad.policy.keys[0].route_ids.append("r-nowhere")
    bad.hash = policy_hash(bad.policy)
    with pytest.raises(InconsistentSnapshot):
        await applier.full(bad)
    await applier.persist()
    for _ in range(100):  # the staged copy is removed in a thread once written
        if sorted(p.name for p in store.path.parent.iterdir()) == [store.path.name]:
            break
        await asyncio.sleep(0.02)
    assert sorted(p.name for p in store.path.parent.iterdir()) == [store.path.name]
    # The same version; rewritten from the index meanwhile, its entities may be in another
    # order, which the hash does not see.
    kept = decode_file(store.path.read_bytes())
    assert (kept.version, kept.hash) == (held.version, held.hash)
    assert policy_hash(kept.policy) == held.hash


def test_a_full_snapshots_keys_are_compiled_on_first_use_and_stay_lazy_past_a_delta(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = _world()
    first = world.render(1)
    compiled = compile_snapshot(first, snapshots.keyring())
    table = compiled.keys_by_hash
    assert isinstance(table, KeyTable)
    eager = _finish(compile_keys(first.policy, compiled.tenants))
    assert len(table) == len(eager) == 40
    entry = table[hash_key("sk-3")]
    assert entry == eager[hash_key("sk-3")]
    assert table.get(hash_key("sk-3")) is entry, "compiled once, then kept"
    assert table.get(hash_key("sk-unknown")) is None
    assert hash_key("sk-unknown") not in table
    with pytest.raises(KeyError):
        table[hash_key("sk-unknown")]
    # A delta's keys sit on top of it; flattened, the table stays lazy and exact.
    monkeypatch.setattr(Layered, "FLATTEN", 2)
    history = DeltaHistory()
    publish(history, first)
    for n in range(3):
        world.keys[f"k-new-{n}"] = {
            "tenant": "t-a", "secret": f"sk-new-{n}", "routes": ["r-1"], "name": "new"
        }  # fmt: skip
    del world.keys["k-5"]
    second = world.render(2)
    publish(history, second)
    changed = Changed.of(PolicyIndex.build(first.policy).apply(_delta(history, first, second)))
    lookup = PolicyIndex.build(second.policy).get
    after = apply_changes(
        compiled, changed, lookup, snapshots.keyring(), version=2, hash=second.hash,
        created_unix_ms=0,
    )  # fmt: skip
    assert isinstance(after.keys_by_hash, KeyTable)
    assert dict(after.keys_by_hash) == dict(
        compile_snapshot(second, snapshots.keyring()).keys_by_hash
    )
    assert hash_key("sk-5") in table, "the previous policy's table is unchanged"


def _delta(
    history: DeltaHistory, old: snapshot_pb2.Snapshot, new: snapshot_pb2.Snapshot
) -> snapshot_pb2.SnapshotDelta:
    delta = history.delta_for(old.version, old.hash, new.hash)
    assert delta is not None
    return delta


async def test_a_slice_of_a_large_apply_lets_queued_requests_go_first() -> None:
    """``pause`` between two slices: on a quiet loop it yields once; while the turns in
    between do work (requests under way), it yields again, for up to BUSY_WAIT_S."""
    steps, work_s = 0, 0.0

    async def requests() -> None:
        nonlocal steps
        while True:
            end = time.perf_counter() + work_s
            while time.perf_counter() < end:
                pass
            steps += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(requests())
    await asyncio.sleep(0)
    try:
        steps = 0
        await pause()  # the requests take next to nothing: the loop is idle
        assert steps == 1
        work_s, steps = 2 * IDLE_S, 0
        started = time.perf_counter()
        await pause()  # every turn does work: the pause waits, but not for ever
        assert steps > 1
        assert time.perf_counter() - started >= BUSY_WAIT_S
    finally:
        task.cancel()


def test_a_sliced_run_gives_the_loop_a_turn_between_slices_of_its_steps() -> None:
    """``run_sliced`` runs several short steps per slice (not a turn of the loop per step) and
    lets the loop run between slices; the generator's value is returned."""
    turns = 0

    def steps() -> Generator[None, None, str]:
        for _ in range(40):
            end = time.perf_counter() + SLICE_S / 4
            while time.perf_counter() < end:
                pass
            yield
        return "done"

    async def main() -> str:
        nonlocal turns

        async def count() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(count())
        try:
            return await run_sliced(steps())
        finally:
            task.cancel()

    assert asyncio.run(main()) == "done"
    assert 5 <= turns <= 30  # a turn about every four steps, not one per step, nor none
