"""The measuring side of the ingestion benchmark, run in its own process because it sets up
Django on the temporary database named by DATABASE_URL (``bench.ingest_bench`` creates and
drops that database). It migrates the database, builds usage batches as a data plane sends
them, times ``control_plane.usage.services.ingest_batch`` on them and prints one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid

from shared.audit import GENESIS, seal
from shared.pb import control_pb2

BATCH = 500
IN_FLIGHT = 2  # batches in flight at once in the last run


def _event(n: int, ids: dict[str, str], now_ms: int) -> control_pb2.UsageEvent:
    return control_pb2.UsageEvent(
        request_id=uuid.uuid4().hex,
        ts_unix_ms=now_ms + n,
        tenant_id=ids["tenant"],
        key_id=ids["key"],
        route_id=ids["route"],
        route_name="bench",
        model_id=ids["model"],
        provider_id=ids["provider"],
        credential_id=ids["credential"],
        region="local",
        prompt_tokens=40 + n % 50,
        completion_tokens=20 + n % 30,
        cost_nano_usd=18_000 + n % 1000,
        latency_ms=3,
        ttft_ms=2,
        snapshot_version=7,
        status_code=200,
        subject="alice@example.com",
    )


def batches(count: int, with_audit: bool, node: str) -> list[control_pb2.UsageBatch]:
    """``count`` batches of ``BATCH`` events; with audit records chained as a node seals them."""
    ids = {name: str(uuid.uuid4()) for name in ("tenant", "key", "route", "model")}
    ids |= {name: str(uuid.uuid4()) for name in ("provider", "credential")}
    now_ms = int(time.time() * 1000)
    chain, head, seq = f"{node}:boot", GENESIS, 0
    out = []
    for b in range(count):
        batch = control_pb2.UsageBatch(batch_id=f"{node}:boot:{b}", node_id=node)
        for i in range(BATCH):
            event = _event(b * BATCH + i, ids, now_ms)
            batch.events.append(event)
            if with_audit:
                seq += 1
                record = control_pb2.AuditRecord(
                    chain_id=chain, event=event, decision="allowed", guardrail_action="allow"
                )
                head = seal(record, head, seq).hash
                batch.audit.append(record)
        out.append(batch)
    return out


def backend_cpu(pid: int) -> float | None:
    """CPU seconds the PostgreSQL backend ``pid`` has used so far (None: the server is not on
    this machine, or its processes cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def timed(lanes: list[list[control_pb2.UsageBatch]]) -> dict[str, float]:
    """Ingest each lane's batches in order, the lanes side by side (a thread and a connection
    each, as the gRPC process's ingest threads do), each lane's first batch as a warm-up
    (connection, plans) before the clock starts: events/s, ms per batch (of one lane), the
    ingesting process's CPU and its PostgreSQL backends' CPU per event."""
    from django.db import connection, connections

    from control_plane.usage.services import ingest_batch

    start = threading.Barrier(len(lanes) + 1)
    server: list[float | None] = []  # each lane's backend's CPU seconds while timed

    def run(lane: list[control_pb2.UsageBatch]) -> None:
        try:
            ingest_batch(lane[0])
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend = cursor.fetchone()[0]
            start.wait()
            before = backend_cpu(backend)
            for batch in lane[1:]:
                ingest_batch(batch)
            after = backend_cpu(backend)
            server.append(None if before is None or after is None else after - before)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(lane,)) for lane in lanes]
    for thread in threads:
        thread.start()
    start.wait()
    started, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    events = sum(len(lane) - 1 for lane in lanes) * BATCH
    out = {
        "events_per_s": events / elapsed,
        "ms_per_batch": elapsed / (len(lanes[0]) - 1) * 1000,
        "cpu_us_per_event": cpu / events * 1e6,
    }
    used = [seconds for seconds in server if seconds is not None]
    if len(used) == len(lanes):
        out["server_cpu_us_per_event"] = sum(used) / events * 1e6
    return out


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from control_plane.usage.services import rollup_spend

    call_command("migrate", verbosity=0, interactive=False)
    assert connection.vendor == "postgresql", connection.vendor
    results: dict[str, float] = {}
    for label, with_audit in (("usage", False), ("usage+audit", True)):
        figures = timed([batches(count, with_audit, f"bench-{label}")])
        results |= {f"{label}_{name}": value for name, value in figures.items()}
    started = time.perf_counter()
    rolled = rollup_spend()
    results["rollup_events"] = rolled
    results["rollup_events_per_s"] = rolled / (time.perf_counter() - started)
    # The same events with audit records from IN_FLIGHT nodes at once, a chain each.
    lanes = [batches(count // IN_FLIGHT + 1, True, f"bench-flight-{i}") for i in range(IN_FLIGHT)]
    figures = timed(lanes)
    results |= {f"in_flight_{name}": value for name, value in figures.items()}
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
