"""Audit records as JSONL or CSV lines (generators: exports stream, whatever their size)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

FIELDS = [
    "chain_id",
    "seq",
    "hash",
    "prev_hash",
    "ts",
    "request_id",
    "tenant_id",
    "key_id",
    "subject",
    "route_id",
    "route_name",
    "snapshot_version",
    "decision",
    "reason",
    "categories",
    "guardrail_action",
    "provider_id",
    "model_id",
    "credential_id",
    "region",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "cost_nano_usd",
    "latency_ms",
    "ttft_ms",
    "fallbacks",
    "purged",
]


def as_dict(row: Any) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in FIELDS}
    out["ts"] = row.ts.isoformat()
    for name in ("tenant_id", "key_id", "route_id", "provider_id", "model_id", "credential_id"):
        out[name] = str(out[name]) if out[name] else ""
    return out


def jsonl(rows: Iterable[Any]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(as_dict(row), sort_keys=True) + "\n"


def csv_lines(rows: Iterable[Any]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    for row in rows:
        data = as_dict(row)
        data["categories"] = ";".join(data["categories"])
        data["fallbacks"] = json.dumps(data["fallbacks"])
        writer.writerow(data)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()
