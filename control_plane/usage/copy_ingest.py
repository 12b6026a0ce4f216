"""A usage batch into PostgreSQL in a few round trips and no per-event objects.

The batch's usage events and audit records become lines of two COPYs (text format) built
straight from the protobuf, straight into their tables. Before them, one statement writes the
batch's receipt (a replayed batch id fails it: the caller acknowledges a duplicate) and locks
the heads of the batch's chains, so concurrent batches of one chain take turns, and batches
of other chains run side by side; after them, one statement moves the chains' heads. The
usage lines are written as they are built, and the audit records checked (hashes:
``shared.audit.hashes_hold``; links to the locked heads, in one pass:
``audit.services.link_records``) and turned into lines while PostgreSQL stores the usage
rows, so the two sides work at once.

The receipt makes a batch exactly-once, not its events: an event (or audit record) stored
before in another batch, or twice in one, is skipped as on the ORM path. The COPYs run in a
savepoint; when one meets a stored request id or chain position, the savepoint is rolled back
and the same lines go through temporary tables and ``INSERT ... ON CONFLICT DO NOTHING``
(slower, and only for such a batch).

Times travel as text in UTC, to the millisecond; ``id`` and ``ingest_xid`` are left to their
database defaults.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.db import IntegrityError, connection, transaction

from control_plane.audit.models import AuditChain, AuditRecord
from control_plane.audit.services import Head, link_records
from control_plane.core.bulk import uuid_or_none
from control_plane.usage.models import UsageBatchReceipt, UsageRecord
from shared.audit import hashes_hold
from shared.pb import control_pb2, snapshot_pb2

NULL = "\\N"
_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})
_SHARED = (
    "request_id, ts, tenant_id, key_id, route_id, route_name, model_id, provider_id, "
    "credential_id, region, subject, prompt_tokens, completion_tokens, cost_nano_usd, "
    "latency_ms, ttft_ms, snapshot_version, status_code, fallbacks"
)
# The columns of a usage line and of an audit line, in order: every column of the two tables
# but the id and ingest_xid (a test checks none is missing).
USAGE_INSERT = (
    f"{_SHARED}, node_id, cached_prompt_tokens, stream, error_code, tags, cache_hit, "
    f"cost_saved_nano_usd, rolled_up"
)
AUDIT_INSERT = (
    f"{_SHARED}, chain_id, seq, prev_hash, hash, decision, reason, categories, "
    f"guardrail_action, payload, chain_ok, purged"
)
_HEADS = "SELECT chain_id, last_seq, last_hash, breaks FROM {chain} WHERE chain_id = ANY(%s)"
_MOVE_HEADS = """
UPDATE {chain} AS h SET last_seq = v.last_seq, last_hash = v.last_hash, breaks = v.breaks
FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::int[])
     AS v(chain_id, last_seq, last_hash, breaks)
WHERE h.chain_id = v.chain_id
"""


def text(value: str) -> str:
    """``value`` as a field of a COPY text line (NUL, which PostgreSQL refuses, dropped)."""
    if "\\" in value or not value.isprintable():
        return value.translate(_ESCAPE)
    return value


@lru_cache(maxsize=8192)
def _uuid(value: str) -> str:
    return value if uuid_or_none(value) else NULL


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat(" ")


def timestamp(ts_unix_ms: int) -> str:
    """A time in milliseconds since the epoch as a COPY field of a ``timestamptz`` column."""
    seconds, ms = divmod(ts_unix_ms, 1000)
    return f"{_second(seconds)}.{ms:03d}+00"


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
        f"{text(request_id)}\t{timestamp(e.ts_unix_ms)}\t{_uuid(e.tenant_id)}\t"
        f"{_uuid(e.key_id)}\t{_uuid(e.route_id)}\t{text(e.route_name[:200])}\t"
        f"{_uuid(e.model_id)}\t{_uuid(e.provider_id)}\t{_uuid(e.credential_id)}\t"
        f"{text(e.region[:64])}\t{text(e.subject[:200])}\t{e.prompt_tokens}\t"
        f"{e.completion_tokens}\t{e.cost_nano_usd}\t{e.latency_ms}\t{e.ttft_ms}\t"
        f"{e.snapshot_version}\t{e.status_code}\t"
        f"{_fallbacks(e.fallbacks) if e.fallbacks else '[]'}"
    )


# Events already turned into fields, by request id (an audit record carries its event again).
Fields = dict[str, tuple[control_pb2.UsageEvent, str]]


def usage_line(e: control_pb2.UsageEvent, node: str, done: Fields) -> str:
    """A usage event's COPY line (``USAGE_INSERT``); ``node``: the node id as a COPY field."""
    fields = event_fields(e, e.request_id)
    done[e.request_id] = (e, fields)
    return (
        f"{fields}\t{node}\t{e.cached_prompt_tokens}\t"
        f"{'t' if e.stream else 'f'}\t{text(e.error_code[:64])}\t"
        f"{_tags(e.tags) if e.tags else '{}'}\t{'t' if e.cache_hit else 'f'}\t"
        f"{e.cost_saved_nano_usd}\tf\n"
    )


