"""The last-known-good snapshot on disk: written atomically with its checksum, reloaded on a
restart, and refused (None, with a log line) when it is corrupt, truncated, tampered or not
openable, never a crash or a hang."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_plane.snapshots.store import (
    BACKGROUND_NICE,
    MAGIC,
    CorruptSnapshotFile,
    SnapshotStore,
    decode_file,
    encode_file,
)
from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.data_plane.snapshots import ACME_UPSTREAM


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "snapshot.bin"


def store_at(path: Path, key: str = snapshots.SEAL_KEY) -> SnapshotStore:
    return SnapshotStore(path, snapshots.keyring(key))


def test_the_file_is_magic_checksum_and_payload(path: Path) -> None:
    snapshot = snapshots.two_tenants().snapshot(version=3)
    store_at(path).persist(snapshot)
    data = path.read_bytes()
    payload = snapshot.SerializeToString(deterministic=True)
    assert data == MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    assert decode_file(data) == snapshot


def test_a_persisted_snapshot_is_reloaded_by_a_new_store(path: Path) -> None:
    snapshot = snapshots.two_tenants().snapshot(version=3)
    store_at(path).persist(snapshot)
    policy = store_at(path).load_from_disk()
    assert policy is not None
    assert (policy.version, policy.hash) == (3, snapshot.hash)
    assert policy.routes["r-acme-chat"].targets[0].api_key == ACME_UPSTREAM


def test_the_file_never_holds_a_plain_credential(path: Path) -> None:
    store_at(path).persist(snapshots.two_tenants().snapshot())
    assert ACME_UPSTREAM.encode() not in path.read_bytes()


def test_persist_replaces_the_previous_copy_and_leaves_no_temp_file(path: Path) -> None:
    store = store_at(path)
    store.persist(snapshots.two_tenants().snapshot(version=1))
    store.persist(snapshots.two_tenants().snapshot(version=2))
    assert sorted(p.name for p in path.parent.iterdir()) == ["snapshot.bin"]
    policy = store_at(path).load_from_disk()
    assert policy is not None
    assert policy.version == 2


def test_copies_a_crash_left_unfinished_are_removed_the_last_copy_kept(path: Path) -> None:
    store = store_at(path)
    store.persist(snapshots.two_tenants().snapshot(version=3))
    staged = store.stage_encoded(snapshots.two_tenants().snapshot(version=4).SerializeToString())
    other = path.parent / "snapshot.bin.notes"  # not a staged copy: left alone
    other.write_bytes(b"x")
    assert staged.exists()
    assert store_at(path).discard_staged() == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["snapshot.bin", "snapshot.bin.notes"]
    policy = store_at(path).load_from_disk()
    assert policy is not None
    assert policy.version == 3


def test_a_reader_never_sees_a_torn_file(path: Path) -> None:
    """Readers racing a writer that alternates a small and a large snapshot always decode
    one of them whole (the file is replaced by rename, never rewritten in place)."""
    small = snapshots.two_tenants().snapshot(version=1)
    large_builder = snapshots.two_tenants()
    for i in range(300):
        large_builder.key(f"k-bulk-{i}", "t-beta", f"sk-bulk-{i}", ["r-beta-chat"])
    large = large_builder.snapshot(version=2)
    store = store_at(path)
    store.persist(small)
    done = threading.Event()
    seen: list[int] = []

    def write() -> None:
        try:
            for i in range(60):
                store.persist(large if i % 2 else small)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        seen.append(decode_file(path.read_bytes()).version)  # raises on a torn file
    writer.join()
    assert set(seen) <= {1, 2}


def test_an_absent_file_is_none_without_complaint(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        assert store_at(path).load_from_disk() is None
    assert not caplog.records


VALID = encode_file(snapshots.two_tenants().snapshot(version=5))


def _flipped(data: bytes, at: int, xor: int = 0x01) -> bytes:
    return data[:at] + bytes([data[at] ^ xor]) + data[at + 1 :]


def _rechecksummed(payload: bytes) -> bytes:
    """A file whose checksum is right for ``payload``, whatever the payload holds."""
    return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def _with_policy(mutate: str) -> bytes:
    snapshot = snapshots.two_tenants().snapshot(version=5)
    if mutate == "hash":
        snapshot.hash = "0" * 64
    elif mutate == "dangling":
        snapshot.policy.keys[0].route_ids.append("r-nope")
        snapshot.hash = snapshots.snapshot_of(snapshot.policy).hash
    return encode_file(snapshot)


CORRUPT = {
    "empty": b"",
    "magic only": MAGIC,
    "wrong magic": b"ASCSNAP9\n" + VALID[len(MAGIC) :],
    "truncated": VALID[:-10],
    "byte flipped in payload": _flipped(VALID, len(VALID) - 7),
    "byte flipped in checksum": _flipped(VALID, len(MAGIC) + 3),
    "checksum line missing": MAGIC + VALID[len(MAGIC) + 65 :],
    "payload not a protobuf": _rechecksummed(b"\xff\xff\xff\xff\xff"),
    "hash does not match the policy": _with_policy("hash"),
    "dangling reference": _with_policy("dangling"),
    "random bytes": random.Random(0).randbytes(4096),
}


@pytest.mark.parametrize("data", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_bad_copy_is_refused_and_logged(
    path: Path, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    with caplog.at_level(logging.ERROR, logger="data_plane.snapshots.store"):
        assert store_at(path).load_from_disk() is None
    assert any("refusing the snapshot copy" in r.getMessage() for r in caplog.records)


def test_a_copy_sealed_for_another_fleet_is_refused(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_at(path).persist(snapshots.two_tenants().snapshot())
    with caplog.at_level(logging.ERROR):
        assert store_at(path, snapshots.OTHER_SEAL_KEY).load_from_disk() is None
    assert "cannot be opened" in caplog.text


def test_an_unreadable_path_is_refused(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path.mkdir(parents=True)  # a directory where the file should be
    with caplog.at_level(logging.ERROR):
        assert store_at(path).load_from_disk() is None
    assert "cannot read the snapshot copy" in caplog.text


@pytest.mark.timeout(30)  # the guard against the hang this test is about
def test_a_fifo_in_place_of_the_copy_is_refused_not_waited_on(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    os.mkfifo(path)  # a plain read would block until someone writes to it
    with caplog.at_level(logging.ERROR):
        assert store_at(path).load_from_disk() is None
    assert "not a regular file" in caplog.text


def test_decode_file_raises_its_own_error() -> None:
    with pytest.raises(CorruptSnapshotFile, match="checksum mismatch"):
        decode_file(VALID[:-1])
    with pytest.raises(CorruptSnapshotFile, match="not a snapshot file"):
        decode_file(b"hello")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_truncation_or_single_byte_change_is_refused(
    tmp_path: Path, data: st.DataObject
) -> None:
    if data.draw(st.booleans(), label="truncate"):
        broken = VALID[: data.draw(st.integers(0, len(VALID) - 1), label="length")]
    else:
        at = data.draw(st.integers(0, len(VALID) - 1), label="position")
        broken = _flipped(VALID, at, data.draw(st.integers(1, 255), label="xor"))
    path = tmp_path / "snapshot.bin"
    path.write_bytes(broken)
    assert store_at(path).load_from_disk() is None


def test_swap_replaces_the_current_policy_whole() -> None:
    store = SnapshotStore(Path("unused"), snapshots.keyring())
    assert store.current is None
    first = store.compile(snapshots.two_tenants().snapshot(version=1))
    store.swap(first)
    second = store.compile(snapshots.two_tenants().snapshot(version=2))
    assert store.current is first, "compiling does not apply"
    store.swap(second)
    assert store.current is second


def test_compile_verifies_the_hash() -> None:
    snapshot = snapshots.two_tenants().snapshot()
    snapshot.version = 9
    snapshot.policy.tenants[0].active = False  # changed after hashing
    with pytest.raises(ValueError, match="hash mismatch"):
        SnapshotStore(Path("unused"), snapshots.keyring()).compile(snapshot)


def test_empty_policy_round_trips(path: Path) -> None:
    snapshot = snapshots.snapshot_of(snapshot_pb2.Policy(), version=1)
    store_at(path).persist(snapshot)
    policy = store_at(path).load_from_disk()
    assert policy is not None
    assert policy.version == 1


async def test_compiling_on_a_serving_loop_lets_other_tasks_run(tmp_path: Path) -> None:
    """A large snapshot is compiled in slices: a ticker on the same loop keeps ticking."""
    from data_plane.policy import compiled as policy_module

    b = snapshots.two_tenants()
    for i in range(5 * policy_module.SLICE):
        b.key(f"k-{i}", "t-acme", f"sk-asc-bulk-{i}", ["r-acme-chat"])
    snapshot = b.snapshot()
    store = SnapshotStore(tmp_path / "s.bin", snapshots.keyring())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    compiled = await store.compile_serving(snapshot)
    task.cancel()
    assert len(compiled.keys_by_hash) == 5 * policy_module.SLICE + 4
    assert ticks >= 5, "the loop ran other tasks between slices"
    assert compiled == store.compile(snapshot)


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX priorities")
async def test_disk_copies_are_made_in_a_thread_below_the_serving_threads_priority(
    path: Path,
) -> None:
    store = SnapshotStore(path, snapshots.keyring())
    serving = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    own = await store.in_background(
        lambda: (threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0))
    )
    assert own[0] != threading.get_native_id()
    assert own[1] == min(serving + BACKGROUND_NICE, 19)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == serving
    assert (await store.in_background(threading.get_native_id)) == own[0], "one thread"
