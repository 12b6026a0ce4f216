"""Usage batches on disk, one file each, until the control plane acknowledges them.

A file is a frame: ``MAGIC``, the payload's length and CRC-32 (big-endian, 4 bytes each),
then the serialized ``UsageBatch``. Writes are atomic (``write_atomic``: fsynced, renamed), so
a crash leaves the old file or the new one; the frame catches what atomic writes cannot (a
disk or a hand that corrupts or truncates a file later): such a file is not parsed into a
shorter, plausible batch but quarantined. Files written before the frame existed (no magic)
are read as bare batches.

Blocking: call from an executor thread.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from google.protobuf.message import DecodeError

from data_plane.files import write_atomic
from shared.pb import control_pb2

SUFFIX = ".batch"
MAGIC = b"ASCUSAGE1\n"
HEADER = struct.Struct(">II")  # payload length, CRC-32 of the payload
QUARANTINE = "quarantine"


class CorruptSpoolFile(ValueError):
    """A spool file that is not a whole batch."""


def encode(batch: control_pb2.UsageBatch) -> bytes:
    payload = batch.SerializeToString()
    return MAGIC + HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode(data: bytes) -> control_pb2.UsageBatch:
    if data.startswith(MAGIC):
        header = data[len(MAGIC) : len(MAGIC) + HEADER.size]
        if len(header) != HEADER.size:
            raise CorruptSpoolFile("truncated header")
        length, crc = HEADER.unpack(header)
        payload = data[len(MAGIC) + HEADER.size :]
        if len(payload) != length:
            raise CorruptSpoolFile(f"truncated: {len(payload)} of {length} bytes")
        if zlib.crc32(payload) != crc:
            raise CorruptSpoolFile("checksum mismatch")
        data = payload
    batch = control_pb2.UsageBatch()
    try:
        batch.ParseFromString(data)
    except DecodeError as exc:
        raise CorruptSpoolFile(str(exc)) from exc
    return batch


class Spool:
    """The spool directory. Files are named so that sorting gives the order they were cut
    in (boot start time, then sequence)."""

    def __init__(self, directory: Path, boot_started_ms: int, boot_id: str) -> None:
        self.directory = directory
        self._prefix = f"{boot_started_ms:013d}-{boot_id}-"

    def write(self, batch: control_pb2.UsageBatch, seq: int) -> tuple[Path, int]:
        path = self.directory / f"{self._prefix}{seq:010d}{SUFFIX}"
        data = encode(batch)
        write_atomic(path, data)
        return path, len(data)

    def pending(self) -> list[Path]:
        self.directory.mkdir(parents=True, exist_ok=True)
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    @staticmethod
    def sizes(paths: list[Path]) -> list[int]:
        return [p.stat().st_size for p in paths]

    @staticmethod
    def read(path: Path) -> control_pb2.UsageBatch:
        """The batch in ``path``; ``CorruptSpoolFile`` when it is not a whole one."""
        return decode(path.read_bytes())

    def readable(self, paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
        """``paths`` split into whole batches and (quarantined file, why) for the others,
        which are moved to the quarantine folder: kept for inspection, never replayed."""
        good: list[Path] = []
        bad: list[tuple[Path, str]] = []
        for path in paths:
            try:
                self.read(path)
            except (OSError, CorruptSpoolFile) as exc:
                bad.append((self.quarantine(path), str(exc)))
            else:
                good.append(path)
        return good, bad

    def quarantine(self, path: Path) -> Path:
        folder = self.directory / QUARANTINE
        folder.mkdir(exist_ok=True)
        target = folder / path.name
        path.replace(target)
        return target
