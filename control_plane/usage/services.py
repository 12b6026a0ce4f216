"""Usage ingestion: at least once from the data planes, exactly once in the store.

A batch's receipt row and its usage rows are written in one transaction; a replayed batch id
hits the receipt's primary key and is acknowledged as a duplicate without writing anything.
Request ids are unique too, so an event can never be stored twice even across batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connection, models, transaction

from control_plane.audit.services import append_records
from control_plane.core.bulk import insert_ignoring_conflicts, uuid_or_none
from control_plane.usage import copy_ingest
from control_plane.usage.models import NONE, SpendDaily, UsageBatchReceipt, UsageRecord
from shared.pb import control_pb2


@dataclass(frozen=True)
class Ingested:
    accepted: int
    duplicate: bool


def to_row(event: control_pb2.UsageEvent, node_id: str) -> dict[str, Any]:
    """A UsageRecord row (attribute name -> value) straight from the data plane's event."""
    return {
        "request_id": event.request_id,
        "ts": datetime.fromtimestamp(event.ts_unix_ms / 1000, tz=UTC),
        "node_id": node_id,
        "tenant_id": uuid_or_none(event.tenant_id),
        "key_id": uuid_or_none(event.key_id),
        "route_id": uuid_or_none(event.route_id),
        "route_name": event.route_name[:200],
        "model_id": uuid_or_none(event.model_id),
        "provider_id": uuid_or_none(event.provider_id),
        "credential_id": uuid_or_none(event.credential_id),
        "region": event.region[:64],
        "subject": event.subject[:200],
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "cached_prompt_tokens": event.cached_prompt_tokens,
        "cost_nano_usd": event.cost_nano_usd,
        "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
        "snapshot_version": event.snapshot_version,
        "status_code": event.status_code,
        "stream": event.stream,
        "error_code": event.error_code[:64],
        "fallbacks": [
            {"model_id": a.model_id, "provider_id": a.provider_id, "outcome": a.outcome}
            for a in event.fallbacks
        ],
        "tags": {t.key: t.value for t in event.tags},
        "cache_hit": event.cache_hit,
        "cost_saved_nano_usd": event.cost_saved_nano_usd,
        "rolled_up": False,
    }


def ingest_batch(batch: control_pb2.UsageBatch) -> Ingested:
    if not batch.batch_id:
        raise ValueError("a usage batch needs a batch_id")
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                accepted = copy_ingest.ingest(batch)
            else:
                rows = [to_row(e, batch.node_id) for e in batch.events if e.request_id]
                UsageBatchReceipt.objects.create(
                    batch_id=batch.batch_id, node_id=batch.node_id, events=len(rows)
                )
                insert_ignoring_conflicts(UsageRecord, rows, ["request_id"])
                append_records(batch.audit, batch.node_id)
                accepted = len(rows)
    except IntegrityError:
        if UsageBatchReceipt.objects.filter(batch_id=batch.batch_id).exists():
            return Ingested(accepted=0, duplicate=True)
        raise
    return Ingested(accepted=accepted, duplicate=False)


_ROLLUP_SELECT = """
    SELECT DATE(ts), tenant_id, COALESCE(key_id, %s), COALESCE(route_id, %s), COUNT(*),
           SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_nano_usd)
    FROM {source} WHERE {where} tenant_id IS NOT NULL
    GROUP BY DATE(ts), tenant_id, COALESCE(key_id, %s), COALESCE(route_id, %s)
"""
_ROLLUP_UPSERT = """
    INSERT INTO {target} (day, tenant_id, key_id, route_id, requests, prompt_tokens,
                          completion_tokens, cost_nano_usd)
    {select}
    ON CONFLICT (day, tenant_id, key_id, route_id) DO UPDATE SET
        requests = {target}.requests + excluded.requests,
        prompt_tokens = {target}.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = {target}.completion_tokens + excluded.completion_tokens,
        cost_nano_usd = {target}.cost_nano_usd + excluded.cost_nano_usd
"""


def rollup_spend() -> int:
    """Add every usage record not yet counted to SpendDaily, atomically in SQL (increments,
    never read-decide-write), and mark it counted in the same transaction: safe to run
    concurrently and to rerun. Returns the number of records counted."""
    source, target = UsageRecord._meta.db_table, SpendDaily._meta.db_table
    none = models.UUIDField().get_db_prep_value(NONE, connection)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement: the rows flagged are exactly the rows summed.
            select = _ROLLUP_SELECT.format(source="picked", where="")
            cursor.execute(
                f"WITH picked AS (UPDATE {source} SET rolled_up = true WHERE rolled_up = false "
                f"RETURNING ts, tenant_id, key_id, route_id, prompt_tokens, completion_tokens, "
                f"cost_nano_usd), "
                f"upserted AS ({_ROLLUP_UPSERT.format(target=target, select=select)} RETURNING 1) "
                f"SELECT (SELECT COUNT(*) FROM picked), (SELECT COUNT(*) FROM upserted)",
                [none] * 4,
            )
            return int(cursor.fetchone()[0])
        # SQLite: one writer at a time, so the two statements see the same rows.
        select = _ROLLUP_SELECT.format(source=source, where="rolled_up = 0 AND")
        cursor.execute(_ROLLUP_UPSERT.format(target=target, select=select), [none] * 4)
        cursor.execute(f"UPDATE {source} SET rolled_up = 1 WHERE rolled_up = 0")
        return int(cursor.rowcount)
