from __future__ import annotations

from typing import Any

from rest_framework import serializers


class ScopedSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]  # each subclass names the model
    """Related fields accept only rows the requesting user may see: an id from another tenant
    is "object does not exist", exactly like an id that does not exist at all."""

    def get_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = super().get_fields()
        request = self.context.get("request")
        user = getattr(request, "user", None)
        for field in fields.values():
            related = getattr(field, "child_relation", field)
            queryset = getattr(related, "queryset", None)
            if queryset is not None and hasattr(queryset, "restrict"):
                related.queryset = queryset.restrict(user)
        return fields
