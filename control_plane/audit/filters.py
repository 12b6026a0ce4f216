"""The filters of audit reads: the API list, its export and the export command."""

from control_plane.audit.models import AuditRecord
from control_plane.core.filters import PeriodFilterSet


class AuditRecordFilterSet(PeriodFilterSet):
    class Meta:
        model = AuditRecord
        fields = ["tenant", "key", "route", "decision", "reason", "request_id", "chain_id"]
