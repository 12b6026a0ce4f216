"""The configuration document: what ``asc_export`` writes and ``asc_import`` reads, as YAML.

Pure: no database. ``parse`` checks a loaded document against ``SCHEMA`` and returns it
normalised (defaults filled in, values in one canonical form, children sorted), so that two
documents saying the same thing are equal; ``dump`` writes a normalised document back, leaving
out values equal to their defaults. ``flatten`` turns a document into records keyed by their
path, which is what ``plan`` compares.

Rows are named, never numbered: a tenant by its slug, a route by its name in its tenant, a
model by its provider, provider model name and region, a key by the SHA-256 of its secret. So a
document moves between installations and survives a wipe. No secret is ever in it:
credentials are named, and their secret comes from an environment variable at import time
(``secret_env``, default ``ASC_SECRET_<TENANT>_<CREDENTIAL>``); keys travel as hashes only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from control_plane.config.fields import (
    boolean,
    choice,
    count,
    decimal,
    json_list,
    mapping,
    numbers,
    optional_count,
    sorted_strings,
    strings,
    text,
    timestamp,
)

FORMAT = 1
REQUIRED = object()  # a field without a default


class DocumentError(ValueError):
    """The document is malformed; ``problems`` name each place ("tenants[acme].routes[chat]")."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


ROLES = ("tenant_admin", "developer", "auditor")


@dataclass(frozen=True)
class Field:
    normalise: Callable[[Any], Any]
    default: Any = REQUIRED


@dataclass(frozen=True)
class Kind:
    """One kind of row. ``key`` fields name it among its siblings; ``single`` kinds appear at
    most once under their parent (a mapping, not a list)."""

    name: str
    section: str
    key: tuple[str, ...]
    fields: dict[str, Field]
    children: tuple[Kind, ...] = ()
    single: bool = False
    # Brings a parsed record to its one canonical form (what the database will hold).
    canonical: Callable[[dict[str, Any]], None] | None = None

    def key_of(self, record: dict[str, Any]) -> Any:
        values = tuple(record[k] for k in self.key)
        return values[0] if len(values) == 1 else values


def _rate_limits_run_per_minute(record: dict[str, Any]) -> None:
    if record["kind"] != "budget":
        record["period"] = "minute"


def _limit() -> Kind:
    return Kind(
        "limit",
        "limits",
        ("kind", "period"),
        {
            "kind": Field(choice("budget", "requests", "tokens"), "budget"),
            "period": Field(choice("day", "week", "month", "none", "minute"), "month"),
            "amount": Field(decimal),
            "time_zone": Field(text, "UTC"),
            "hard": Field(boolean, True),
            "alert_thresholds": Field(numbers, []),
            "enabled": Field(boolean, True),
        },
        canonical=_rate_limits_run_per_minute,
    )


def _guardrail() -> Kind:
    return Kind(
        "guardrail",
        "guardrail",
        (),
        {
            "name": Field(text),
            "enabled": Field(boolean, True),
            "on_input": Field(boolean, True),
            "on_output": Field(boolean, True),
            "categories": Field(strings, []),
            "actions": Field(mapping, {}),
            "default_action": Field(choice("allow", "tag", "redact", "block"), "redact"),
            "custom_patterns": Field(json_list, []),
            "keyword_lists": Field(json_list, []),
        },
        single=True,
    )


def _target(value: Any) -> dict[str, Any]:
    spec = {
        "credential": Field(text),
        "model": Field(text),
        "region": Field(text, "global"),
        "priority": Field(count, 0),
        "weight": Field(count, 1),
    }
    return _record(value, spec, "target")


def targets(value: Any) -> list[dict[str, Any]]:
    """Targets in the order they are tried: by priority, then as listed."""
    if not isinstance(value, list) or not value:
        raise ValueError("a non-empty list of targets")
    return sorted((_target(v) for v in value), key=lambda t: t["priority"])


PROVIDER_KINDS = (
    "openai",
    "anthropic",
    "mistral",
    "azure_openai",
    "gemini",
    "openai_compatible",
    "mock",
)

