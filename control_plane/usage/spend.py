"""Spend reports as the REST API and the admin give them: the query's parameters read from a
request (``group_by``, ``since``, ``until``, ``tenant``), and the grouped rows
(``selectors.spend``) as JSON-ready dicts or CSV.

``since`` is inclusive and ``until`` exclusive; each is an ISO 8601 date (its midnight, UTC)
or date and time (UTC when it names no offset). Without ``until`` the range ends now; without
``since`` it starts ``DEFAULT_DAYS`` before its end.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from control_plane.core.filters import in_utc
from control_plane.usage.selectors import SpendRow, spend, spend_group_problem

DEFAULT_DAYS = 30
COLUMNS = (
    "group",
    "label",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_nano_usd",
    "spend_usd",
)


@dataclass(frozen=True)
class SpendQuery:
    group_by: str
    since: datetime
    until: datetime
    tenant_id: uuid.UUID | None = None


def moment(value: str) -> datetime | None:
    """An ISO 8601 date (its midnight) or date and time, in UTC unless it names an offset."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return in_utc(at if at.tzinfo is not None else at.replace(tzinfo=UTC))


def read_query(params: Mapping[str, str], now: datetime) -> SpendQuery | dict[str, list[str]]:
    """The report asked for, or the problems of its parameters by name."""
    problems: dict[str, list[str]] = {}
    group_by = params.get("group_by", "")
    if not group_by:
        problems["group_by"] = ["required: tenant, project, key, end_user, route, provider, "
                                "model or tag:<key>"]  # fmt: skip
    elif (problem := spend_group_problem(group_by)) is not None:
        problems["group_by"] = [problem]
    bounds: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        text = params.get(name)
        bounds[name] = moment(text) if text else None
        if text and bounds[name] is None:
            problems[name] = [f"an ISO 8601 date or date and time, not {text[:40]!r}"]
    until = bounds["until"] or now
    since = bounds["since"] or _days_before(until, DEFAULT_DAYS)
    if not problems and since >= until:
        problems["until"] = ["must be after since (since is inclusive, until exclusive)"]
    tenant_id = None
    if params.get("tenant"):
        try:
            tenant_id = uuid.UUID(params["tenant"])
        except ValueError:
            problems["tenant"] = ["a tenant id (UUID)"]
    if problems:
        return problems
    return SpendQuery(group_by, since, until, tenant_id)


def _days_before(at: datetime, days: int) -> datetime:
    try:
        return at - timedelta(days=days)
    except OverflowError:  # near year 1
        return datetime.min.replace(tzinfo=UTC)


def run(user: Any, query: SpendQuery) -> list[SpendRow]:
    return spend(user, query.group_by, query.since, query.until, query.tenant_id)


def row_dict(row: SpendRow) -> dict[str, Any]:
    return {
        "group": row.group,
        "label": row.label,
        "requests": row.requests,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.total_tokens,
        "cost_nano_usd": row.cost_nano_usd,
        "spend_usd": row.spend_usd,
    }


def report(query: SpendQuery, rows: list[SpendRow]) -> dict[str, Any]:
    """The JSON body: the query, the groups, and their totals."""
    return {
        "group_by": query.group_by,
        "since": query.since.isoformat(),
        "until": query.until.isoformat(),
        "tenant": str(query.tenant_id) if query.tenant_id else None,
        "groups": [row_dict(r) for r in rows],
        "totals": {
            "requests": sum(r.requests for r in rows),
            "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "completion_tokens": sum(r.completion_tokens for r in rows),
            "total_tokens": sum(r.total_tokens for r in rows),
            "cost_nano_usd": sum(r.cost_nano_usd for r in rows),
            "spend_usd": sum(r.cost_nano_usd for r in rows) / 1e9,
        },
    }


def as_csv(groups: Iterable[Mapping[str, Any]]) -> str:
    """The groups (``report``'s) as CSV with a header row; no group is an empty cell."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for group in groups:
        writer.writerow({name: "" if group[name] is None else group[name] for name in COLUMNS})
    return out.getvalue()


def filename(query: SpendQuery) -> str:
    group = query.group_by.replace(":", "-")
    return f"spend-by-{group}-{query.since:%Y%m%d}-{query.until:%Y%m%d}.csv"
