"""The node's audit chain: every decision of this process, numbered and hash-linked.

One chain per node boot ("<node id>:<boot id>"), records numbered from 1, each hash covering
the previous one (``shared.audit``), so the control plane can tell on ingest, and the offline
verifier at any later time, whether a record was changed, dropped or reordered. Records are
sealed in the order they enter the usage queue, which is the order they are spooled and sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from data_plane.guardrails import Verdict, combine
from shared.audit import GENESIS, seal
from shared.pb import control_pb2

ALLOWED, REFUSED = "allowed", "refused"
# The reason of an allowed request answered from the response cache.
CACHE_HIT = "cache_hit"


class AuditChain:
    __slots__ = ("_head", "_seq", "chain_id")

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        self._seq = 0
        self._head = GENESIS

    def seal(self, record: control_pb2.AuditRecord) -> control_pb2.AuditRecord:
        """Number ``record`` and link it to the previous one; returns it."""
        self._seq += 1
        record.chain_id = self.chain_id
        seal(record, self._head, self._seq)
        self._head = record.hash
        return record


def build_audit(
    event: control_pb2.UsageEvent, verdicts: Sequence[Verdict], dropped: Sequence[str] = ()
) -> control_pb2.AuditRecord:
    """The (unsealed) audit record of a request: who, what, under which snapshot version, the
    decision, the guardrail categories found (never the text) and the features of the
    request a translation left out (``dropped``). An answer from the response cache says so
    in its reason (and in the event it embeds)."""
    verdict = combine(verdicts)
    refused = 400 <= event.status_code < 500
    return control_pb2.AuditRecord(
        event=event,
        decision=REFUSED if refused else ALLOWED,
        reason=event.error_code or (CACHE_HIT if event.cache_hit else ""),
        categories=verdict.categories,
        guardrail_action=verdict.decision.value,
        dropped_features=dropped,
    )