MODEL = Kind(
    "model",
    "models",
    ("model", "region"),
    {
        "model": Field(text),
        "region": Field(text, "global"),
        "input_price": Field(decimal, "0"),
        "output_price": Field(decimal, "0"),
        "cached_input_price": Field(decimal, "0"),
    },
)
PROVIDER = Kind(
    "provider",
    "providers",
    ("name",),
    {
        "name": Field(text),
        "kind": Field(choice(*PROVIDER_KINDS)),
        "base_url": Field(text, ""),
        "options": Field(mapping, {}),
        "enabled": Field(boolean, True),
    },
    (MODEL,),
)
LIMIT = _limit()
GUARDRAIL = _guardrail()
TENANT = Kind(
    "tenant",
    "tenants",
    ("slug",),
    {
        "slug": Field(text),
        "name": Field(text, ""),
        "active": Field(boolean, True),
        "allowed_regions": Field(strings, []),
        "audit_retention_days": Field(optional_count, None),
        "allowed_tags": Field(mapping, {}),
        "drop_unknown_tags": Field(boolean, False),
        "trace_prompts": Field(boolean, False),
    },
    (
        Kind("member", "members", ("user",), {"user": Field(text), "role": Field(choice(*ROLES))}),
        Kind(
            "sso_group",
            "sso_groups",
            ("group",),
            {"group": Field(text), "role": Field(choice(*ROLES))},
        ),
        Kind(
            "project",
            "projects",
            ("name",),
            {"name": Field(text), "tags": Field(mapping, {})},
            (LIMIT,),
        ),
        Kind(
            "credential",
            "credentials",
            ("name",),
            {"name": Field(text), "provider": Field(text), "secret_env": Field(text, "")},
        ),
        Kind(
            "route",
            "routes",
            ("name",),
            {
                "name": Field(text),
                "targets": Field(targets),
                "connect_timeout_ms": Field(count, 0),
                "first_token_timeout_ms": Field(count, 0),
                "total_timeout_ms": Field(count, 0),
                "max_retries": Field(count, 0),
                "latency_aware": Field(boolean, False),
                "drop_untranslatable": Field(boolean, False),
                "cache_ttl_s": Field(count, 0),
            },
            (LIMIT, GUARDRAIL),
        ),
        Kind(
            "route_group",
            "route_groups",
            ("name",),
            {
                "name": Field(text),
                "routes": Field(sorted_strings, []),
                "projects": Field(sorted_strings, []),
            },
        ),
        Kind(
            "key",
            "keys",
            ("hash",),
            {
                "hash": Field(text),
                "name": Field(text),
                "hint": Field(text, ""),
                "routes": Field(sorted_strings, []),
                "route_groups": Field(sorted_strings, []),
                "project": Field(text, ""),
                "expires_at": Field(timestamp, None),
                "max_parallel": Field(count, 0),
                "max_body_bytes": Field(count, 0),
                "max_tokens": Field(count, 0),
                "asserts_end_user": Field(boolean, False),
                "tags": Field(mapping, {}),
                "created_by": Field(text, ""),
            },
            (LIMIT,),
        ),
        # A tag value ("feature=summarizer") with the limits on it.
        Kind("tag_value", "tag_values", ("tag",), {"tag": Field(text)}, (LIMIT,)),
        Kind(
            "identity_provider",
            "identity_providers",
            ("issuer",),
            {
                "issuer": Field(text),
                "name": Field(text),
                "audience": Field(text),
                "jwks": Field(mapping),
                "subject_claim": Field(text, "sub"),
                "roles_claim": Field(text, "groups"),
                "routes": Field(sorted_strings, []),
                "role_routes": Field(mapping, {}),
            },
        ),
        LIMIT,
        GUARDRAIL,
    ),
)
TOP = (PROVIDER, TENANT)


def _record(value: Any, spec: dict[str, Field], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"a {what} is a mapping")
    unknown = sorted(set(value) - set(spec))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(str, unknown))}")
    out = {}
    for name, f in spec.items():
        if (name in value and value[name] is not None) or f.default is REQUIRED:
            if name not in value:
                raise ValueError(f"{name} is required")
            try:
                out[name] = f.normalise(value[name])
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        else:
            out[name] = f.default
    return out


