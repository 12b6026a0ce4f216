"""Offline verification of stored audit chains and checkpoints.

``verify_chain`` is pure: given one chain's rows (ordered by seq) and its checkpoints, it
returns every problem found, first one first, each naming the record. It catches a changed
field (the row no longer matches its payload, or the payload its hash), a deleted record (a
gap in seq), two records swapped (seq or prev_hash out of order), a truncated chain (a
checkpoint beyond the last record) and a replaced or forged checkpoint (bad signature, or a
hash that is not the record's).

A purged record is checked like any other: its payload is the record without its content
(``shared.audit.purged``), whose hash still recomputes, so its decision, cost, tenant and time
are vouched for. A purge must also have been allowed: its tenant has a retention policy and
the record is older than it (``retention_days`` as of ``now``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.message import DecodeError

from shared.audit import checkpoint_message, content_intact, has_content, record_hash
from shared.pb import control_pb2

# Checks a checkpoint's signature: (signed message, hex signature) -> valid.
Verifier = Callable[[bytes, str], bool]


@dataclass(frozen=True)
class Problem:
    chain_id: str
    seq: int
    request_id: str
    what: str

    def __str__(self) -> str:
        rid = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.chain_id}#{self.seq}{rid}: {self.what}"


# Columns checked against the payload: row attribute -> getter on the decoded record.
COLUMNS: dict[str, Any] = {
    "request_id": lambda r: r.event.request_id,
    "subject": lambda r: r.event.subject,
    "route_name": lambda r: r.event.route_name,
    "snapshot_version": lambda r: r.event.snapshot_version,
    "decision": lambda r: r.decision,
    "reason": lambda r: r.reason,
    "categories": lambda r: list(r.categories),
    "guardrail_action": lambda r: r.guardrail_action,
    "region": lambda r: r.event.region,
    "status_code": lambda r: r.event.status_code,
    "prompt_tokens": lambda r: r.event.prompt_tokens,
    "completion_tokens": lambda r: r.event.completion_tokens,
    "cost_nano_usd": lambda r: r.event.cost_nano_usd,
    "latency_ms": lambda r: r.event.latency_ms,
    "ttft_ms": lambda r: r.event.ttft_ms,
    "tenant_id": lambda r: r.event.tenant_id,
    "key_id": lambda r: r.event.key_id,
    "route_id": lambda r: r.event.route_id,
    "model_id": lambda r: r.event.model_id,
    "provider_id": lambda r: r.event.provider_id,
    "credential_id": lambda r: r.event.credential_id,
}


def _content_problem(row: Any) -> str | None:
    if row.purged and not bytes(row.payload):
        return "purged without a purge mark (no payload): what is left cannot be checked"
    try:
        record = control_pb2.AuditRecord.FromString(bytes(row.payload))
    except DecodeError:
        return "payload cannot be decoded"
    if record.chain_id != row.chain_id or record.seq != row.seq:
        return f"payload is record {record.chain_id}#{record.seq}: records moved or swapped"
    if record.hash != row.hash or record.prev_hash != row.prev_hash:
        return "hash columns differ from the payload"
    if record_hash(record) != row.hash:
        return "payload does not match its hash: content changed"
    if row.purged and (not record.content_sha256 or has_content(record)):
        return "marked purged, but its payload is not a purged record"
    if not row.purged and not content_intact(record):
        return "content does not match its digest: content changed"
    for column, getter in COLUMNS.items():
        stored = getattr(row, column)
        stored = "" if stored is None else stored
        if str(stored) != str(getter(record)):
            return f"field {column.removesuffix('_id')} changed"
    if round(row.ts.timestamp() * 1000) != record.event.ts_unix_ms:
        return "field ts changed"
    return None


def _purge_problem(row: Any, retention_days: Mapping[str, int], now: datetime) -> str | None:
    """Whether the tenant's retention policy allowed purging ``row`` (as of ``now``)."""
    days = retention_days.get(str(row.tenant_id))
    if days is None:
        return "purged, but its tenant has no retention policy"
    if row.ts >= now - timedelta(days=days):
        return f"purged before its tenant's retention of {days} days had passed"
    return None


def verify_chain(
    chain_id: str,
    rows: Sequence[Any],
    checkpoints: Sequence[Any],
    verify: Verifier,
    *,
    retention_days: Mapping[str, int],
    now: datetime,
) -> list[Problem]:
    """``retention_days``: each tenant's retention policy (tenant id -> days), tenants
    without one left out."""
    problems: list[Problem] = []

    def problem(seq: int, request_id: str, what: str) -> None:
        problems.append(Problem(chain_id, seq, request_id, what))

    previous: Any = None
    for row in rows:
        what = _content_problem(row)
        if what is None and row.purged:
            what = _purge_problem(row, retention_days, now)
        if what:
            problem(row.seq, row.request_id, what)
        expected_seq = previous.seq + 1 if previous is not None else 1
        if row.seq != expected_seq:
            problem(expected_seq, "", f"missing: record {expected_seq} deleted (next is {row.seq})")
        elif previous is not None and row.prev_hash != previous.hash:
            problem(
                row.seq, row.request_id, "does not follow the previous record: reordered or altered"
            )
        elif previous is None and row.prev_hash != "":
            problem(row.seq, row.request_id, "first record does not start the chain")
        previous = row
    by_seq = {row.seq: row for row in rows}
    last_seq = rows[-1].seq if rows else 0
    for cp in checkpoints:
        message = checkpoint_message(cp.chain_id, cp.seq, cp.hash, cp.created_unix)
        if not verify(message, cp.signature):
            problem(cp.seq, "", "checkpoint signature invalid: checkpoint replaced or forged")
        elif cp.seq > last_seq:
            problem(last_seq + 1, "", f"truncated: checkpoint vouches for records up to {cp.seq}")
        elif by_seq.get(cp.seq) is None or by_seq[cp.seq].hash != cp.hash:
            problem(cp.seq, "", "record differs from the signed checkpoint")
    return sorted(problems, key=lambda p: p.seq)
