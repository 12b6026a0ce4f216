"""Filter building blocks shared by the apps' filter sets."""

import django_filters


class PeriodFilterSet(django_filters.FilterSet):
    """``?since=`` (included) and ``?until=`` (excluded) on the record's time, ``ts``."""

    since = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="lt")
