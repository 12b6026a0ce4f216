"""Snapshot scale: a policy with 100,000 keys and 10,000 routes (100 tenants; see
``workload.Shape``).

In process: its encoded size, the time to decode it, to verify its hash and compile it in one
go (``SnapshotStore.compile``), and the full apply as the config client does it
(``PolicyApplier.full_encoded``): with the checker process, and with none (all on the loop,
in slices), each with a 1 ms ticker on a uvloop event loop to show how late it runs.

End to end: a real data-plane process (``python -m data_plane``) connected to a stand-in
control plane (``bench.fake_control_plane``) serves 500 requests per second to the fake
upstream while the large snapshot is pushed to it; measured are the time from the push to the
node's ACK (transfer, decode, verify, compile, swap, disk copy), the node's memory before and
after, and the slowest request of the run (a request stalled by the apply shows there).
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from bench import fake_control_plane, loadgen, profile, snapshot_delta
from bench.loadgen import Request
from bench.procs import Proc, free_port, python_module, rss_kib, running, wait_until
from bench.report import Report
from bench.workload import BODY, SEAL_KEY, Shape, build_snapshot, key_secret
from data_plane.snapshots.applier import PolicyApplier, split_snapshot
from data_plane.snapshots.store import SnapshotStore
from shared.crypto import Keyring
from shared.pb import snapshot_pb2

TITLE = "snapshot scale: 100,000 keys and 10,000 routes"

LARGE = Shape(tenants=100, routes=100, keys=1000)
SMALL = Shape(tenants=1, routes=1, keys=1)
STALL_LIMIT_MS = 50.0
APPLY_LIMIT_S = 1.0
RATE = 500.0
LOAD_SECONDS = 8.0
PUSH_AFTER_S = 2.5  # into the load run: the push lands well inside the measured window


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


async def _max_lag_while(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Await ``work`` while a 1 ms ticker runs on the loop; returns (the ticker's worst
    lateness, the work's duration), in seconds."""
    done = False
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - before - 0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    worst = 0.0
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    done = True
    await task
    return worst, took


async def _all_on_the_loop(store: SnapshotStore, payload: bytes) -> None:
    applier = PolicyApplier(store, offload_bytes=len(payload) + 1)  # no checker process
    try:
        await applier.full_encoded(*split_snapshot(payload))
    finally:
        applier.close()


def _in_process(report: Report, snapshot: snapshot_pb2.Snapshot) -> dict[str, float]:
    payload, encode_s = _timed(lambda: snapshot.SerializeToString(deterministic=True))
    decoded, decode_s = _timed(lambda: snapshot_pb2.Snapshot.FromString(payload))
    store = SnapshotStore(Path(os.devnull), Keyring(SEAL_KEY))
    compiled, compile_s = _timed(lambda: store.compile(decoded))
    assert len(compiled.keys_by_hash) == LARGE.total_keys
    del compiled
    gc.collect()
    # What the config client does when no checker process answers: everything on the loop,
    # in slices (index, hash, consistency check, decode, compile).
    lag_s, serving_s = uvloop.run(_max_lag_while(lambda: _all_on_the_loop(store, payload)))
    with tempfile.TemporaryDirectory(prefix="asc-bench-delta-") as tmp:
        incremental = uvloop.run(
            snapshot_delta.measure(decoded, Keyring(SEAL_KEY), Path(tmp), _max_lag_while)
        )
    figures = {
        "size_mib": len(payload) / 2**20,
        "encode_s": encode_s,
        "decode_s": decode_s,
        "compile_s": compile_s,
        "serving_compile_s": serving_s,
        "loop_lag_ms": lag_s * 1000,
        **incremental,
    }
    report.table(
        ["in process", "figure"],
        [
            ["encoded size", f"{figures['size_mib']:.1f} MiB ({len(payload):,} bytes)"],
            ["encode (control plane side)", f"{encode_s * 1000:.0f} ms"],
            ["decode (gRPC, on the data plane's event loop)", f"{decode_s * 1000:.0f} ms"],
            ["verify hash + compile (SnapshotStore.compile)", f"{compile_s * 1000:.0f} ms"],
            [
                "full apply with no checker process (all on the loop, in slices)",
                f"{serving_s * 1000:.0f} ms",
            ],
            ["  worst lateness of a 1 ms loop ticker meanwhile", f"{lag_s * 1000:.1f} ms"],
            [
                "full apply as the config client does it (PolicyApplier.full_encoded)",
                f"{incremental['full_apply_s'] * 1000:.0f} ms",
            ],
            [
                "  CPU time of the event loop's thread meanwhile (ticker included)",
                f"{incremental['full_loop_cpu_s'] * 1000:.0f} ms",
            ],
            [
                "  worst lateness of a 1 ms loop ticker meanwhile",
                f"{incremental['full_lag_ms']:.1f} ms",
            ],
            [
                "  full disk copy written (before the ACK)",
                f"{incremental['persist_full_s'] * 1000:.0f} ms",
            ],
            [
                "  then, still building the index for deltas (after the ACK)",
                f"{incremental['index_after_s'] * 1000:.0f} ms",
            ],
            [
                "one key created: the delta a node receives",
                f"{incremental['delta_bytes']:.0f} bytes",
            ],
            [
                "  applied (index, hash, check, compile, swap)",
                f"{incremental['delta_apply_ms']:.2f} ms",
            ],
            [
                "  then the full disk copy, before the ACK",
                f"{incremental['delta_persist_ms']:.0f} ms",
            ],
        ],
    )
    return figures


