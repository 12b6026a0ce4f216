"""The audit hash chain, shared by both planes so they agree byte for byte.

A record's hash is SHA-256 over its previous record's hash and the deterministic protobuf
encoding of the record with ``hash`` cleared. Changing any field, removing a record or
reordering two breaks the chain at that point; signed checkpoints of (chain, seq, hash) catch
truncation and wholesale replacement.
"""

from __future__ import annotations

import hashlib

from shared.pb import control_pb2

GENESIS = ""


def record_hash(record: control_pb2.AuditRecord) -> str:
    unsigned = control_pb2.AuditRecord()
    unsigned.CopyFrom(record)
    unsigned.hash = ""
    digest = hashlib.sha256(record.prev_hash.encode())
    digest.update(unsigned.SerializeToString(deterministic=True))
    return digest.hexdigest()


def seal(record: control_pb2.AuditRecord, prev_hash: str, seq: int) -> control_pb2.AuditRecord:
    """Number and chain ``record`` after a record whose hash is ``prev_hash``; returns it."""
    record.seq = seq
    record.prev_hash = prev_hash
    record.hash = record_hash(record)
    return record


def checkpoint_message(chain_id: str, seq: int, record_hash_hex: str, created_unix: int) -> bytes:
    """What a checkpoint signs."""
    return f"asc-audit-checkpoint:v1:{chain_id}:{seq}:{record_hash_hex}:{created_unix}".encode()
