from rest_framework import serializers

from control_plane.audit.export import FIELDS
from control_plane.audit.models import AuditRecord

REFS = {"tenant_id", "key_id", "route_id", "provider_id", "model_id", "credential_id"}


class AuditRecordSerializer(serializers.ModelSerializer[AuditRecord]):
    class Meta:
        model = AuditRecord
        # References by their ids, like the usage API.
        fields = [name.removesuffix("_id") if name in REFS else name for name in FIELDS]
