"""A usage batch into PostgreSQL in a few round trips and no per-event objects.

The batch's usage events and audit records become lines of one COPY (text format) built
straight from the protobuf, into one temporary table holding both kinds (``kind`` 'u' or
'a'); one statement then moves them into their tables (``ON CONFLICT DO NOTHING``) and moves
the audit chains' heads. Before that, one statement writes the batch's receipt (a replayed
batch id fails it: the caller acknowledges a duplicate) and locks the heads of the batch's
chains, so concurrent batches of one chain take turns, and batches of other chains run side
by side. The hashes are checked before the transaction (``shared.audit.hashes_hold``), the
links to the heads in one pass under the lock (``audit.services.link_records``).

Times travel as milliseconds and become timestamps in SQL; ``ingest_xid`` is left to its
database default.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from django.db import connection

from control_plane.audit.models import AuditChain, AuditRecord
from control_plane.audit.services import Head, link_records
from control_plane.core.bulk import uuid_or_none
from control_plane.usage.models import UsageBatchReceipt, UsageRecord
from shared.audit import hashes_hold
from shared.pb import control_pb2, snapshot_pb2

STAGING = "asc_ingest_in"
NULL = "\\N"
_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})
_EVENT_COLUMNS = (
    "request_id text, ts_ms bigint, tenant_id uuid, key_id uuid, route_id uuid, "
    "route_name text, model_id uuid, provider_id uuid, credential_id uuid, region text, "
    "subject text, prompt_tokens bigint, completion_tokens bigint, cost_nano_usd bigint, "
    "latency_ms bigint, ttft_ms bigint, snapshot_version bigint, status_code integer, "
    "fallbacks jsonb"
)
_USAGE_COLUMNS = (
    "cached_prompt_tokens bigint, stream boolean, error_code text, tags jsonb, cache_hit boolean, "
    "cost_saved_nano_usd bigint"
)
_AUDIT_COLUMNS = (
    "chain_id text, seq bigint, prev_hash text, hash text, decision text, reason text, "
    "categories jsonb, guardrail_action text, payload bytea, chain_ok boolean"
)
_STAGING_COLUMNS = f"kind text, {_EVENT_COLUMNS}, {_USAGE_COLUMNS}, {_AUDIT_COLUMNS}"
_USAGE_PAD = "\t".join([NULL] * 10)  # a usage line's audit columns
_AUDIT_PAD = "\t".join([NULL] * 6)  # an audit line's usage columns
_TS = "to_timestamp(0) + ts_ms * interval '1 millisecond'"
_SHARED = (
    "request_id, {ts}, tenant_id, key_id, route_id, route_name, model_id, provider_id, "
    "credential_id, region, subject, prompt_tokens, completion_tokens, cost_nano_usd, "
    "latency_ms, ttft_ms, snapshot_version, status_code, fallbacks"
)
# Every column of the two tables but the id and ingest_xid (a test checks none is missing).
USAGE_INSERT = (
    f"{_SHARED.format(ts='ts')}, node_id, cached_prompt_tokens, stream, error_code, tags, "
    f"cache_hit, cost_saved_nano_usd, rolled_up"
)
AUDIT_INSERT = (
    f"{_SHARED.format(ts='ts')}, chain_id, seq, prev_hash, hash, decision, reason, categories, "
    f"guardrail_action, payload, chain_ok, purged"
)
_MOVE = """
WITH u AS (
    INSERT INTO {usage} ({usage_cols})
    SELECT {shared}, %(node)s, cached_prompt_tokens, stream, error_code, tags, cache_hit,
           cost_saved_nano_usd, false
    FROM {staging} WHERE kind = 'u' ON CONFLICT (request_id) DO NOTHING RETURNING 1
), a AS (
    INSERT INTO {audit} ({audit_cols})
    SELECT {shared}, chain_id, seq, prev_hash, hash, decision, reason, categories,
           guardrail_action, payload, chain_ok, false
    FROM {staging} WHERE kind = 'a' ON CONFLICT (chain_id, seq) DO NOTHING RETURNING 1
), c AS (
    UPDATE {chain} AS h SET last_seq = v.last_seq, last_hash = v.last_hash, breaks = v.breaks
    FROM unnest(%(chains)s::text[], %(seqs)s::bigint[], %(hashes)s::text[], %(breaks)s::int[])
         AS v(chain_id, last_seq, last_hash, breaks)
    WHERE h.chain_id = v.chain_id RETURNING 1
)
SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM a), (SELECT count(*) FROM c)
"""
# Connections whose session holds the staging table (committed, so it stays until they close).
_staged: weakref.WeakSet[Any] = weakref.WeakSet()
_HEADS = "SELECT chain_id, last_seq, last_hash, breaks FROM {chain} WHERE chain_id = ANY(%s)"


def text(value: str) -> str:
    """``value`` as a field of a COPY text line (NUL, which PostgreSQL refuses, dropped)."""
    if "\\" in value or not value.isprintable():
        return value.translate(_ESCAPE)
    return value


@lru_cache(maxsize=8192)
def _uuid(value: str) -> str:
    return value if uuid_or_none(value) else NULL


def _json(values: list[object]) -> str:
    return text(json.dumps(values)) if values else "[]"


def _fallbacks(attempts: Iterable[control_pb2.Attempt]) -> str:
    return _json([
        {"model_id": a.model_id, "provider_id": a.provider_id, "outcome": a.outcome}
        for a in attempts
    ])  # fmt: skip


def _tags(tags: Iterable[snapshot_pb2.Tag]) -> str:
    return text(json.dumps({t.key: t.value for t in tags}))


def event_fields(e: control_pb2.UsageEvent, request_id: str) -> str:
    """The columns usage rows and audit rows share, from the event, as COPY fields."""
    return (
        f"{text(request_id)}\t{e.ts_unix_ms}\t{_uuid(e.tenant_id)}\t{_uuid(e.key_id)}\t"
        f"{_uuid(e.route_id)}\t{text(e.route_name[:200])}\t{_uuid(e.model_id)}\t"
        f"{_uuid(e.provider_id)}\t{_uuid(e.credential_id)}\t{text(e.region[:64])}\t"
        f"{text(e.subject[:200])}\t{e.prompt_tokens}\t{e.completion_tokens}\t"
        f"{e.cost_nano_usd}\t{e.latency_ms}\t{e.ttft_ms}\t{e.snapshot_version}\t"
        f"{e.status_code}\t{_fallbacks(e.fallbacks) if e.fallbacks else '[]'}"
    )


# Events already turned into fields, by request id (an audit record carries its event again).
Fields = dict[str, tuple[control_pb2.UsageEvent, str]]


def usage_line(e: control_pb2.UsageEvent, done: Fields) -> str:
    fields = event_fields(e, e.request_id)
    done[e.request_id] = (e, fields)
    return (
        f"u\t{fields}\t{e.cached_prompt_tokens}\t"
        f"{'t' if e.stream else 'f'}\t{text(e.error_code[:64])}\t"
        f"{_tags(e.tags) if e.tags else '{}'}\t{'t' if e.cache_hit else 'f'}\t"
        f"{e.cost_saved_nano_usd}\t{_USAGE_PAD}\n"
    )


def audit_line(record: control_pb2.AuditRecord, done: Fields) -> str:
    """An audit record's COPY line without its last field (chain_ok) and line end."""
    e = record.event
    seen = done.get(e.request_id)
    if seen is not None and len(e.request_id) <= 128 and seen[0] == e:
        fields = seen[1]
    else:
        fields = event_fields(e, e.request_id[:128])
    return (
        f"a\t{fields}\t{_AUDIT_PAD}\t{text(record.chain_id)}\t"
        f"{record.seq}\t{text(record.prev_hash)}\t{text(record.hash)}\t"
        f"{text(record.decision[:16])}\t{text(record.reason[:64])}\t"
        f"{_json(list(record.categories))}\t{text(record.guardrail_action[:16])}\t"
        f"\\\\x{record.SerializeToString(deterministic=True).hex()}\t"
    )


