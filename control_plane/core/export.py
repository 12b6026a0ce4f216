"""Complete exports of append-only records (usage, audit), streamed as NDJSON or CSV.

An export is one read: on PostgreSQL it runs in a single REPEATABLE READ, READ ONLY
transaction, its rows come through a server-side cursor a chunk at a time (memory stays flat
whatever the size), and its trailer is computed in the same snapshot as its rows. The last
line of every export is the trailer, so a reader can check it got everything:

- NDJSON: one JSON object per record, then ``{"trailer": {...}}``;
- CSV: a header row, one row per record, then ``# trailer {...}`` (a comment line: drop lines
  starting with ``#``, e.g. ``pandas.read_csv(comment="#")``).

The trailer holds ``count`` (records written), ``sha256`` (of every byte before the trailer
line), the order and filters of the export, and what its kind adds (usage totals; audit chain
heads and the checkpoints covering them). A file without its trailer was cut short.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet

NDJSON, CSV = "ndjson", "csv"
MEDIA_TYPES = {NDJSON: "application/x-ndjson", CSV: "text/csv"}
CHUNK_ROWS = 2000  # rows fetched per round trip, and encoded into one chunk of output


@dataclass
class Export:
    """One export: its columns, its rows (produced lazily, inside the export's transaction)
    and the trailer fields its kind adds, computed once the rows are exhausted."""

    kind: str
    columns: Sequence[str]
    rows: Iterable[Mapping[str, Any]]
    trailer: Callable[[], dict[str, Any]]
    lists: frozenset[str] = field(default_factory=frozenset)  # columns holding lists
    joined: frozenset[str] = field(default_factory=frozenset)  # ... in CSV joined with ";"


def rows_of(queryset: QuerySet[Any], columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The columns of every row, as dicts, a chunk at a time (a server-side cursor on
    PostgreSQL): no model instances, no list of rows in memory."""
    for values in queryset.values_list(*columns).iterator(chunk_size=CHUNK_ROWS):
        yield dict(zip(columns, values, strict=True))


class RefText:
    """References (UUIDs) as text, "" for none, remembering each: an export repeats the same
    few tenants, keys, routes and models on millions of rows."""

    def __init__(self) -> None:
        self.known: dict[Any, str] = {None: ""}

    def __call__(self, ref: Any) -> str:
        text = self.known.get(ref)
        if text is None:
            text = self.known[ref] = str(ref) if ref else ""
            if len(self.known) > 100_000:  # bounded, whatever the data
                self.known = {None: ""}
        return text


@contextmanager
def consistent_read() -> Iterator[None]:
    """One snapshot for everything the export reads. On SQLite (one writer at a time) the
    export reads outside a transaction, as a transaction there would hold the write lock."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def encode(export: Export, fmt: str) -> Iterator[bytes]:
    """The export's bytes in ``fmt``, a chunk of rows at a time, the trailer last."""
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"unknown export format {fmt!r}")
    digest = hashlib.sha256()
    count = 0
    with consistent_read():
        write = _csv_writer(export) if fmt == CSV else _ndjson
        for rows in itertools.batched(export.rows, CHUNK_ROWS):
            data = write(rows).encode()
            count += len(rows)
            digest.update(data)
            yield data
        if fmt == CSV and not count:
            data = write(()).encode()  # the header alone
            digest.update(data)
            yield data
        trailer = {"kind": export.kind, **export.trailer(), "count": count}
    trailer["sha256"] = digest.hexdigest()
    text = json.dumps(trailer, sort_keys=True, default=str)
    yield (f"# trailer {text}\n" if fmt == CSV else f'{{"trailer": {text}}}\n').encode()


def _ndjson(rows: Sequence[Any]) -> str:
    dumps = json.dumps
    return "".join([dumps(row) + "\n" for row in rows])  # keys in column order


def _csv_writer(export: Export) -> Callable[[Sequence[Any]], str]:
    """Writes chunks of rows as CSV, the header before the first. Lists are JSON, or joined
    with ";" for the export's ``joined`` columns; None is empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(export.columns)
    writer.writerow(columns)
    lists = [(i, name in export.joined) for i, name in enumerate(columns) if name in export.lists]

    def cells(row: Any) -> list[Any]:
        values = [row[name] for name in columns]
        for i, joined in lists:
            value = values[i]
            values[i] = ";".join(map(str, value)) if joined else json.dumps(value, sort_keys=True)
        return values

    def write(rows: Sequence[Any]) -> str:
        writer.writerows(map(cells, rows))
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    return write


def filename(kind: str, fmt: str) -> str:
    return f"{kind}.{fmt}"
