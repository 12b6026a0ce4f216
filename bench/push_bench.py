"""Snapshot push-to-ACK latency with 10 data planes on one control plane.

The real control plane (web + gRPC, ``bench.system``) and 10 data-plane processes connected to
it. A route is changed through the REST API (PATCH routes/<id>/, alternating its retry count);
the time runs from the moment the API call starts until every data plane serves the new
snapshot version (each /readyz is polled every 5 ms). Repeated ``ROUNDS`` times; afterwards
the control plane's own nodes API is checked to hold every node's ACK of the last version.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import uvloop

from bench.loadgen import percentile
from bench.report import Report
from bench.system import AscSystem, asc_system, wait_serving

TITLE = "snapshot push-to-ACK latency, 10 data planes, route changed through the REST API"

NODES = 10
ROUNDS = 20
TARGET_S = 1.0
POLL_S = 0.005


async def _until_all_serve(session: aiohttp.ClientSession, urls: list[str], version: int) -> float:
    """perf_counter time at which the last of ``urls`` reported ``version`` or later."""

    async def one(url: str) -> float:
        while True:
            with contextlib.suppress(aiohttp.ClientError, ValueError):
                async with session.get(f"{url}/readyz") as response:
                    body = await response.json()
                if int(body.get("snapshot_version", 0)) >= version:
                    return time.perf_counter()
            await asyncio.sleep(POLL_S)

    async with asyncio.timeout(30):
        return max(await asyncio.gather(*(one(url) for url in urls)))


def _acked(system: AscSystem, names: set[str], version: int, timeout: float = 30) -> float:
    """perf_counter time at which the control plane has recorded every node's ACK of
    ``version`` (its nodes API polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = system.api.results("nodes/?limit=1000")
        if sum(
            1 for n in nodes if n["node_id"] in names and n["applied_version"] >= version
        ) == len(names):
            return time.perf_counter()
        time.sleep(0.01)
    raise TimeoutError(f"not every node ACKed v{version} within {timeout:.0f} s")


async def _rounds(
    system: AscSystem, route_id: str, urls: list[str], names: set[str]
) -> dict[str, list[float]]:
    """Per round, in seconds from the start of the API call: the call itself, every data plane
    serving the new version, the control plane holding every ACK."""
    rounds: dict[str, list[float]] = {"call": [], "serving": [], "acked": []}
    async with aiohttp.ClientSession() as session:
        for n in range(ROUNDS):
            expected = await asyncio.to_thread(system.latest_version) + 1
            body = {"max_retries": (n + 1) % 3}

            def change(body: dict[str, int] = body) -> float:
                system.api.call("PATCH", f"routes/{route_id}/", body)
                return time.perf_counter()

            started = time.perf_counter()
            patch = asyncio.create_task(asyncio.to_thread(change))
            done = await _until_all_serve(session, urls, expected)
            acked = await asyncio.to_thread(_acked, system, names, expected)
            rounds["call"].append(await patch - started)
            rounds["serving"].append(done - started)
            rounds["acked"].append(acked - started)
            await asyncio.sleep(0.3)  # let the fleet settle: each round is one isolated change
    return rounds


def run() -> Report:
    report = Report()
    with asc_system() as system:
        provisioned = system.provision("http://127.0.0.1:9/v1", route_name="pushed")
        version = system.latest_version()
        planes = [system.start_data_plane(f"dp-push-{i:02d}") for i in range(NODES)]
        for proc in planes:
            wait_serving(proc, version)
        names = {proc.name for proc in planes}
        rounds = uvloop.run(_rounds(system, provisioned.route_id, [p.url for p in planes], names))
        dead = [p.name for p in planes if not p.alive()]
    labels = {
        "call": "the API call itself (PATCH; the publish runs in it)",
        "serving": f"until all {NODES} data planes serve the new version",
        "acked": f"until the control plane holds all {NODES} ACKs",
    }
    rows = []
    for name, label in labels.items():
        values = sorted(rounds[name])
        rows.append(
            [
                label,
                *(
                    f"{v * 1000:.0f} ms"
                    for v in (percentile(values, 0.5), percentile(values, 0.99), values[-1])
                ),
            ]
        )
    report.table([f"from the API call's start, {ROUNDS} route changes", "p50", "p99", "max"], rows)
    report.note(
        f"/readyz polled every {POLL_S * 1000:.0f} ms, the nodes API every 10 ms; with {ROUNDS} "
        f"rounds p99 is the slowest round."
        + (f" Data planes that died: {', '.join(dead)}." if dead else "")
    )
    acked = sorted(rounds["acked"])
    p50, p99 = percentile(acked, 0.5), percentile(acked, 0.99)
    report.check(
        f"push-to-ACK p99, {NODES} data planes",
        f"{p99 * 1000:.0f} ms (p50 {p50 * 1000:.0f} ms)",
        f"< {TARGET_S * 1000:.0f} ms",
        p99 < TARGET_S and not dead,
    )
    return report
