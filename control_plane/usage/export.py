"""Usage records as an export (``control_plane.core.export``): one line per request, in
``(ts, id)`` order, closed by a trailer with the count and the period's totals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from control_plane.core.export import Export, RefText, rows_of

COLUMNS = [
    "request_id",
    "ts",
    "node_id",
    "tenant_id",
    "key_id",
    "route_id",
    "route_name",
    "model_id",
    "provider_id",
    "credential_id",
    "region",
    "subject",
    "prompt_tokens",
    "completion_tokens",
    "cached_prompt_tokens",
    "cost_nano_usd",
    "latency_ms",
    "ttft_ms",
    "snapshot_version",
    "status_code",
    "stream",
    "error_code",
    "fallbacks",
    "tags",
    "cache_hit",
    "cost_saved_nano_usd",
]
REFS = ("tenant_id", "key_id", "route_id", "model_id", "provider_id", "credential_id")
ORDER = ("ts", "id")
TOTALS = ("prompt_tokens", "completion_tokens", "cost_nano_usd")


def plain(row: dict[str, Any], refs: RefText | None = None) -> dict[str, Any]:
    """A row as exported: times in ISO 8601, references as id strings ("" for none)."""
    text = refs or RefText()
    row["ts"] = row["ts"].isoformat()
    for name in REFS:
        row[name] = text(row[name])
    return row


def usage_export(records: QuerySet[Any], filters: dict[str, Any]) -> Export:
    """Every record of ``records`` (already scoped and filtered) with its trailer."""
    totals = dict.fromkeys(TOTALS, 0)

    def rows() -> Iterator[dict[str, Any]]:
        refs = RefText()
        for row in rows_of(records.order_by(*ORDER), COLUMNS):
            for name in TOTALS:
                totals[name] += row[name]
            yield plain(row, refs)

    def trailer() -> dict[str, Any]:
        return {"order": list(ORDER), "filters": filters, "totals": dict(totals)}

    return Export("usage", COLUMNS, rows(), trailer, lists=frozenset({"fallbacks", "tags"}))
