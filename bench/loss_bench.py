"""Crash without loss: a data plane (``python -m data_plane``, no control plane, so usage
stays in its spool) under steady load from concurrent clients is killed with SIGKILL; every
request that got an answer is then looked for in the spool it left. The default mode loses
what waited in memory for the next batch (the loss window); the durable-audit mode, where an
answer is released only once its record is on disk, loses nothing. Also measured: what the
durable mode adds to the latency of an answer (group commit with fsync).

Requests go to the mock provider, so the figures are the gateway's own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.procs import Proc, free_port, python_module
from data_plane.snapshots.store import SnapshotStore
from data_plane.usage.spool import SUFFIX, Spool
from shared.crypto import hash_key, new_aes_key
from shared.pb import snapshot_pb2
from shared.snapshots import policy_hash

TITLE = "Crash without loss: SIGKILL under load, default vs durable-audit mode"
TENANT, KEY = "t-loss", "sk-asc-loss-bench"
BODY = {"model": "chat", "messages": [{"role": "user", "content": "steady load"}]}


def snapshot() -> snapshot_pb2.Snapshot:
    policy = snapshot_pb2.Policy()
    policy.tenants.add(id=TENANT, slug="loss", active=True)
    policy.providers.add(
        id="p-mock", name="mock", kind=snapshot_pb2.PROVIDER_KIND_MOCK, enabled=True
    )
    policy.credentials.add(id="c-mock", tenant_id=TENANT, provider_id="p-mock")
    policy.models.add(id="m-mock", provider_id="p-mock", provider_model="mock", region="local")
    route = policy.routes.add(id="r-chat", tenant_id=TENANT, name="chat")
    route.targets.add(model_id="m-mock", credential_id="c-mock", weight=1)
    policy.keys.add(
        id="k-loss", tenant_id=TENANT, name="loss", key_hash=hash_key(KEY), route_ids=["r-chat"]
    )
    return snapshot_pb2.Snapshot(
        version=1, hash=policy_hash(policy), created_unix_ms=1_700_000_000_000, policy=policy
    )


@dataclass
class Outcome:
    answered: dict[str, float] = field(default_factory=dict)  # request id -> answered at
    latencies_ms: list[float] = field(default_factory=list)
    killed_at: float = 0.0
    recorded: set[str] = field(default_factory=set)

    @property
    def lost(self) -> list[str]:
        return [rid for rid in self.answered if rid not in self.recorded]

    @property
    def window_ms(self) -> float:
        """How long before the kill the oldest lost answer was given (0: nothing lost)."""
        lost = [self.answered[rid] for rid in self.lost]
        return (self.killed_at - min(lost)) * 1000 if lost else 0.0


def spooled_ids(spool_dir: Path) -> set[str]:
    """Request ids with both their usage event and their audit record in the spool."""
    events: set[str] = set()
    audited: set[str] = set()
    for path in sorted(spool_dir.glob(f"*{SUFFIX}")):
        batch = Spool.read(path)
        events.update(event.request_id for event in batch.events)
        audited.update(record.event.request_id for record in batch.audit)
    return events & audited


def crash_under_load(
    work: Path, *, durable: bool, seconds: float = 3.0, clients: int = 8
) -> Outcome:
    """Serve ``seconds`` of load from ``clients``, SIGKILL the data plane, read its spool."""
    state = work / ("durable" if durable else "default")
    SnapshotStore(state / "snapshot.bin", None).persist(snapshot())
    port = free_port()
    env = {
        "ASC_DP_PORT": str(port),
        "ASC_CONTROL_PLANE": "",
        "ASC_NODE_ID": "dp-loss",
        "ASC_DP_STATE_DIR": str(state),
        "ASC_SEAL_KEY": new_aes_key(),
        "ASC_DP_DURABLE_AUDIT_TENANTS": TENANT if durable else "",
    }
    proc = Proc(f"dp-{state.name}", python_module("data_plane"), work / "logs", env, port=port)
    try:
        proc.wait_http(f"{proc.url}/readyz")
        outcome = asyncio.run(_load(proc, seconds, clients))
    finally:
        if proc.alive():
            os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait()
    outcome.recorded = spooled_ids(state / "usage-spool")
    return outcome


async def _load(proc: Proc, seconds: float, clients: int) -> Outcome:
    outcome = Outcome()
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {KEY}"}

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with session.post(
                    f"{proc.url}/v1/chat/completions", json=BODY, headers=headers
                ) as response:
                    await response.read()
                    if response.status == 200:
                        outcome.answered[response.headers["x-request-id"]] = time.monotonic()
                        outcome.latencies_ms.append((time.monotonic() - started) * 1000)
            except (aiohttp.ClientError, OSError):
                return  # the process is gone

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        await asyncio.sleep(seconds)
        outcome.killed_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)  # mid-load: answers are in flight
        stop.set()
        await asyncio.gather(*tasks)
    return outcome


def _p(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


KILLS = 5  # per mode: where a kill falls in the batching cycle varies


def run() -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="asc-loss-") as tmp:
        for durable in (False, True):
            mode = "durable" if durable else "default"
            runs = [
                crash_under_load(Path(tmp) / f"{mode}-{i}", durable=durable) for i in range(KILLS)
            ]
            latencies = [ms for run in runs for ms in run.latencies_ms]
            results[f"{mode}: answered ({KILLS} kills)"] = sum(len(r.answered) for r in runs)
            results[f"{mode}: answered but lost"] = sum(len(r.lost) for r in runs)
            results[f"{mode}: largest loss window (ms)"] = max(r.window_ms for r in runs)
            results[f"{mode}: latency p50 (ms)"] = _p(latencies, 50)
            results[f"{mode}: latency p99 (ms)"] = _p(latencies, 99)
    return results
