"""Bulk inserts of append-only records (usage, audit) that skip rows already stored.

On PostgreSQL the rows are COPYed into a temporary table and moved with one
``INSERT ... ON CONFLICT DO NOTHING`` (COPY is far faster than multi-row INSERTs, and rows
are plain tuples built straight from the protobuf, with no model instances). Elsewhere
(the embedded SQLite default) they go through ``bulk_create(ignore_conflicts=True)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection, models

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def uuid_or_none(value: str) -> str | None:
    """A reference from a data plane: kept when it is a UUID, else stored as NULL."""
    return value if value and _UUID.fullmatch(value) else None


def insert_ignoring_conflicts(
    model: type[models.Model],
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
) -> None:
    """Insert ``rows`` (attribute name -> value, every column without a database default
    present), skipping those that collide with a stored row on the unique ``conflict`` columns."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create([model(**row) for row in rows], ignore_conflicts=True)
        return
    # Columns the database fills itself (its default, e.g. the ingest transaction id) stay out.
    fields = [
        f for f in model._meta.concrete_fields if not f.primary_key and not f.has_db_default()
    ]
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    names = [f.attname for f in fields]
    cols = ", ".join(str(f.column) for f in fields)
    table = model._meta.db_table
    staging = f"{table}_in"
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor: Django's wrapper has no COPY
        raw.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS "
            f"AS SELECT {cols} FROM {table} WITH NO DATA"
        )
        with raw.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(row[n]) if n in json_fields else row[n] for n in names])
        raw.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} "
            f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
        )
