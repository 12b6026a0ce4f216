"""Usage batches' node status, written at most once per interval per node (no database: the
writes are recorded)."""

from __future__ import annotations

from control_plane.grpc_api.status import Health, NodeStatus
from shared.pb import control_pb2


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def health(version: int, requests: int, errors: int = 0) -> control_pb2.VersionHealth:
    return control_pb2.VersionHealth(version=version, requests=requests, server_errors=errors)


def recorder() -> tuple[list[tuple[dict[str, int], Health]], NodeStatus, Clock]:
    writes: list[tuple[dict[str, int], Health]] = []
    clock = Clock()

    async def write(seen: dict[str, int], signals: Health) -> None:
        writes.append((seen, signals))

    return writes, NodeStatus(write, interval=1.0, clock=clock), clock


async def test_a_nodes_first_batch_is_written_before_it_is_answered() -> None:
    writes, status, _ = recorder()
    await status.batch("dp-1", 7, [health(3, 10)])
    assert writes == [({"dp-1": 7}, {"dp-1": [health(3, 10)]})]


async def test_batches_within_the_interval_are_written_once_after_it_summed_by_version() -> None:
    writes, status, clock = recorder()
    await status.batch("dp-1", 1, [health(3, 10)])
    clock.now += 0.2
    await status.batch("dp-1", 2, [health(3, 5, errors=1), health(4, 2)])
    await status.batch("dp-1", 4, [health(3, 1)])
    await status.batch("dp-2", 9, [])  # another node's first batch: at once
    assert writes[1:] == [({"dp-2": 9}, {})]
    await status.flush()
    assert len(writes) == 2, "dp-1 was written 0.2 s ago"
    clock.now += 0.8
    await status.flush()
    assert writes[2:] == [({"dp-1": 4}, {"dp-1": [health(3, 6, errors=1), health(4, 2)]})]
    await status.flush()
    assert len(writes) == 3, "nothing more was noted"


async def test_close_writes_what_is_noted() -> None:
    writes, status, clock = recorder()
    await status.batch("dp-1", 1, [])
    clock.now += 0.1
    await status.batch("dp-1", 0, [health(5, 3)])
    await status.close()
    assert writes[1:] == [({"dp-1": 0}, {"dp-1": [health(5, 3)]})]


async def test_a_replay_says_the_node_is_alive_and_adds_no_health() -> None:
    writes, status, clock = recorder()
    await status.batch("dp-1", 1, [health(5, 3)])
    clock.now += 0.1
    await status.batch("dp-1", 1, [])
    clock.now += 1.0
    await status.flush()
    assert writes[1:] == [({"dp-1": 1}, {})]
