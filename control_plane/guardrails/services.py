"""Writes to guardrail policies, in the name of the user acting; each asks for a publish."""

from __future__ import annotations

from control_plane.core.services import Actor, delete_row, save_row
from control_plane.guardrails.models import GuardrailPolicy


def put_guardrail_policy(policy: GuardrailPolicy, *, actor: Actor) -> GuardrailPolicy:
    """A tenant's or a route's policy; its rules in ``GuardrailPolicy.clean``."""
    return save_row(policy, actor=actor)


def delete_guardrail_policy(policy: GuardrailPolicy, *, actor: Actor) -> None:
    delete_row(policy, actor=actor)
