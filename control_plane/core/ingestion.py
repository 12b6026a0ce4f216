"""The ingestion order of append-only records (usage, audit): a key that lists and exports can
page through while records keep arriving, without skipping or repeating one.

An auto-increment id is not enough: ids are taken when a row is inserted, not when its
transaction commits, so with concurrent ingest transactions a reader can see id N+1 committed
while N is still in flight, page past it, and never see N. Instead each row stores the id of the
transaction that wrote it (``ingest_xid``: PostgreSQL's 64-bit, never-wrapping
``pg_current_xact_id()``, set by the database default on every insert, COPY included), and
rows are read in ``(ingest_xid, id)`` order only below the **safe horizon**: the oldest
transaction id still running (``pg_snapshot_xmin`` of the current snapshot). Every
transaction below that horizon has committed or rolled back, so the set of rows below it is
final: no row can ever appear there again. A read that fixes its horizon on its first page
therefore pages through one immutable set, and every row written later lands above it.

The horizon trails the newest commits by as long as the oldest write transaction has been
open (ingest transactions last milliseconds; reads take no transaction id and never hold it
back). On SQLite (the embedded default) one writer runs at a time, so ids are already in commit
order: ``ingest_xid`` is 0 and there is no horizon.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, models
from django.db.models import Func


class TransactionId(Func):
    """The id of the writing transaction as a bigint, for a column's database default
    (``0`` where writers are serialized)."""

    output_field = models.BigIntegerField()
    template = "0"

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="(pg_current_xact_id()::text::bigint)", **extra
        )


def ingest_xid_field() -> models.BigIntegerField[Any, Any]:
    return models.BigIntegerField(db_default=TransactionId(), editable=False)


def safe_horizon() -> int | None:
    """Transaction ids below this have all finished (None: no horizon needed, see above).

    A reader inside a transaction that has written itself (a test, ``ATOMIC_REQUESTS``) reads
    up to and including its own writes, which it sees and which are final for it; rows of
    transactions that were running below it and commit later may then join a read already
    past them (never twice: the key is unique), so only such a read's ``count`` may fall
    short. API requests write nothing before they list, and get the plain horizon."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT GREATEST(pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
            "COALESCE(pg_current_xact_id_if_assigned()::text::bigint + 1, 0))"
        )
        return int(cursor.fetchone()[0])


def add_ingest_xid_sql(table: str) -> list[str]:
    """PostgreSQL DDL adding the column without rewriting the table: rows stored before it
    existed get 0 (all their transactions are long finished), new rows their writer's id."""
    return [
        f'ALTER TABLE "{table}" ADD COLUMN "ingest_xid" bigint NOT NULL DEFAULT 0',
        f'ALTER TABLE "{table}" ALTER COLUMN "ingest_xid" '
        f"SET DEFAULT (pg_current_xact_id()::text::bigint)",
    ]


def add_ingest_xid(app_label: str, model_name: str) -> Any:
    """The migration operation adding ``ingest_xid`` to a model: on PostgreSQL without a table
    rewrite (``add_ingest_xid_sql``), elsewhere as Django adds any field."""
    from django.db import migrations

    def field() -> models.BigIntegerField[Any, Any]:
        f = ingest_xid_field()
        f.set_attributes_from_name("ingest_xid")
        return f

    def forward(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model(app_label, model_name)
        if schema_editor.connection.vendor == "postgresql":
            for sql in add_ingest_xid_sql(model._meta.db_table):
                schema_editor.execute(sql)
        else:
            schema_editor.add_field(model, field())

    def backward(apps: Any, schema_editor: Any) -> None:
        table = apps.get_model(app_label, model_name)._meta.db_table
        schema_editor.execute(f'ALTER TABLE "{table}" DROP COLUMN "ingest_xid"')

    return migrations.SeparateDatabaseAndState(
        state_operations=[migrations.AddField(model_name, "ingest_xid", ingest_xid_field())],
        database_operations=[migrations.RunPython(forward, backward)],
    )
