from rest_framework import serializers

from control_plane.usage.export import COLUMNS, REFS
from control_plane.usage.models import UsageRecord


class UsageRecordSerializer(serializers.ModelSerializer[UsageRecord]):
    class Meta:
        model = UsageRecord
        # The export's columns, references by their ids (``tenant``, not ``tenant_id``).
        fields = [name.removesuffix("_id") if name in REFS else name for name in COLUMNS]