async def _end_to_end(work: Path, upstream_base: str, report: Report) -> dict[str, float]:
    fake = fake_control_plane.FakeControlPlane()
    grpc_port = free_port()
    server = await fake_control_plane.start(fake, grpc_port)
    dp_port = free_port()
    env = {
        "ASC_DP_PORT": str(dp_port),
        "ASC_CONTROL_PLANE": f"127.0.0.1:{grpc_port}",
        "ASC_NODE_ID": "dp-snapshot-bench",
        "ASC_DP_STATE_DIR": str(work / "dp-state"),
        "ASC_SEAL_KEY": SEAL_KEY,
        "ASC_LOG_LEVEL": "WARNING",
    }
    small = build_snapshot(SMALL, 1, upstream_base)
    large_pb = build_snapshot(LARGE, 2, upstream_base)
    delta = snapshot_delta.delta_between(large_pb, snapshot_delta.with_new_key(large_pb, 3))
    large = large_pb.SerializeToString(deterministic=True)
    del large_pb
    dp = Proc("dp-snapshot", python_module("data_plane"), work / "logs", env, port=dp_port)
    try:
        first = fake.push(small)
        async with asyncio.timeout(60):
            ack = await fake.wait_ack(first)
        if ack.error:
            raise RuntimeError(f"the data plane refused the small snapshot: {ack.error}")
        request = Request(
            f"{dp.url}/v1/chat/completions", BODY, {"Authorization": f"Bearer {key_secret(0, 0)}"}
        )
        await asyncio.to_thread(
            wait_until,
            lambda: loadgen.send_once(request) == 200,
            30,
            "the data plane serving the small snapshot",
        )
        rss_before = rss_kib(dp.pid)
        load = asyncio.create_task(
            asyncio.to_thread(loadgen.run_open_loop, request, RATE, LOAD_SECONDS, 1.0, samples=True)
        )
        await asyncio.sleep(1.0 + PUSH_AFTER_S)
        recording = (
            profile.record(dp.pid, LOAD_SECONDS - PUSH_AFTER_S, work / "dp-apply.prof")
            if profile.enabled()
            else None
        )
        pushed = fake.push(large)
        async with asyncio.timeout(60):
            ack = await fake.wait_ack(pushed)
        if ack.error:
            raise RuntimeError(f"the data plane refused the large snapshot: {ack.error}")
        await asyncio.sleep(1.0)  # under load still: one key created, as a delta
        delta_pushed = fake.push_delta(delta)
        async with asyncio.timeout(60):
            delta_ack = await fake.wait_ack(delta_pushed)
        if delta_ack.error:
            raise RuntimeError(f"the data plane refused the delta: {delta_ack.error}")
        result = await load
        if recording is not None:
            report.lines += profile.lines("data plane applying the large snapshot", recording)
        await asyncio.sleep(1.0)
        rss_after = rss_kib(dp.pid)
        if not dp.alive():
            raise RuntimeError(f"the data plane died:\n{dp.tail()}")
    finally:
        dp.stop()
        await server.stop(grace=None)
    latencies = sorted(lat for _, lat, status, _ in result["samples"] if status == 200)
    return {
        "apply_s": ack.seconds,
        "delta_ack_ms": delta_ack.seconds * 1000,
        "rss_before_mib": rss_before / 1024,
        "rss_after_mib": rss_after / 1024,
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "p99_ms": result["p99_us"] / 1000,
        "p50_ms": result["p50_us"] / 1000,
        "over_50ms": sum(1 for lat in latencies if lat * 1000 > STALL_LIMIT_MS),
        "sent": result["sent"],
        "failed": result["sent"] - result["ok"],
    }


