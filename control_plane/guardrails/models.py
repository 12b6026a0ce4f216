"""Guardrail policies: what the data planes look for in prompts and completions, per tenant
and per route, and what they do about it (allow, tag, redact, block)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

from django.core.exceptions import ValidationError
from django.db import models

from control_plane.catalog.models import Route
from control_plane.core.models import ScopedQuerySet, UUIDModel
from control_plane.tenancy.models import Tenant
from shared import rules
from shared.guardrails import CATEGORIES


class Action(models.TextChoices):
    ALLOW = "allow", "Allow"
    TAG = "tag", "Tag (record only)"
    REDACT = "redact", "Redact"
    BLOCK = "block", "Block"


class GuardrailPolicy(UUIDModel):
    """A tenant-wide policy (no route) or a route's own, which replaces the tenant's."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="guardrails")
    route = models.OneToOneField(
        Route,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="guardrail",
        help_text="Empty: every route of the tenant that has no policy of its own.",
    )
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    on_input = models.BooleanField(default=True, help_text="Scan prompts.")
    on_output = models.BooleanField(default=True, help_text="Scan completions, streamed too.")
    categories = models.JSONField(
        default=list,
        blank=True,
        help_text=f"Built-in detectors; empty: all of {sorted(CATEGORIES)}.",
    )
    actions = models.JSONField(
        default=dict, blank=True, help_text='Per category, e.g. {"payment_card": "block"}.'
    )
    default_action = models.CharField(max_length=8, choices=Action.choices, default=Action.REDACT)
    custom_patterns = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"name": "project", "patterns": ["PRJ-\\\\d{4}"], "ignore_case": false}]',
    )
    keyword_lists = models.JSONField(
        default=list, blank=True, help_text='[{"name": "codenames", "words": ["bluebird"]}]'
    )

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(route__isnull=True),
                name="one_tenant_wide_guardrail",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name}"

    def clean(self) -> None:
        errors = policy_problems(self)
        if self.route is not None and self.tenant_id and self.route.tenant_id != self.tenant_id:
            errors["route"] = ["the route belongs to another tenant"]
        if errors:
            raise ValidationError(errors)


def policy_problems(policy: GuardrailPolicy) -> dict[str, list[str]]:
    """What is wrong with the policy's detector settings, by field (empty when sound).

    The JSON fields are parsed here; the rules themselves are ``shared.rules``, the ones every
    snapshot is checked against, so a row saved here never stops a publish."""
    errors: dict[str, list[str]] = {}
    categories = policy.categories
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        errors["categories"] = ["a list of category names"]
        categories = []
    actions = policy.actions
    if not isinstance(actions, dict) or not all(isinstance(a, str) for a in actions.values()):
        errors["actions"] = ["an object mapping a category to an action"]
        actions = {}
    pattern_lists = _entries(policy.custom_patterns, "custom_patterns", errors, _pattern_list)
    word_lists = _entries(policy.keyword_lists, "keyword_lists", errors, _word_list)
    found = rules.guardrail_problems(
        categories, actions, policy.default_action, pattern_lists, word_lists
    )
    for field, messages in found.items():
        errors.setdefault(field, []).extend(messages)
    return errors


def _entries[T](
    value: Any, field: str, errors: dict[str, list[str]], parse: Callable[[dict[str, Any]], T | str]
) -> list[T]:
    """Parse a list of JSON objects; what does not parse is an error of ``field``."""
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        errors[field] = ["a list of objects"]
        return []
    parsed: list[T] = []
    for entry in value:
        item = parse(entry)
        if isinstance(item, str):
            errors.setdefault(field, []).append(item)
        else:
            parsed.append(item)
    return parsed


def _pattern_list(entry: dict[str, Any]) -> rules.PatternList | str:
    name, patterns = entry.get("name"), entry.get("patterns")
    ignore_case = entry.get("ignore_case", False)
    max_len = entry.get("max_len", rules.DEFAULT_MAX_LEN)
    if extra := sorted(set(entry) - {"name", "patterns", "ignore_case", "max_len"}):
        return f"{name}: unknown keys {extra}"
    if not isinstance(name, str) or not _strings(patterns):
        return 'each entry: {"name": "...", "patterns": ["...", ...]}'
    if not isinstance(ignore_case, bool):
        return f'{name}: "ignore_case" is true or false'
    if not isinstance(max_len, int) or isinstance(max_len, bool):
        return f'{name}: "max_len" is a whole number from 1 to {rules.MAX_MATCH_LEN}'
    return rules.PatternList(name, patterns, ignore_case, max_len)


def _word_list(entry: dict[str, Any]) -> rules.WordList | str:
    name, words = entry.get("name"), entry.get("words")
    if extra := sorted(set(entry) - {"name", "words"}):
        return f"{name}: unknown keys {extra}"
    if not isinstance(name, str) or not _strings(words):
        return 'each entry: {"name": "...", "words": ["...", ...]}'
    return rules.WordList(name, words)


def _strings(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