@dataclass
class _Parser:
    problems: list[str] = field(default_factory=list)

    def kinds(self, value: Any, kinds: tuple[Kind, ...], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in kinds:
            raw = value.get(kind.section)
            place = f"{where}.{kind.section}" if where else kind.section
            if kind.single:
                out[kind.section] = None if raw is None else self.one(raw, kind, place)
                continue
            if raw is None:
                raw = []
            if not isinstance(raw, list):
                self.problems.append(f"{place}: a list")
                raw = []
            items = [r for i, v in enumerate(raw) if (r := self.one(v, kind, f"{place}[{i}]"))]
            seen: set[Any] = set()
            for item in items:
                k = kind.key_of(item)
                if k in seen:
                    self.problems.append(f"{place}: {_show(k)} appears twice")
                seen.add(k)
            out[kind.section] = sorted(items, key=lambda r: _sort_key(kind.key_of(r)))
        return out

    def one(self, value: Any, kind: Kind, where: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problems.append(f"{where}: a mapping")
            return None
        sections = {k.section for k in kind.children}
        own = {k: v for k, v in value.items() if k not in sections}
        try:
            record = _record(own, kind.fields, kind.name)
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return None
        if kind.canonical is not None:
            kind.canonical(record)
        if kind.key:
            where = f"{where.rsplit('[', 1)[0]}[{_show(kind.key_of(record))}]"
        record.update(self.kinds(value, kind.children, where))
        return record


def _show(key: Any) -> str:
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _sort_key(key: Any) -> tuple[str, ...]:
    return tuple(map(str, key)) if isinstance(key, tuple) else (str(key),)


def parse(value: Any) -> dict[str, Any]:
    """A loaded document, checked and normalised; raises ``DocumentError``."""
    if not isinstance(value, dict):
        raise DocumentError(["the document is a mapping"])
    if value.get("asc_config", FORMAT) != FORMAT:
        raise DocumentError([f"asc_config: this version reads format {FORMAT}"])
    unknown = sorted(set(value) - {"asc_config"} - {k.section for k in TOP})
    parser = _Parser([f"unknown section {name!r}" for name in unknown])
    document = parser.kinds(value, TOP, "")
    if parser.problems:
        raise DocumentError(parser.problems)
    return document


def _dump_record(record: dict[str, Any], kind: Kind) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f in kind.fields.items():
        value = record.get(name, f.default)
        if value is REQUIRED:
            continue
        if name == "targets":
            value = [_drop_defaults(t, TARGET_DEFAULTS) for t in value]
        if f.default is REQUIRED or value != f.default:
            out[name] = value
    for child in kind.children:
        value = record.get(child.section)
        if child.single and value is not None:
            out[child.section] = _dump_record(value, child)
        elif not child.single and value:
            out[child.section] = [_dump_record(r, child) for r in value]
    return out


TARGET_DEFAULTS = {"region": "global", "priority": 0, "weight": 1}


def _drop_defaults(record: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in defaults or defaults[k] != v}


def dump(document: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"asc_config": FORMAT}
    for kind in TOP:
        out[kind.section] = [_dump_record(r, kind) for r in document.get(kind.section, [])]
    return out


HEADER = """\
# ASC configuration (asc_export). No secret is in this file: a credential's secret comes, at
# import, from the environment variable named by its secret_env (by default
# ASC_SECRET_<TENANT>_<CREDENTIAL>, upper case, other characters as _), and an existing
# credential keeps its secret when that variable is not set. Keys travel as SHA-256 hashes.
"""


def to_yaml(document: dict[str, Any]) -> str:
    body = yaml.safe_dump(dump(document), sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


def from_yaml(text_: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(text_)
    except yaml.YAMLError as exc:
        raise DocumentError([f"not YAML: {exc}"]) from None
    return parse(loaded if loaded is not None else {})


def secret_env_name(tenant: str, credential: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", f"ASC_SECRET_{tenant}_{credential}".upper())


# --- records by path ----------------------------------------------------------------------

Path = tuple[tuple[str, Any], ...]


def records(document: dict[str, Any]) -> Iterator[tuple[Path, Kind, dict[str, Any]]]:
    """Every row of the document with its path, parents first; a record holds only the row's
    own fields (its children are records of their own)."""
    yield from _walk(document, TOP, ())


def _walk(
    node: dict[str, Any], kinds: tuple[Kind, ...], parent: Path
) -> Iterator[tuple[Path, Kind, dict[str, Any]]]:
    for kind in kinds:
        value = node.get(kind.section)
        rows = ([value] if value is not None else []) if kind.single else (value or [])
        for row in rows:
            path = (*parent, (kind.name, kind.key_of(row) if kind.key else ""))
            yield path, kind, {k: row[k] for k in kind.fields}
            yield from _walk(row, kind.children, path)


def show_path(path: Path) -> str:
    return " / ".join(f"{name} {_show(key)}".rstrip() for name, key in path)
