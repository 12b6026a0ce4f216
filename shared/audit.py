"""The audit hash chain, shared by both planes so they agree byte for byte.

A record's hash is SHA-256 over its previous record's hash and the deterministic protobuf
encoding of the record with ``hash`` cleared and its content (request id, subject, route
name, fallbacks, guardrail categories: what a retention purge removes) replaced by
``content_sha256``, the digest of that content. Changing any field, removing a record or
reordering two breaks the chain at that point; signed checkpoints of (chain, seq, hash) catch
truncation and wholesale replacement.

Hashing the content's digest rather than the content lets a purge remove the content and
keep the rest of the record (``purged``): its hash still recomputes, so its decision, cost,
tenant and time stay checked, and the digest in place of the content is the purge's mark.
Records sealed before the digest existed (empty ``content_sha256``) hash everything directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from shared.pb import control_pb2

GENESIS = ""
EVENT_CONTENT = ("request_id", "subject", "route_name", "fallbacks")
RECORD_CONTENT = ("categories",)


def content_of(record: control_pb2.AuditRecord) -> control_pb2.AuditRecord:
    """A record holding only ``record``'s content fields."""
    content = control_pb2.AuditRecord(categories=record.categories)
    event = record.event
    content.event.request_id = event.request_id
    content.event.subject = event.subject
    content.event.route_name = event.route_name
    content.event.fallbacks.extend(event.fallbacks)
    return content


def content_sha256(record: control_pb2.AuditRecord) -> str:
    return hashlib.sha256(content_of(record).SerializeToString(deterministic=True)).hexdigest()


def purged(record: control_pb2.AuditRecord) -> control_pb2.AuditRecord:
    """A copy of ``record`` without its content: what a retention purge keeps."""
    kept = control_pb2.AuditRecord()
    kept.CopyFrom(record)
    for name in EVENT_CONTENT:
        kept.event.ClearField(name)
    for name in RECORD_CONTENT:
        kept.ClearField(name)
    return kept


def has_content(record: control_pb2.AuditRecord) -> bool:
    event = record.event
    return bool(
        event.request_id
        or event.subject
        or event.route_name
        or event.fallbacks
        or record.categories
    )


def record_hash(record: control_pb2.AuditRecord) -> str:
    if record.content_sha256:
        unsigned = purged(record)
    else:  # sealed before content digests: everything hashed as it is
        unsigned = control_pb2.AuditRecord()
        unsigned.CopyFrom(record)
    unsigned.hash = ""
    digest = hashlib.sha256(record.prev_hash.encode())
    digest.update(unsigned.SerializeToString(deterministic=True))
    return digest.hexdigest()


def content_intact(record: control_pb2.AuditRecord) -> bool:
    """Whether the content a (not purged) record carries is the content its hash vouches
    for. Records without a digest hash their content directly (``record_hash``)."""
    return not record.content_sha256 or content_sha256(record) == record.content_sha256


def hashes_hold(records: Iterable[control_pb2.AuditRecord]) -> list[bool]:
    """For each record, whether ``record_hash`` recomputes its hash and its content is
    intact (``content_intact``): the same encodings, built in two scratch messages reused
    across the records instead of new messages per record (what ingesting a batch checks)."""
    kept, content = control_pb2.AuditRecord(), control_pb2.AuditRecord()
    out = []
    for record in records:
        kept.CopyFrom(record)
        if record.content_sha256:
            event = kept.event
            for name in EVENT_CONTENT:
                event.ClearField(name)
            for name in RECORD_CONTENT:
                kept.ClearField(name)
            content.Clear()
            content.categories.extend(record.categories)
            source, target = record.event, content.event
            target.request_id = source.request_id
            target.subject = source.subject
            target.route_name = source.route_name
            target.fallbacks.extend(source.fallbacks)
            digest = hashlib.sha256(content.SerializeToString(deterministic=True)).hexdigest()
            if digest != record.content_sha256:
                out.append(False)
                continue
        kept.hash = ""
        hashed = hashlib.sha256(record.prev_hash.encode())
        hashed.update(kept.SerializeToString(deterministic=True))
        out.append(hashed.hexdigest() == record.hash)
    return out


def seal(record: control_pb2.AuditRecord, prev_hash: str, seq: int) -> control_pb2.AuditRecord:
    """Number and chain ``record`` after a record whose hash is ``prev_hash``; returns it."""
    record.seq = seq
    record.prev_hash = prev_hash
    record.content_sha256 = content_sha256(record)
    record.hash = record_hash(record)
    return record


def checkpoint_message(chain_id: str, seq: int, record_hash_hex: str, created_unix: int) -> bytes:
    """What a checkpoint signs."""
    return f"asc-audit-checkpoint:v1:{chain_id}:{seq}:{record_hash_hex}:{created_unix}".encode()