def audit_line(record: control_pb2.AuditRecord, done: Fields) -> str:
    """An audit record's COPY line (``AUDIT_INSERT``) up to its payload (``audit_lines`` adds
    chain_ok and purged)."""
    e = record.event
    seen = done.get(e.request_id)
    if seen is not None and len(e.request_id) <= 128 and seen[0] == e:
        fields = seen[1]
    else:
        fields = event_fields(e, e.request_id[:128])
    return (
        f"{fields}\t{text(record.chain_id)}\t"
        f"{record.seq}\t{text(record.prev_hash)}\t{text(record.hash)}\t"
        f"{text(record.decision[:16])}\t{text(record.reason[:64])}\t"
        f"{_json(list(record.categories))}\t{text(record.guardrail_action[:16])}\t"
        f"\\\\x{record.SerializeToString(deterministic=True).hex()}\t"
    )


def audit_lines(
    records: Sequence[control_pb2.AuditRecord], heads: dict[str, Head], done: Fields
) -> list[str]:
    """The records' COPY lines, each checked (hash, link to its chain's head: ``heads``, moved
    along)."""
    oks = link_records(records, hashes_hold(records), heads)
    return [
        f"{audit_line(record, done)}{'t' if ok else 'f'}\tf\n"
        for record, ok in zip(records, oks, strict=True)
    ]


CHUNK = 100  # usage lines per write: PostgreSQL stores the first while the next are built


def ingest(batch: control_pb2.UsageBatch) -> int:
    """Store ``batch``; call inside a transaction. Raises IntegrityError (rolling it back)
    when its batch id was stored before. Returns the number of usage events accepted."""
    events = [e for e in batch.events if e.request_id]
    records: Sequence[control_pb2.AuditRecord] = batch.audit
    node = text(batch.node_id)
    done: Fields = {}
    usage: list[str] = []
    audit: list[str] = []
    with connection.wrap_database_errors, connection.cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg's own: COPY, and no per-statement bookkeeping
        heads = _receive(cursor, batch, len(events), records)
        try:
            with transaction.atomic(), connection.wrap_database_errors:  # a savepoint
                # PostgreSQL reports a conflict when a COPY ends, so every line is built by then.
                with cursor.copy(f"COPY {_USAGE} ({USAGE_INSERT}) FROM STDIN") as copy:
                    for start in range(0, len(events), CHUNK):
                        lines = [usage_line(e, node, done) for e in events[start : start + CHUNK]]
                        copy.write("".join(lines))
                        usage += lines
                    audit = audit_lines(records, heads, done)  # while the usage rows are stored
                if audit:
                    with cursor.copy(f"COPY {_AUDIT} ({AUDIT_INSERT}) FROM STDIN") as copy:
                        copy.write("".join(audit))
        except IntegrityError:  # rare: an event or a chain position stored before
            _store_skipping_stored(cursor, usage, audit)
        if heads:
            cursor.execute(
                _MOVE_HEADS.format(chain=_CHAIN),
                [
                    list(heads),
                    [h.last_seq for h in heads.values()],
                    [h.last_hash for h in heads.values()],
                    [h.breaks for h in heads.values()],
                ],
            )
    return len(events)


_USAGE, _AUDIT = UsageRecord._meta.db_table, AuditRecord._meta.db_table
_CHAIN = AuditChain._meta.db_table


def _receive(
    cursor: Any, batch: control_pb2.UsageBatch, events: int, records: Sequence[Any]
) -> dict[str, Head]:
    """Write the batch's receipt and lock the heads of its records' chains (created when
    new): the heads, by chain id."""
    receipt = (
        f"INSERT INTO {UsageBatchReceipt._meta.db_table} "
        f"(batch_id, node_id, received_at, events) VALUES (%s, %s, now(), %s)"
    )
    receipt_args = [batch.batch_id, batch.node_id, events]
    if not records:
        cursor.execute(receipt, receipt_args)
        return {}
    chains = sorted({r.chain_id for r in records})  # locked in one order: no deadlock
    cursor.execute(
        f"WITH r AS ({receipt}) {_HEADS.format(chain=_CHAIN)} ORDER BY chain_id FOR UPDATE",
        [*receipt_args, chains],
    )
    heads = {row[0]: Head(*row[1:]) for row in cursor.fetchall()}
    missing = [c for c in chains if c not in heads]
    if missing:
        cursor.execute(
            f"INSERT INTO {_CHAIN} (chain_id, node_id, last_seq, last_hash, breaks) "
            f"SELECT unnest(%s::text[]), %s, 0, '', 0 ON CONFLICT DO NOTHING",
            [missing, batch.node_id],
        )
        cursor.execute(f"{_HEADS.format(chain=_CHAIN)} ORDER BY chain_id FOR UPDATE", [missing])
        heads |= {row[0]: Head(*row[1:]) for row in cursor.fetchall()}
    return heads


def _store_skipping_stored(cursor: Any, usage: list[str], audit: list[str]) -> None:
    """Store the lines but those whose request id (usage) or chain position (audit) is
    stored already: through temporary tables and ``INSERT ... ON CONFLICT DO NOTHING``."""
    for table, columns, key, lines in (
        (_USAGE, USAGE_INSERT, "request_id", usage),
        (_AUDIT, AUDIT_INSERT, "chain_id, seq", audit),
    ):
        if not lines:
            continue
        staging = f"{table}_in"
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS "
            f"AS SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cursor.copy(f"COPY {staging} ({columns}) FROM STDIN") as copy:
            copy.write("".join(lines))
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} "
            f"ON CONFLICT ({key}) DO NOTHING"
        )
