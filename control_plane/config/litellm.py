"""A LiteLLM proxy ``config.yaml``, translated into an ASC configuration document for one
tenant, so a LiteLLM user moves over with one command (``asc_import_litellm``).

Pure: it takes the LiteLLM config and the tenant's current document and returns the document
to import (the current one with LiteLLM's routes, credentials and budgets merged in), the
secrets the file holds in clear, and warnings for what ASC does differently.

- ``model_list[].model_name`` (a model group): a route of that name; each deployment's
  ``litellm_params.model`` (``provider/model``), ``api_base`` and ``api_version``: a provider
  (reused when one with that kind, endpoint and options exists) and its model; ``model_info``
  costs per token: the model's prices per million tokens.
- ``api_key`` (``os.environ/VAR`` or a literal): a credential named after the variable, its
  secret read from VAR at import (a literal is stored encrypted, with a warning).
- ``weight`` and ``order``: target weight and priority (``order`` 1 is priority 0).
- ``rpm``, ``tpm``, ``max_budget`` + ``budget_duration`` of the deployments: the route's
  requests and tokens per minute and budget (their sum).
- ``fallbacks`` and ``default_fallbacks`` (``router_settings`` or ``litellm_settings``): the
  fallback groups' targets appended at lower priorities; ``model_group_alias``: a route with
  the aliased group's targets; ``num_retries``, ``timeout``/``request_timeout`` and
  ``stream_timeout``: route retries and timeouts; ``latency-based-routing``: latency-aware.
- ``litellm_settings.max_budget`` + ``budget_duration``: the tenant's budget.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from control_plane.config import document as d
from control_plane.config import fields

ENV_PREFIX = "os.environ/"
PUBLIC_COMPATIBLE = {
    "groq": "https://api.groq.com/openai/v1",
    "together_ai": "https://api.together.xyz/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "xai": "https://api.x.ai/v1",
    "perplexity": "https://api.perplexity.ai",
}
SELF_HOSTED = {"hosted_vllm", "vllm", "ollama", "ollama_chat", "openai_like", "lm_studio"}
NATIVE = {"openai": "openai", "azure": "azure_openai", "anthropic": "anthropic"}
NATIVE |= {"mistral": "mistral", "gemini": "gemini"}
DEFAULT_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "azure_openai": "AZURE_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "gemini": "GEMINI_API_KEY",
}
OFFICIAL_OPENAI = {"", "https://api.openai.com/v1", "https://api.openai.com"}
PERIODS = {"d": "day", "h": "day", "w": "week", "mo": "month"}


class LiteLLMError(ValueError):
    pass


@dataclass
class Translation:
    document: dict[str, Any]
    # Secrets the LiteLLM file held in clear, by the environment name their credential uses.
    secrets: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Deployment:
    group: str
    provider: dict[str, Any]  # kind, base_url, options
    model: str
    region: str
    key_source: str  # "env:VAR", "literal:<secret>" or "none"
    priority: int
    weight: int
    prices: dict[str, str] | None
    rpm: int
    tpm: int
    budget: tuple[str, str] | None  # (amount, period)
    timeout_ms: int
    stream_timeout_ms: int


def translate(
    config: Any, tenant: str, current: dict[str, Any], env: dict[str, str] | None = None
) -> Translation:
    """``current``: the normalised document of ``tenant`` and every provider (with all their
    models) as they are now. ``env``: what ``os.environ/NAME`` values other than API keys (an
    ``api_base``, say) read, as LiteLLM reads them at start."""
    if not isinstance(config, dict) or not isinstance(config.get("model_list"), list):
        raise LiteLLMError("a LiteLLM proxy config has a model_list")
    out = Translation(copy.deepcopy(current))
    router = _section(config, "router_settings")
    settings = _section(config, "litellm_settings")
    general = _section(config, "general_settings")
    out.secrets |= {k: str(v) for k, v in _section(config, "environment_variables").items()}
    variables = {**(env or {}), **out.secrets}
    deployments = [
        dep
        for i, entry in enumerate(config["model_list"])
        if (dep := _deployment(_resolved(entry, variables), i, out.warnings)) is not None
    ]
    doc_tenant = _tenant(out.document, tenant)
    providers = _Providers(out.document["providers"])
    credentials = _Credentials(doc_tenant, tenant, out)
    groups: dict[str, list[dict[str, Any]]] = {}
    for dep in deployments:
        provider_name = providers.name_for(dep.provider, dep.model, dep.region, dep.prices)
        target = {
            "credential": credentials.name_for(provider_name, dep.provider["kind"], dep.key_source),
            "model": dep.model,
            "region": dep.region,
            "priority": dep.priority,
            "weight": dep.weight,
        }
        groups.setdefault(dep.group, []).append(target)
    fallbacks = _fallbacks(router, settings, out.warnings)
    default = _list(router.get("default_fallbacks") or settings.get("default_fallbacks"))
    retries = router.get("num_retries", settings.get("num_retries"))
    timeout_s = router.get("timeout", settings.get("request_timeout"))
    latency = router.get("routing_strategy") == "latency-based-routing"
    routes = {r["name"]: r for r in doc_tenant["routes"]}
    for group, targets in groups.items():
        chain = list(targets)
        for fallback in fallbacks.get(group, default if group not in default else []):
            if fallback not in groups:
                out.warnings.append(f"fallback {fallback!r} of {group!r} is no model_name here")
                continue
            base = max(t["priority"] for t in chain) + 1
            chain += [{**t, "priority": base + t["priority"]} for t in groups[fallback]]
        deps = [dep for dep in deployments if dep.group == group]
        routes[group] = {
            **routes.get(group, {}),
            "name": group,
            "targets": chain,
            "max_retries": _count(retries, 0),
            "total_timeout_ms": max(
                [_count(timeout_s, 0) * 1000, *(dep.timeout_ms for dep in deps)]
            ),
            "first_token_timeout_ms": max(dep.stream_timeout_ms for dep in deps),
            "latency_aware": latency,
            "limits": _route_limits(deps, routes.get(group, {}).get("limits", [])),
        }
    for alias, aliased in _aliases(router, out.warnings).items():
        if aliased in routes and aliased in groups:
            own = routes.get(alias, {})
            routes[alias] = {
                **routes[aliased],
                "name": alias,
                "limits": own.get("limits", []),
                "guardrail": own.get("guardrail"),
            }
        else:
            out.warnings.append(f"model_group_alias {alias!r} names no model group")
    doc_tenant["routes"] = list(routes.values())
    _tenant_budget(doc_tenant, settings, out.warnings)
    _unsupported(config, settings, general, router, out.warnings)
    out.document = d.parse(d.dump(out.document))
    return out


def _resolved(entry: Any, env: dict[str, str]) -> Any:
    """The deployment with ``os.environ/NAME`` values read, except its API key (which stays a
    reference: its credential reads it at import, and it is never written anywhere)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("litellm_params"), dict):
        return entry
    params = dict(entry["litellm_params"])
    for name, value in params.items():
        if name != "api_key" and isinstance(value, str) and value.startswith(ENV_PREFIX):
            variable = value.removeprefix(ENV_PREFIX)
            if variable not in env:
                raise LiteLLMError(f"{entry.get('model_name')}: {name} needs ${variable}")
            params[name] = env[variable]
    return {**entry, "litellm_params": params}


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name) or {}
    if not isinstance(value, dict):
        raise LiteLLMError(f"{name} is a mapping")
    return value


