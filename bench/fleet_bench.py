"""A simulated fleet of 1,000 data planes on one control-plane gRPC process.

The real control plane (web + one ``run_grpc`` process, ``bench.system``) and simulated nodes
(``bench.fleet_node``: real gRPC streams that say hello, ACK what they receive, send usage
batches and lease asks, reconnect with jittered backoff; nothing compiled) in two worker
processes. Measured:

- the control plane's memory (RSS of the gRPC process) with 0, 100, 500 and 1,000 streams;
- 20 route changes through the REST API: from the API call's start until all nodes have ACKed
  the new version (the last node's ACK), p50 / p99 / max;
- revocations: a key created, then revoked through the API; for every node, the time from the
  revoke call's start until the key is gone from the policy it holds (p50 / p99 / max over all
  nodes and revocations), split in two: the call itself (the publish runs in it), and from
  its return until each node dropped the key (the gRPC process's part and the nodes');
- the CPU each part used (the gRPC process, the web process, the simulated nodes, the bench
  itself) and the whole machine, in cores, while the keys were created and revoked and over a
  few seconds with no change in flight: the simulated nodes and PostgreSQL share the machine's
  cores with the control plane;
- a reconnect storm: the gRPC process stopped, a change made meanwhile, the process started
  again; the time from its start until every node holds the new version again.

With ``ASC_BENCH_PROFILE=1``, py-spy samples the gRPC process, the web process and one worker
of simulated nodes during the revocations (``bench.profile``).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

from bench import profile
from bench.loadgen import percentile
from bench.procs import REPO, cpu_seconds, rss_kib
from bench.report import Report
from bench.system import AscSystem, asc_system
from data_plane.backoff import RECONNECT_S

TITLE = "fleet: 1,000 simulated data planes on one control-plane gRPC process"

STEPS = (100, 500, 1000)  # streams at which the control plane's memory is read
WORKERS = 2
ROUNDS = 20
REVOCATIONS = 5
ACK_TARGET_S = 2.0
REVOKE_TARGET_S = 1.0
CHATTER_S = 10.0  # each node's usage batch and lease ask, every this many seconds (jittered)
WAIT_S = 120.0  # longest wait for the fleet to catch up before the run fails
DOWN_S = 3.0  # how long the gRPC process stays down in the reconnect storm
QUIET_S = 3.0  # the CPU each part uses with no change in flight is read over this long
PROFILE_S = 15.0  # ASC_BENCH_PROFILE=1: the processes sampled for this long from the revocations


@dataclass
class Fleet:
    """Worker processes of simulated nodes and what they report."""

    addr: str
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    held: dict[int, int] = field(default_factory=dict)  # node -> version it holds
    # node -> (version, monotonic time) of every version it came to hold
    history: dict[int, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    gone: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    ready: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def add(self, first: int, count: int) -> None:
        """Start ``count`` more nodes (ids from ``first``) and wait until each holds a version."""
        per = max(1, count // WORKERS)
        for start in range(first, first + count, per):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.fleet_node",
                "--addr",
                self.addr,
                "--first",
                str(start),
                "--count",
                str(min(per, first + count - start)),
                "--every",
                str(CHATTER_S),
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
                limit=2**20,
            )
            self.procs.append(proc)
            self.readers.append(asyncio.create_task(self._read(proc)))
            async with asyncio.timeout(120):
                await self.ready.get()

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            event = json.loads(line)
            if "ready" in event:
                self.ready.put_nowait(event["ready"])
            elif "gone" in event:
                self.gone[event["gone"]][event["node"]] = event["t"]
            else:
                node, version, t = event["node"], event["version"], event["t"]
                self.held[node] = version
                self.history[node].append((version, t))
            self.changed.set()

    async def all_hold(self, version: int) -> float:
        """The time (monotonic) the last node came to hold ``version`` or a later one."""
        async with asyncio.timeout(WAIT_S):
            while any(v < version for v in self.held.values()):
                self.changed.clear()
                await self.changed.wait()
        return max(min(t for v, t in self.history[node] if v >= version) for node in self.held)

    async def all_lost(self, key_id: str) -> list[float]:
        async with asyncio.timeout(WAIT_S):
            while len(self.gone[key_id]) < len(self.held):
                self.changed.clear()
                await self.changed.wait()
        return list(self.gone[key_id].values())

    async def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            await proc.wait()
        for reader in self.readers:
            reader.cancel()


def _record_revocations(system: AscSystem, fleet: Fleet) -> list[tuple[str, profile.Recording]]:
    """With ASC_BENCH_PROFILE=1, py-spy on the gRPC process, the web process (the revoke
    call and its publish) and one worker of simulated nodes while the keys are revoked."""
    if not profile.enabled():
        return []
    procs = system.stack.procs
    targets = [
        ("control-plane gRPC process during the revocations", procs["grpc"].pid),
        ("control-plane web process during the revocations", procs["web"].pid),
        ("one worker of simulated nodes during the revocations", fleet.procs[0].pid),
    ]
    work = system.state_dir
    return [
        (title, profile.record(pid, PROFILE_S, work / f"fleet-{n}.prof"))
        for n, (title, pid) in enumerate(targets)
    ]


def _cpu(system: AscSystem, fleet: Fleet) -> dict[str, float]:
    """CPU seconds used so far by each part of the run, and by the whole machine (every
    core, every process: PostgreSQL and whatever else runs beside the bench; PostgreSQL is not
    shown apart, as its backends come and go with their CPU time)."""
    procs = system.stack.procs
    own = resource.getrusage(resource.RUSAGE_SELF)  # this process alone, not its children
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:9]]  # up to steal; guests are in user
    idle = ticks[3] + ticks[4]  # idle, iowait
    return {
        "gRPC process": cpu_seconds(procs["grpc"].pid),
        "web process": cpu_seconds(procs["web"].pid),
        "simulated nodes": sum(cpu_seconds(p.pid) for p in fleet.procs),
        "the bench itself": own.ru_utime + own.ru_stime,
        "machine": (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"),
    }


def _grpc_rss_mib(system: AscSystem) -> float:
    return rss_kib(system.stack.procs["grpc"].pid) / 1024


async def _measure(system: AscSystem, route_id: str, tenant: str) -> dict[str, object]:
    api = system.api
    fleet = Fleet(system.stack.grpc_addr)
    figures: dict[str, object] = {}
    try:
        await asyncio.sleep(1.0)
        memory = {0: _grpc_rss_mib(system)}
        started = 0
        for total in STEPS:
            await fleet.add(started, total - started)
            started = total
            await asyncio.sleep(2.0)  # let the first usage batches and lease asks settle
            memory[total] = _grpc_rss_mib(system)
        figures["memory"] = memory

        acks: list[float] = []
        for n in range(ROUNDS):
            version = await asyncio.to_thread(system.latest_version) + 1
            began = time.monotonic()
            body = {"max_retries": (n + 1) % 3}
            await asyncio.to_thread(api.call, "PATCH", f"routes/{route_id}/", body)
            acks.append(await fleet.all_hold(version) - began)
            await asyncio.sleep(0.3)
        figures["acks"] = acks

        revoked: list[float] = []
        calls: list[float] = []
        after_call: list[float] = []
        quiet = _cpu(system, fleet)
        await asyncio.sleep(QUIET_S)  # no change: the fleet's usage batches and lease asks only
        cpu_before, wall_before = _cpu(system, fleet), time.monotonic()
        figures["quiet_cpu"] = {name: cpu_before[name] - quiet[name] for name in quiet}
        recordings = _record_revocations(system, fleet)
        for n in range(REVOCATIONS):
            key = await asyncio.to_thread(
                api.call,
                "POST",
                "keys/",
                {"tenant": tenant, "name": f"fleet-{n}", "routes": [], "expires_at": None},
            )
            await fleet.all_hold(await asyncio.to_thread(system.latest_version))
            began = time.monotonic()
            await asyncio.to_thread(api.call, "POST", f"keys/{key['id']}/revoke/", {})
            returned = time.monotonic()
            lost = await fleet.all_lost(str(key["id"]))
            revoked += [t - began for t in lost]
            calls.append(returned - began)
            after_call += [t - returned for t in lost]
            await asyncio.sleep(0.3)
        cpu_after = _cpu(system, fleet)
        figures["revocation_cpu"] = {
            name: cpu_after[name] - cpu_before[name] for name in cpu_before
        } | {"wall": time.monotonic() - wall_before}
        figures["revoked"] = revoked
        figures["revoke_calls"] = calls
        figures["after_call"] = after_call
        figures["profiles"] = [
            line for title, rec in recordings for line in profile.lines(title, rec, 25)
        ]

        system.stack.stop("grpc")
        await asyncio.sleep(DOWN_S / 2)
        await asyncio.to_thread(api.call, "PATCH", f"routes/{route_id}/", {"max_retries": 3})
        version = await asyncio.to_thread(system.latest_version)
        await asyncio.sleep(DOWN_S / 2)
        began = time.monotonic()
        system.stack.start_grpc()
        figures["storm_s"] = await fleet.all_hold(version) - began
    finally:
        await fleet.stop()
    return figures


def _row(label: str, values: list[float]) -> list[str]:
    ordered = sorted(values)
    return [
        label,
        *(f"{v * 1000:.0f} ms" for v in (percentile(ordered, 0.5), percentile(ordered, 0.99))),
        f"{ordered[-1] * 1000:.0f} ms",
    ]


def run() -> Report:
    report = Report()
    with asc_system() as system:
        provisioned = system.provision("http://127.0.0.1:9/v1", route_name="fleet")
        figures = asyncio.run(_measure(system, provisioned.route_id, provisioned.tenant_id))
    memory: dict[int, float] = figures["memory"]  # type: ignore[assignment]  # built above
    acks: list[float] = figures["acks"]  # type: ignore[assignment]  # built above
    revoked: list[float] = figures["revoked"]  # type: ignore[assignment]  # built above
    calls: list[float] = figures["revoke_calls"]  # type: ignore[assignment]  # built above
    after_call: list[float] = figures["after_call"]  # type: ignore[assignment]  # built above
    storm = float(figures["storm_s"])  # type: ignore[arg-type]  # built above
    profiles: list[str] = figures["profiles"]  # type: ignore[assignment]  # built above
    cpu: dict[str, float] = figures["revocation_cpu"]  # type: ignore[assignment]  # built above
    quiet: dict[str, float] = figures["quiet_cpu"]  # type: ignore[assignment]  # built above
    per_100 = {n: (memory[n] - memory[0]) / (n / 100) for n in STEPS}
    report.table(
        ["control-plane gRPC process", "RSS", "MiB per 100 streams"],
        [["no streams", f"{memory[0]:.0f} MiB", ""]]
        + [[f"{n} streams", f"{memory[n]:.0f} MiB", f"{per_100[n]:.1f}"] for n in STEPS],
    )
    report.table(
        [f"{STEPS[-1]} nodes, from the API call's start", "p50", "p99", "max"],
        [
            _row(f"a route changed: until all ACKed ({ROUNDS} changes)", acks),
            _row(f"a key revoked: until each node dropped it ({REVOCATIONS} keys)", revoked),
            _row("  the revoke API call itself (the publish runs in it)", calls),
            _row("  from the call's return until each node dropped it", after_call),
        ],
    )
    wall = cpu.pop("wall")
    report.table(
        [
            f"CPU in cores: {REVOCATIONS} keys created and revoked ({wall:.1f} s)",
            "cores",
            f"no change in flight ({QUIET_S:.0f} s)",
        ],
        [
            [name, f"{seconds / wall:.2f}", f"{quiet[name] / QUIET_S:.2f}"]
            for name, seconds in cpu.items()
        ],
    )
    report.note(
        f"Reconnect storm: the gRPC process stopped for {DOWN_S:.0f} s with a change made "
        f"meanwhile, then started; all {STEPS[-1]} nodes held the new version {storm:.1f} s "
        f"after the start (their backoff: {RECONNECT_S[0]} s doubling to {RECONNECT_S[1]:.0f} s, "
        "jittered)."
    )
    acks_sorted, revoked_sorted = sorted(acks), sorted(revoked)
    report.check(
        f"a change ACKed by all {STEPS[-1]} nodes, p99",
        f"{percentile(acks_sorted, 0.99) * 1000:.0f} ms",
        f"< {ACK_TARGET_S * 1000:.0f} ms",
        percentile(acks_sorted, 0.99) < ACK_TARGET_S,
    )
    report.check(
        "control-plane memory per 100 streams, flat from 100 to 1,000",
        " / ".join(f"{per_100[n]:.1f}" for n in STEPS) + " MiB",
        "within 2x",
        max(per_100.values()) <= 2 * max(min(per_100.values()), 0.1),
    )
    report.check(
        f"a revoked key refused by every node, p99 over {len(revoked)} node-revocations",
        f"{percentile(revoked_sorted, 0.99) * 1000:.0f} ms",
        f"< {REVOKE_TARGET_S * 1000:.0f} ms",
        percentile(revoked_sorted, 0.99) < REVOKE_TARGET_S,
    )
    report.check("reconnect storm: all nodes current again", f"{storm:.1f} s", "reported", True)
    report.lines += profiles
    return report