def ingest(batch: control_pb2.UsageBatch) -> int:
    """Store ``batch``; call inside a transaction. Raises IntegrityError (rolling it back)
    when its batch id was stored before. Returns the number of usage events accepted."""
    events = [e for e in batch.events if e.request_id]
    records: Sequence[control_pb2.AuditRecord] = batch.audit
    done: Fields = {}
    lines = [usage_line(e, done) for e in events]
    audit = [audit_line(r, done) for r in records]
    hashes_ok = hashes_hold(records)
    chain = AuditChain._meta.db_table
    with connection.wrap_database_errors, connection.cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg's own: COPY, and no per-statement bookkeeping
        raw = connection.connection
        if raw not in _staged:  # once per connection (the table outlives transactions)
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ({_STAGING_COLUMNS}) "
                f"ON COMMIT DELETE ROWS"
            )
            connection.on_commit(lambda: _staged.add(raw))  # a rollback would drop it again
        receipt = (
            f"INSERT INTO {UsageBatchReceipt._meta.db_table} "
            f"(batch_id, node_id, received_at, events) VALUES (%s, %s, now(), %s)"
        )
        receipt_args = [batch.batch_id, batch.node_id, len(events)]
        heads: dict[str, Head] = {}
        if not records:
            cursor.execute(receipt, receipt_args)
        else:
            chains = sorted({r.chain_id for r in records})  # locked in one order: no deadlock
            cursor.execute(
                f"WITH r AS ({receipt}) {_HEADS.format(chain=chain)} ORDER BY chain_id FOR UPDATE",
                [*receipt_args, chains],
            )
            heads = {row[0]: Head(*row[1:]) for row in cursor.fetchall()}
            missing = [c for c in chains if c not in heads]
            if missing:
                cursor.execute(
                    f"INSERT INTO {chain} (chain_id, node_id, last_seq, last_hash, breaks) "
                    f"SELECT unnest(%s::text[]), %s, 0, '', 0 ON CONFLICT DO NOTHING",
                    [missing, batch.node_id],
                )
                cursor.execute(
                    f"{_HEADS.format(chain=chain)} ORDER BY chain_id FOR UPDATE", [missing]
                )
                heads |= {row[0]: Head(*row[1:]) for row in cursor.fetchall()}
            oks = link_records(records, hashes_ok, heads)
            lines += [f"{line}{'t' if ok else 'f'}\n" for line, ok in zip(audit, oks, strict=True)]
        if lines:
            with cursor.copy(f"COPY {STAGING} FROM STDIN") as copy:
                copy.write("".join(lines))
        cursor.execute(
            _MOVE.format(
                usage=UsageRecord._meta.db_table,
                audit=AuditRecord._meta.db_table,
                chain=chain,
                staging=STAGING,
                shared=_SHARED.format(ts=_TS),
                usage_cols=USAGE_INSERT,
                audit_cols=AUDIT_INSERT,
            ),
            {
                "node": batch.node_id,
                "chains": list(heads),
                "seqs": [h.last_seq for h in heads.values()],
                "hashes": [h.last_hash for h in heads.values()],
                "breaks": [h.breaks for h in heads.values()],
            },
        )
    return len(events)
