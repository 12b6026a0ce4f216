"""Guardrail policies: what the data planes look for in prompts and completions, per tenant
and per route, and what they do about it (allow, tag, redact, block)."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from control_plane.catalog.models import Route
from control_plane.core.models import ScopedQuerySet, UUIDModel
from control_plane.tenancy.models import Tenant
from shared.guardrails import ACTIONS, CATEGORIES

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


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
            errors["route"] = "the route belongs to another tenant"
        if errors:
            raise ValidationError(errors)


def policy_problems(policy: GuardrailPolicy) -> dict[str, str]:
    """What is wrong with the policy's detector settings, by field (empty when sound)."""
    errors: dict[str, str] = {}
    categories = policy.categories
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        errors["categories"] = "a list of category names"
    elif unknown := sorted(set(categories) - CATEGORIES):
        errors["categories"] = f"unknown categories {unknown}; known: {sorted(CATEGORIES)}"
    custom: list[str] = []
    problem = _lists(policy.custom_patterns, "patterns", custom)
    if problem:
        errors["custom_patterns"] = problem
    else:
        for entry in policy.custom_patterns:
            for pattern in entry["patterns"]:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    errors["custom_patterns"] = f"{entry['name']}: bad pattern {pattern!r}: {exc}"
    keywords: list[str] = []
    problem = _lists(policy.keyword_lists, "words", keywords)
    if problem:
        errors["keyword_lists"] = problem
    actions = policy.actions
    if not isinstance(actions, dict):
        errors["actions"] = "an object mapping a category to an action"
    else:
        known = CATEGORIES | {f"custom:{n}" for n in custom} | {f"keyword:{n}" for n in keywords}
        for category, action in actions.items():
            if category not in known:
                errors["actions"] = f"action for unknown category {category!r}"
            elif action not in ACTIONS:
                errors["actions"] = f"unknown action {action!r}; one of {list(ACTIONS)}"
    return errors


def _lists(value: Any, items: str, names: list[str]) -> str:
    """Check a list of {"name", items: [...]} entries; collect the names."""
    if not isinstance(value, list):
        return "a list of objects"
    for entry in value:
        if not isinstance(entry, dict) or not _NAME.fullmatch(str(entry.get("name", ""))):
            return 'each entry needs a "name" of letters, digits, _ and -'
        words = entry.get(items)
        if (
            not isinstance(words, list)
            or not words
            or not all(isinstance(w, str) and w.strip() for w in words)
        ):
            return f'{entry["name"]}: "{items}" must be a non-empty list of strings'
        if entry["name"] in names:
            return f"{entry['name']}: names must be unique"
        names.append(entry["name"])
    return ""