def run() -> Report:
    report = Report()
    snapshot, build_s = _timed(lambda: build_snapshot(LARGE, 2))
    report.note(
        f"{LARGE.total_keys:,} keys, {LARGE.total_routes:,} routes ({LARGE.targets} targets "
        f"each), {LARGE.tenants} tenants with a sealed credential, a guardrail policy and a "
        f"budget each, {len(snapshot.policy.limits):,} limits (built in {build_s:.1f} s)."
    )
    figures = _in_process(report, snapshot)
    del snapshot
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="asc-bench-snap-") as tmp:
        work = Path(tmp)
        port = free_port()
        with running(
            "upstream",
            python_module("bench.upstream", "--port", str(port)),
            work / "logs",
            ready_url=f"http://127.0.0.1:{port}/health",
        ):
            e2e = uvloop.run(_end_to_end(work, f"http://127.0.0.1:{port}/v1", report))
    report.table(
        ["data-plane process, pushed while serving 500 req/s", "figure"],
        [
            ["push to ACK (transfer, decode, compile, swap, disk copy)", f"{e2e['apply_s']:.2f} s"],
            [
                "one key created: delta push to ACK (incl. full disk copy)",
                f"{e2e['delta_ack_ms']:.0f} ms",
            ],
            ["RSS before (1-key snapshot)", f"{e2e['rss_before_mib']:.0f} MiB"],
            ["RSS after", f"{e2e['rss_after_mib']:.0f} MiB"],
            ["RSS growth", f"{e2e['rss_after_mib'] - e2e['rss_before_mib']:.0f} MiB"],
            ["requests in the run (failed)", f"{e2e['sent']:.0f} ({e2e['failed']:.0f})"],
            ["request latency p50 / p99", f"{e2e['p50_ms']:.2f} / {e2e['p99_ms']:.2f} ms"],
            ["slowest request", f"{e2e['max_ms']:.1f} ms"],
            [f"requests slower than {STALL_LIMIT_MS:.0f} ms", f"{e2e['over_50ms']:.0f}"],
        ],
    )
    report.check(
        "100k keys: push to ACK on a serving data plane",
        f"{e2e['apply_s']:.2f} s",
        f"< {APPLY_LIMIT_S:.0f} s",
        e2e["apply_s"] < APPLY_LIMIT_S,
    )
    report.check(
        "100k keys: slowest request while applying",
        f"{e2e['max_ms']:.1f} ms ({e2e['over_50ms']:.0f} requests over {STALL_LIMIT_MS:.0f} ms)",
        f"<= {STALL_LIMIT_MS:.0f} ms",
        e2e["max_ms"] <= STALL_LIMIT_MS and e2e["failed"] == 0,
    )
    report.check(
        "one key created in 100k: bytes sent to each node",
        f"{figures['delta_bytes']:.0f} B",
        "< 10 KiB",
        figures["delta_bytes"] < 10 * 1024,
    )
    report.check(
        "one key created in 100k: delta applied (in process)",
        f"{figures['delta_apply_ms']:.2f} ms",
        "< 10 ms",
        figures["delta_apply_ms"] < 10,
    )
    report.check(
        "100k keys: full apply as the config client does it, worst event-loop lag (in process)",
        f"{figures['full_lag_ms']:.1f} ms",
        f"<= {STALL_LIMIT_MS:.0f} ms",
        figures["full_lag_ms"] <= STALL_LIMIT_MS,
    )
    report.check(
        "100k keys: full apply with no checker process, worst event-loop lag (in process)",
        f"{figures['loop_lag_ms']:.1f} ms",
        f"<= {STALL_LIMIT_MS:.0f} ms",
        figures["loop_lag_ms"] <= STALL_LIMIT_MS,
    )
    return report
