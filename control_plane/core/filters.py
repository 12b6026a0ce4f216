"""Filter building blocks shared by the apps' filter sets."""

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


def in_utc(at: datetime) -> datetime | None:
    """``at`` (aware) in UTC, or None when that leaves the calendar (year 1 with a positive
    offset). Queries compare in UTC: PostgreSQL refuses offsets that Python accepts (past
    15:59), so an offset a client wrote never reaches the database."""
    try:
        return at.astimezone(UTC)
    except OverflowError:
        return None


class UtcIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value: Any) -> datetime | None:
        at = super().to_python(value)
        if at is None:
            return None
        utc = in_utc(at)
        if utc is None:
            raise ValidationError("This time is out of range.", code="invalid")
        return utc


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class PeriodFilterSet(django_filters.FilterSet):
    """``?since=`` (included) and ``?until=`` (excluded) on the record's time, ``ts``."""

    since = UtcIsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="ts", lookup_expr="lt")
