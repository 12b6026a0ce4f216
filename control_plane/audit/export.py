"""Audit records as an export (``control_plane.core.export``), in ``(ts, chain_id, seq)``
order, closed by a trailer naming, for every chain the export touches, the records it holds
of it, the chain's head, and the signed checkpoint covering its last exported record (the
earliest at or past it; null until the next checkpoint is made). A reader checks the
checkpoint's signature and that its hash is the one ``verify_audit`` recomputes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from control_plane.audit.models import AuditChain, AuditCheckpoint
from control_plane.core.export import Export, RefText, rows_of

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
REFS = ("tenant_id", "key_id", "route_id", "provider_id", "model_id", "credential_id")
ORDER = ("ts", "chain_id", "seq")


def plain(row: dict[str, Any], refs: RefText) -> dict[str, Any]:
    """A row as exported: times in ISO 8601, references as id strings ("" for none)."""
    row["ts"] = row["ts"].isoformat()
    for name in REFS:
        row[name] = refs(row[name])
    return row


@dataclass
class Span:
    """The records of one chain an export holds."""

    records: int
    first_seq: int
    last_seq: int
    last_hash: str

    def add(self, seq: int, digest: str) -> None:
        self.records += 1
        self.first_seq = min(self.first_seq, seq)
        if seq > self.last_seq:
            self.last_seq, self.last_hash = seq, digest


def chains_trailer(spans: dict[str, Span]) -> list[dict[str, Any]]:
    """Each chain's span, its head and the checkpoint covering its last exported record."""
    heads = {
        c.chain_id: {"seq": c.last_seq, "hash": c.last_hash}
        for c in AuditChain.objects.filter(chain_id__in=list(spans))
    }
    out = []
    for chain_id in sorted(spans):
        span = spans[chain_id]
        checkpoint = (
            AuditCheckpoint.objects.filter(chain_id=chain_id, seq__gte=span.last_seq)
            .order_by("seq")
            .values("seq", "hash", "created_unix", "key_id", "signature")
            .first()
        )
        out.append(
            {
                "chain_id": chain_id,
                "records": span.records,
                "first_seq": span.first_seq,
                "last_seq": span.last_seq,
                "last_hash": span.last_hash,
                "head": heads.get(chain_id),
                "checkpoint": checkpoint,
            }
        )
    return out


def audit_export(records: QuerySet[Any], filters: dict[str, Any]) -> Export:
    """Every record of ``records`` (already scoped and filtered) with its trailer."""
    spans: dict[str, Span] = {}

    def rows() -> Iterator[dict[str, Any]]:
        refs = RefText()
        for row in rows_of(records.order_by(*ORDER), FIELDS):
            span = spans.get(row["chain_id"])
            if span is None:
                spans[row["chain_id"]] = Span(1, row["seq"], row["seq"], row["hash"])
            else:
                span.add(row["seq"], row["hash"])
            yield plain(row, refs)

    def trailer() -> dict[str, Any]:
        return {"order": list(ORDER), "filters": filters, "chains": chains_trailer(spans)}

    lists = frozenset({"categories", "fallbacks"})
    return Export("audit", FIELDS, rows(), trailer, lists, joined=frozenset({"categories"}))