def _list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _count(value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        return max(0, int(float(value)))
    except (TypeError, ValueError):
        raise LiteLLMError(f"not a number: {value!r}") from None


def _tenant(document: dict[str, Any], slug: str) -> dict[str, Any]:
    """The tenant's record in ``document`` (a new one when it has none), to change in place."""
    for t in document["tenants"]:
        if t["slug"] == slug:
            found: dict[str, Any] = t
            return found
    new: dict[str, Any] = d.parse({"tenants": [{"slug": slug, "name": slug}]})["tenants"][0]
    document["tenants"].append(new)
    return new


def _provider_of(params: dict[str, Any], where: str) -> tuple[dict[str, Any], str] | None:
    """(provider kind, base_url, options), and the provider's model name."""
    name = str(params.get("model", ""))
    prefix, _, rest = name.partition("/")
    if not rest:
        prefix, rest = _guess(name), name
    base = str(params.get("api_base") or "")
    options: dict[str, str] = {}
    if prefix == "azure":
        options = {"api_version": str(params["api_version"])} if params.get("api_version") else {}
        return {"kind": "azure_openai", "base_url": base, "options": options}, rest
    if prefix == "openai" and base.rstrip("/") not in OFFICIAL_OPENAI:
        return {"kind": "openai_compatible", "base_url": base, "options": {}}, rest
    if prefix in NATIVE:
        return {"kind": NATIVE[prefix], "base_url": base, "options": {}}, rest
    if prefix in PUBLIC_COMPATIBLE or (prefix in SELF_HOSTED and base):
        url = base or PUBLIC_COMPATIBLE[prefix]
        return {"kind": "openai_compatible", "base_url": url, "options": {}}, rest
    return None


def _guess(model: str) -> str:
    for prefix, names in {
        "openai": ("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding"),
        "anthropic": ("claude",),
        "mistral": ("mistral", "codestral", "open-mistral"),
        "gemini": ("gemini",),
    }.items():
        if model.startswith(names):
            return prefix
    return ""


def _deployment(entry: Any, index: int, warnings: list[str]) -> Deployment | None:
    where = f"model_list[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("litellm_params"), dict):
        raise LiteLLMError(f"{where}: needs model_name and litellm_params")
    group, params = str(entry.get("model_name", "")), entry["litellm_params"]
    info = entry.get("model_info") or {}
    if not group:
        raise LiteLLMError(f"{where}: needs a model_name")
    found = _provider_of(params, where)
    if found is None:
        warnings.append(f"{where} ({group}): {params.get('model')!r} is not a provider ASC serves")
        return None
    provider, model = found
    key = params.get("api_key")
    if isinstance(key, str) and key.startswith(ENV_PREFIX):
        source = "env:" + key.removeprefix(ENV_PREFIX)
    elif key:
        source = "literal:" + str(key)
        warnings.append(f"{where} ({group}): api_key was in clear in the file; stored encrypted")
    elif provider["kind"] in DEFAULT_KEY_ENV:
        source = "env:" + DEFAULT_KEY_ENV[provider["kind"]]
    else:
        source = "none"
    return Deployment(
        group=group,
        provider=provider,
        model=model,
        region=str(params.get("region_name") or "global"),
        key_source=source,
        priority=max(0, _count(params.get("order"), 1) - 1),
        weight=max(1, round(float(params.get("weight", 1)))),
        prices=_prices(info),
        rpm=_count(params.get("rpm"), 0),
        tpm=_count(params.get("tpm"), 0),
        budget=_budget(params.get("max_budget"), params.get("budget_duration"), where, warnings),
        timeout_ms=_count(params.get("timeout"), 0) * 1000,
        stream_timeout_ms=_count(params.get("stream_timeout"), 0) * 1000,
    )


def _prices(info: Any) -> dict[str, str] | None:
    """LiteLLM's USD per token as ASC's USD per million tokens."""
    if not isinstance(info, dict):
        return None
    names = {
        "input_cost_per_token": "input_price",
        "output_cost_per_token": "output_price",
        "cache_read_input_token_cost": "cached_input_price",
    }
    prices = {
        ours: fields.decimal(Decimal(str(info[theirs])) * 1_000_000)
        for theirs, ours in names.items()
        if info.get(theirs) is not None
    }
    return prices or None


def _budget(amount: Any, duration: Any, where: str, warnings: list[str]) -> tuple[str, str] | None:
    if amount is None:
        return None
    if duration is None:
        return fields.decimal(amount), "none"
    match = re.fullmatch(r"(\d+)\s*(mo|[smhdw])", str(duration).strip())
    unit = match.group(2) if match else ""
    period = PERIODS.get(unit, "")
    if match and unit == "d" and int(match.group(1)) >= 28:
        period = "month"
    elif match and unit == "d" and int(match.group(1)) >= 7:
        period = "week"
    if not period:
        period = "day"
        warnings.append(f"{where}: budget_duration {duration!r} imported as a daily budget")
    elif match and not re.fullmatch(r"1(d|w|mo)|24h|7d|30d|31d", match.group(0)):
        warnings.append(f"{where}: budget_duration {duration!r} imported as a {period}ly budget")
    return fields.decimal(amount), period


def _route_limits(deps: list[Deployment], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    limits = {(m["kind"], m["period"]): m for m in current}
    rpm, tpm = sum(dep.rpm for dep in deps), sum(dep.tpm for dep in deps)
    if rpm and all(dep.rpm for dep in deps):
        limits[("requests", "minute")] = {"kind": "requests", "period": "minute", "amount": rpm}
    if tpm and all(dep.tpm for dep in deps):
        limits[("tokens", "minute")] = {"kind": "tokens", "period": "minute", "amount": tpm}
    budgets = [dep.budget for dep in deps if dep.budget is not None]
    if budgets and len(budgets) == len(deps) and len({p for _, p in budgets}) == 1:
        amount = sum(Decimal(a) for a, _ in budgets)
        period = budgets[0][1]
        limits[("budget", period)] = {"kind": "budget", "period": period, "amount": str(amount)}
    return list(limits.values())


def _fallbacks(
    router: dict[str, Any], settings: dict[str, Any], warnings: list[str]
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for source in (settings.get("fallbacks"), router.get("fallbacks")):
        for item in source if isinstance(source, list) else []:
            if isinstance(item, dict):
                for group, fallbacks in item.items():
                    out[str(group)] = _list(fallbacks)
    for kind in ("context_window_fallbacks", "content_policy_fallbacks"):
        if router.get(kind) or settings.get(kind):
            warnings.append(f"{kind} not imported: ASC falls back on errors only")
    return out


def _aliases(router: dict[str, Any], warnings: list[str]) -> dict[str, str]:
    aliases = router.get("model_group_alias") or {}
    out = {}
    for alias, target in aliases.items() if isinstance(aliases, dict) else []:
        out[str(alias)] = str(target.get("model") if isinstance(target, dict) else target)
    return out


def _tenant_budget(tenant: dict[str, Any], settings: dict[str, Any], warnings: list[str]) -> None:
    budget = _budget(
        settings.get("max_budget"), settings.get("budget_duration"), "litellm_settings", warnings
    )
    if budget is None:
        return
    amount, period = budget
    limits = {(m["kind"], m["period"]): m for m in tenant["limits"]}
    limits[("budget", period)] = {"kind": "budget", "period": period, "amount": amount}
    tenant["limits"] = list(limits.values())


def _unsupported(
    config: dict[str, Any],
    settings: dict[str, Any],
    general: dict[str, Any],
    router: dict[str, Any],
    warnings: list[str],
) -> None:
    if general.get("master_key"):
        warnings.append("general_settings.master_key not imported: create ASC keys per client")
    for name in ("default_key_generate_params", "upperbound_key_generate_params"):
        params = settings.get(name) or {}
        if isinstance(params, dict) and params.get("max_budget") is not None:
            warnings.append(
                f"litellm_settings.{name}.max_budget not imported: ASC budgets are set per key, "
                "project or tenant (a key or project limit)"
            )
    if settings.get("max_end_user_budget") is not None:
        warnings.append("litellm_settings.max_end_user_budget not imported")
    if router.get("provider_budget_config"):
        warnings.append("router_settings.provider_budget_config not imported: use route budgets")
    for name in ("success_callback", "failure_callback", "callbacks"):
        if settings.get(name):
            warnings.append(f"litellm_settings.{name} not imported: ASC records usage and audit")


class _Providers:
    """Providers by name; a deployment reuses one with the same kind, endpoint and options."""

    def __init__(self, providers: list[dict[str, Any]]) -> None:
        self.providers = providers

    def name_for(
        self, spec: dict[str, Any], model: str, region: str, prices: dict[str, str] | None
    ) -> str:
        found = next(
            (
                p
                for p in self.providers
                if (p["kind"], p["base_url"], p["options"])
                == (spec["kind"], spec["base_url"], spec["options"])
            ),
            None,
        )
        if found is None:
            found = {**spec, "name": self._new_name(spec), "enabled": True, "models": []}
            self.providers.append(found)
        models = {(m["model"], m["region"]): m for m in found["models"]}
        row = models.get((model, region)) or {"model": model, "region": region}
        found["models"] = [
            *(m for k, m in models.items() if k != (model, region)),
            {**row, **(prices or {})},
        ]
        return str(found["name"])

    def _new_name(self, spec: dict[str, Any]) -> str:
        host = urlsplit(spec["base_url"]).netloc
        base = f"{spec['kind']}@{host}" if host else spec["kind"]
        if spec["options"].get("api_version"):
            base += f"#{spec['options']['api_version']}"
        taken = {p["name"] for p in self.providers}
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        return name


class _Credentials:
    """A credential per (provider, key source), named after the variable holding the key."""

    def __init__(self, tenant: dict[str, Any], slug: str, out: Translation) -> None:
        self.tenant, self.slug, self.out = tenant, slug, out
        self.by_source: dict[tuple[str, str], str] = {}

    def name_for(self, provider: str, kind: str, source: str) -> str:
        if (provider, source) in self.by_source:
            return self.by_source[(provider, source)]
        how, _, value = source.partition(":")
        base = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") if how == "env" else ""
        base = base or f"{kind.replace('_', '-')}-key"
        existing = {c["name"]: c for c in self.tenant["credentials"]}
        name, n = base, 2
        while name in existing and existing[name]["provider"] != provider:
            name, n = f"{base}-{n}", n + 1
        env = value if how == "env" else d.secret_env_name(self.slug, name)
        if how == "literal":
            self.out.secrets[env] = value
        elif how == "none":
            self.out.secrets[env] = ""
        credential = {"name": name, "provider": provider, "secret_env": env}
        self.tenant["credentials"] = [
            *(c for c in self.tenant["credentials"] if c["name"] != name),
            credential,
        ]
        self.by_source[(provider, source)] = name
        return name
