"""The filters of usage reads: the API list, its export and the export command."""

from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from control_plane.core.filters import PeriodFilterSet
from control_plane.usage.models import UsageRecord
from shared import tags


class UsageRecordFilterSet(PeriodFilterSet):
    tag = django_filters.CharFilter(
        method="with_tag", help_text='Records carrying this tag value, "key=value".'
    )

    class Meta:
        model = UsageRecord
        fields = ["tenant", "key", "route", "model", "provider", "status_code", "request_id"]

    def with_tag(self, records: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        parsed = tags.parse_subject(value)
        if parsed is None:
            raise ValidationError({"tag": ['a tag value "key=value", e.g. feature=summarizer']})
        key, tag_value = parsed
        return records.filter(**{f"tags__{key}": tag_value})
