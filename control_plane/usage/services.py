"""Usage ingestion: at least once from the data planes, exactly once in the store.

A batch's receipt row and its usage rows are written in one transaction; a replayed batch id
hits the receipt's primary key and is acknowledged as a duplicate without writing anything.
Request ids are unique too, so an event can never be stored twice even across batches.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connection, models, transaction

from control_plane.audit.services import append_records
from control_plane.usage.models import NONE, SpendDaily, UsageBatchReceipt, UsageRecord
from shared.pb import control_pb2


@dataclass(frozen=True)
class Ingested:
    accepted: int
    duplicate: bool


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def to_record(event: control_pb2.UsageEvent, node_id: str) -> UsageRecord:
    return UsageRecord(
        request_id=event.request_id,
        ts=datetime.fromtimestamp(event.ts_unix_ms / 1000, tz=UTC),
        node_id=node_id,
        tenant_id=_uuid(event.tenant_id),
        key_id=_uuid(event.key_id),
        route_id=_uuid(event.route_id),
        route_name=event.route_name[:200],
        model_id=_uuid(event.model_id),
        provider_id=_uuid(event.provider_id),
        credential_id=_uuid(event.credential_id),
        region=event.region[:64],
        subject=event.subject[:200],
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        cached_prompt_tokens=event.cached_prompt_tokens,
        cost_nano_usd=event.cost_nano_usd,
        latency_ms=event.latency_ms,
        ttft_ms=event.ttft_ms,
        snapshot_version=event.snapshot_version,
        status_code=event.status_code,
        stream=event.stream,
        error_code=event.error_code[:64],
        fallbacks=[
            {"model_id": a.model_id, "provider_id": a.provider_id, "outcome": a.outcome}
            for a in event.fallbacks
        ],
    )


def ingest_batch(batch: control_pb2.UsageBatch) -> Ingested:
    if not batch.batch_id:
        raise ValueError("a usage batch needs a batch_id")
    records = [to_record(e, batch.node_id) for e in batch.events if e.request_id]
    try:
        with transaction.atomic():
            UsageBatchReceipt.objects.create(
                batch_id=batch.batch_id, node_id=batch.node_id, events=len(records)
            )
            insert_records(records)
            append_records(batch.audit, batch.node_id)
    except IntegrityError:
        if UsageBatchReceipt.objects.filter(batch_id=batch.batch_id).exists():
            return Ingested(accepted=0, duplicate=True)
        raise
    return Ingested(accepted=len(records), duplicate=False)


COLUMNS = [str(f.column) for f in UsageRecord._meta.concrete_fields if not f.primary_key]


def insert_records(records: list[UsageRecord]) -> None:
    """Bulk insert, skipping request ids already stored. On PostgreSQL: COPY into a temporary
    table, then one INSERT ... ON CONFLICT DO NOTHING (far faster than multi-row INSERTs)."""
    if connection.vendor != "postgresql" or not records:
        UsageRecord.objects.bulk_create(records, batch_size=1000, ignore_conflicts=True)
        return
    table = UsageRecord._meta.db_table
    cols = ", ".join(COLUMNS)
    fields = {f.column: f for f in UsageRecord._meta.concrete_fields}
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor: Django's wrapper has no COPY
        raw.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS usage_in ON COMMIT DELETE ROWS "
            f"AS SELECT {cols} FROM {table} WITH NO DATA"
        )
        with raw.copy(f"COPY usage_in ({cols}) FROM STDIN") as copy:
            for record in records:
                copy.write_row([_copy_value(fields[c], record) for c in COLUMNS])
        raw.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM usage_in "
            f"ON CONFLICT (request_id) DO NOTHING"
        )


def _copy_value(field: Any, record: UsageRecord) -> Any:
    value = getattr(record, field.attname)
    return json.dumps(value) if field.get_internal_type() == "JSONField" else value


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
