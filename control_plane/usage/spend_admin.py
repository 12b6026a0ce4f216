"""The admin's spend page: the spend report (``usage.spend``) over whole UTC days, grouped by
the dimension picked, as a table with each group's share, or as CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from control_plane.tenancy.models import Tenant
from control_plane.usage import spend
from control_plane.usage.selectors import SPEND_GROUPS, TAG_PREFIX

DEFAULT_DAYS = 7


def _day(value: str | None, default: date) -> date | None:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _day_after(day: date) -> str:
    return (day + timedelta(days=1)).isoformat() if day < date.max else "9999-12-31T23:59:59Z"


def params_of(request: HttpRequest, today: date) -> tuple[dict[str, str], dict[str, Any]]:
    """The API's parameters from the page's form (``from``/``to`` are whole days, both
    included; ``group_by`` a dimension or ``tag`` with ``tag_key``), and the form's values."""
    query = request.GET
    group_by = query.get("group_by") or "tag"
    tag_key = query.get("tag_key", "feature").strip()
    start = _day(query.get("from"), today - timedelta(days=DEFAULT_DAYS - 1))
    end = _day(query.get("to"), today)
    params = {"group_by": f"{TAG_PREFIX}{tag_key}" if group_by == "tag" else group_by}
    if group_by.startswith(TAG_PREFIX):  # the API's own spelling works too
        params["group_by"], tag_key, group_by = group_by, group_by.removeprefix(TAG_PREFIX), "tag"
    params["since"] = start.isoformat() if start else query.get("from", "")
    params["until"] = _day_after(end) if end else query.get("to", "")
    if query.get("tenant"):
        params["tenant"] = query["tenant"]
    form = {
        "group_by": group_by,
        "tag_key": tag_key,
        "from": query.get("from") or (start.isoformat() if start else ""),
        "to": query.get("to") or (end.isoformat() if end else ""),
        "tenant": query.get("tenant", ""),
    }
    return params, form


def spend_page(request: HttpRequest) -> HttpResponse:
    params, form = params_of(request, datetime.now(UTC).date())
    query = spend.read_query(params, datetime.now(UTC))
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Spend",
        "form": form,
        "dimensions": [*SPEND_GROUPS, "tag"],
        "tenants": Tenant.objects.restrict(request.user).values_list("pk", "slug"),
    }
    if not isinstance(query, spend.SpendQuery):
        context["problems"] = [f"{name}: {'; '.join(p)}" for name, p in query.items()]
        return render(request, "admin/asc/spend.html", context)
    body = spend.report(query, spend.run(request.user, query))
    if request.GET.get("format") == "csv":
        response = HttpResponse(spend.as_csv(body["groups"]), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{spend.filename(query)}"'
        return response
    top = max((g["cost_nano_usd"] for g in body["groups"]), default=0)
    for g in body["groups"]:
        g["share"] = round(100 * g["cost_nano_usd"] / top) if top else 0
    csv_query = request.GET.copy()
    csv_query["format"] = "csv"
    context |= {"report": body, "csv_url": f"?{csv_query.urlencode()}"}
    return render(request, "admin/asc/spend.html", context)
