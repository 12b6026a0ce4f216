"""The measuring side of the export benchmark, in its own process on the temporary database
``bench.export_bench`` hands it: fills the usage table with ``rows`` records (one INSERT ...
SELECT over generate_series, as ingestion would have stored them), then exports them through
the REST API (``GET /api/v1/usage/export/``, the Django test client, consuming the stream a
chunk at a time) at several sizes, sampling the process's resident memory after every chunk.
Prints one JSON object."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2026, 1, 1, tzinfo=UTC)

FILL = """
INSERT INTO asc_usage_usagerecord (
    request_id, ts, node_id, tenant_id, key_id, route_id, route_name, model_id, provider_id,
    credential_id, region, subject, prompt_tokens, completion_tokens, cached_prompt_tokens,
    cost_nano_usd, latency_ms, ttft_ms, snapshot_version, status_code, stream, error_code,
    fallbacks, rolled_up)
SELECT 'req-' || g, %(start)s::timestamptz + g * interval '10 ms', 'dp-bench-1',
    %(tenant)s, %(key)s, %(route)s, 'chat', %(model)s, %(provider)s, %(credential)s, 'eu',
    'alice@example.com', 40 + g %% 50, 20 + g %% 30, 0, 18000 + g %% 1000, 3, 2, 7, 200,
    false, '', '[]'::jsonb, true
FROM generate_series(%(first)s, %(last)s) AS g
"""


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    """CPU time of this process (what the export costs the web worker, whatever the load)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fill(rows: int) -> None:
    import uuid

    from django.db import connection, transaction

    ids = {n: str(uuid.uuid4()) for n in ("tenant", "key", "route", "model", "provider")}
    ids["credential"] = str(uuid.uuid4())
    step = 100_000
    for first in range(0, rows, step):
        with transaction.atomic(), connection.cursor() as cursor:
            last = min(rows, first + step) - 1
            params: dict[str, Any] = {**ids, "start": START, "first": first, "last": last}
            cursor.execute(FILL, params)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE asc_usage_usagerecord")


def export(client: Any, rows: int, fmt: str) -> dict[str, float]:
    """Export the first ``rows`` records (a period holding exactly them)."""
    until = (START + timedelta(milliseconds=10 * rows)).isoformat().replace("+00:00", "Z")
    since = START.isoformat().replace("+00:00", "Z")
    before = rss_kib()
    peak = before
    started, cpu = time.perf_counter(), cpu_seconds()
    response = client.get(f"/api/v1/usage/export/?since={since}&until={until}&format={fmt}")
    assert response.status_code == 200, response.status_code
    size, last = 0, b""
    for chunk in response.streaming_content:
        size += len(chunk)
        last = chunk
        peak = max(peak, rss_kib())
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    text = last.decode().removeprefix("# trailer ")
    trailer = json.loads(text)
    trailer = trailer.get("trailer", trailer)
    assert trailer["count"] == rows, (trailer["count"], rows)
    return {
        "rows": rows,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "rows_per_cpu_s": rows / cpu,
        "mib": size / 2**20,
        "rss_before_mib": before / 1024,
        "rss_peak_mib": peak / 1024,
    }


def main() -> None:
    sizes = [int(n) for n in sys.argv[1].split(",")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0, interactive=False)
    assert connection.vendor == "postgresql", connection.vendor
    started = time.perf_counter()
    fill(max(sizes))
    results: dict[str, Any] = {"fill_seconds": time.perf_counter() - started, "runs": []}
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@x.io", "pw-bench-12345"))
    export(client, min(sizes), "ndjson")  # warm-up: imports, plans, connection
    for fmt in ("ndjson", "csv"):
        for rows in sizes:
            results["runs"].append({"format": fmt, **export(client, rows, fmt)})
    results["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
