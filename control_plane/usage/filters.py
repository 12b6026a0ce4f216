"""The filters of usage reads: the API list, its export and the export command."""

from control_plane.core.filters import PeriodFilterSet
from control_plane.usage.models import UsageRecord


class UsageRecordFilterSet(PeriodFilterSet):
    class Meta:
        model = UsageRecord
        fields = ["tenant", "key", "route", "model", "provider", "status_code", "request_id"]
