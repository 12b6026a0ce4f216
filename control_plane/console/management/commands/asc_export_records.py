"""``manage.py asc_export_records usage|audit --since ... --until ... [--format csv]``: the
same export as ``GET /api/v1/<kind>/export/`` (same filters, same lines, same trailer),
written to a file or stdout. Every tenant's records, or, with ``--user``, exactly what that
user may read through the API."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.audit.export import audit_export
from control_plane.audit.filters import AuditRecordFilterSet
from control_plane.audit.models import AuditRecord
from control_plane.core.export import CSV, NDJSON, encode
from control_plane.tenancy.models import Tenant
from control_plane.usage.export import usage_export
from control_plane.usage.filters import UsageRecordFilterSet
from control_plane.usage.models import UsageRecord

KINDS: dict[str, Any] = {
    "usage": (UsageRecord, UsageRecordFilterSet, usage_export),
    "audit": (AuditRecord, AuditRecordFilterSet, audit_export),
}
FILTERS = ("since", "until", "tenant", "key", "route")


class Command(BaseCommand):
    help = "Export usage or audit records (a period, a tenant ...) as NDJSON or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=sorted(KINDS))
        parser.add_argument("--since", help="ISO 8601 time, included")
        parser.add_argument("--until", help="ISO 8601 time, excluded")
        parser.add_argument("--tenant", help="tenant slug or id")
        parser.add_argument("--key", help="virtual key id")
        parser.add_argument("--route", help="route id")
        parser.add_argument("--format", choices=[NDJSON, CSV], default=NDJSON)
        parser.add_argument("--output", "-o", help="file to write (default: stdout)")
        parser.add_argument("--user", help="export only what this user may read")

    def handle(self, *args: Any, **options: Any) -> None:
        model, filterset_class, exporter = KINDS[options["kind"]]
        records = model.objects.all()
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
            records = records.restrict(user)
        data = {name: options[name] for name in FILTERS if options[name]}
        if "tenant" in data:
            data["tenant"] = _tenant_id(data["tenant"])
        filterset = filterset_class(data=data, queryset=records)
        if not filterset.is_valid():
            raise CommandError(f"invalid filters: {dict(filterset.errors)}")
        export = exporter(filterset.qs, data)
        last = b""
        out = open(options["output"], "wb") if options["output"] else None  # noqa: SIM115
        try:
            for chunk in encode(export, options["format"]):
                if out is not None:
                    out.write(chunk)
                else:
                    self.stdout.write(chunk.decode(), ending="")  # chunks hold whole lines
                last = chunk
        finally:
            if out is not None:
                out.close()
        text = last.decode().removeprefix("# trailer ")  # the trailer line comes last, alone
        trailer = json.loads(text)
        trailer = trailer.get("trailer", trailer)
        self.stderr.write(f"exported {trailer['count']} {options['kind']} records")


def _tenant_id(value: str) -> str:
    tenant = Tenant.objects.filter(slug=value).values_list("id", flat=True).first()
    return str(tenant) if tenant is not None else value
