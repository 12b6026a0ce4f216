import django_filters

from control_plane.core.api.views import ScopedReadOnlyViewSet
from control_plane.usage.api.serializers import UsageRecordSerializer
from control_plane.usage.models import UsageRecord


class UsageRecordFilterSet(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="lt")

    class Meta:
        model = UsageRecord
        fields = ["tenant", "key", "route", "model", "provider", "status_code", "request_id"]


class UsageRecordViewSet(ScopedReadOnlyViewSet):
    queryset = UsageRecord.objects.all()
    serializer_class = UsageRecordSerializer
    filterset_class = UsageRecordFilterSet
